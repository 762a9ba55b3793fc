"""Configuration of the core client: where to send, and the exporter's bounds."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefactor_core.payloads import PayloadPolicy
from prefactor_http.config import HttpClientConfig

__all__ = ["DropPolicy", "PrefactorCoreConfig", "QueueConfig"]

DropPolicy = Literal["drop_spans_first", "drop_newest"]
"""What a full buffer does with a new operation.

- ``drop_spans_first`` (default): span operations are dropped, while instance register, start,
  finish and quality operations may still use a small reserve, so runs are closed properly.
- ``drop_newest``: every new operation is dropped while the buffer is full.

Dropped operations are counted in ``stats().dropped``. A span whose create was dropped has its
finish dropped too, and its children are attached to its parent instead.
"""

_ENV_AGENT = "PREFACTOR_AGENT_ID"
_ENV_ENVIRONMENT = "PREFACTOR_ENVIRONMENT_ID"


class QueueConfig(BaseModel):
    """Bounds and pacing of the export.

    - ``num_workers``: how many agent instances are exported at the same time (each instance's
      operations stay in order; several instances proceed side by side).
    - ``max_retries``: extra rounds for an operation whose HTTP attempts (``max_retries`` of
      the `HttpClientConfig`) all failed with a transient error.
    - ``retry_delay_base``: the wait before the first extra round; it doubles each round.
    - ``max_buffered_operations``: operations waiting or in flight, per client.
    - ``drop_policy``: see `DropPolicy`.
    - ``export_concurrency``: requests in flight at once, per client.
    - ``shutdown_timeout``: how long ``close()`` and interpreter exit wait for delivery.
    - ``bulk_max_items``: when above 0, operations that may be sent now are batched into
      ``POST /api/v1/bulk`` requests of at most this many items (opt-in; 0 sends one request
      per operation). Only operations whose predecessors are done go into a request, so
      per-instance order is kept; every item carries its operation's idempotency key, so a
      retried request stores nothing twice; an item the server refuses is retried on its own.
      One request may carry operations of up to ``bulk_max_items`` instances (instead of
      ``num_workers``).
    """

    model_config = ConfigDict(validate_assignment=True)

    num_workers: int = Field(default=3, ge=1, le=20)
    max_retries: int = Field(default=3, ge=0)
    retry_delay_base: float = Field(default=1.0, gt=0)
    max_buffered_operations: int = Field(default=10_000, ge=1)
    drop_policy: DropPolicy = "drop_spans_first"
    export_concurrency: int = Field(default=32, ge=1, le=1024)
    shutdown_timeout: float = Field(default=10.0, ge=0)
    bulk_max_items: int = Field(default=0, ge=0, le=1000)


class PrefactorCoreConfig(BaseModel):
    """Everything a `PrefactorCoreClient` needs.

    ``agent_id`` / ``environment_id`` are defaults for new instances (leave them out with a
    deployment-scoped token). ``payload_policy`` applies to every span unless a span brings its
    own. ``termination_poll_interval`` is how often (seconds) open instances are checked for
    termination by the platform; None turns the poll off (termination is still seen on every
    span response).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_assignment=True)

    http_config: HttpClientConfig
    queue_config: QueueConfig = Field(default_factory=QueueConfig)
    schema_registry: Any = None
    agent_id: str | None = None
    environment_id: str | None = None
    payload_policy: PayloadPolicy = Field(default_factory=PayloadPolicy)
    termination_poll_interval: float | None = Field(default=10.0, gt=0)

    @classmethod
    def from_env(cls, **overrides: Any) -> PrefactorCoreConfig:
        """Build from ``PREFACTOR_API_URL``, ``PREFACTOR_API_TOKEN``, ``PREFACTOR_AGENT_ID`` and
        the optional ``PREFACTOR_ENVIRONMENT_ID``.

        Keyword arguments set other fields or override the environment (pass ``agent_id=None``
        with a deployment-scoped token). A missing variable raises `ValueError` naming it.
        """
        values: dict[str, Any] = {}
        if "http_config" not in overrides:
            values["http_config"] = HttpClientConfig.from_env()
        if "agent_id" not in overrides:
            agent_id = os.environ.get(_ENV_AGENT, "").strip()
            if not agent_id:
                raise ValueError(f"environment variable {_ENV_AGENT} is not set")
            values["agent_id"] = agent_id
        if "environment_id" not in overrides:
            values["environment_id"] = os.environ.get(_ENV_ENVIRONMENT, "").strip() or None
        values.update(overrides)
        return cls(**values)
