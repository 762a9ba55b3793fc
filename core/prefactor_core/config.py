"""Configuration of the core client: where to send, and the exporter's bounds."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from prefactor_core.fields import check_known_fields
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


def _env(name: str, default: float, kind: type[int] | type[float]) -> Any:
    """``PREFACTOR_<name>`` read as ``kind``, or ``default`` when unset; a value that is not a
    number raises `ValueError` naming the variable."""
    variable = f"PREFACTOR_{name}"
    text = os.environ.get(variable, "").strip()
    if not text:
        return kind(default)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(
            f"environment variable {variable} must be {'an integer' if kind is int else 'a number'}"
            f", got {text!r}"
        ) from None


def _default(name: str, default: float, kind: type[int] | type[float] = int) -> Any:
    return Field(default_factory=lambda: _env(name, default, kind))


MAX_SECONDS: dict[str, float] = {
    "linger": 60.0,
    "retry_budget": 86_400.0,
    "shutdown_timeout": 300.0,
    "retry_delay_base": 3_600.0,
}
"""The longest each duration of `QueueConfig` may be, in seconds (a day of retries at most;
exit never waits more than five minutes)."""

MIN_POLL_INTERVAL = 1.0
MAX_POLL_INTERVAL = 3_600.0


def _refuse_unknown(owner: type[BaseModel], data: Any) -> Any:
    if isinstance(data, dict):
        check_known_fields(owner.__name__, data, owner.model_fields)
    return data


class QueueConfig(BaseModel):
    """The export policy: every bound and pacing knob of the exporter, in one place.

    Each default comes from a ``PREFACTOR_*`` environment variable when it is set (see
    docs/configuration.md for the table).

    - ``max_buffered_operations`` (``PREFACTOR_MAX_BUFFERED_OPERATIONS``): operations
      waiting or in flight, per destination.
    - ``max_buffered_bytes`` (``PREFACTOR_MAX_BUFFERED_BYTES``): the prepared payload bytes
      they may hold. Near either bound, new runs are refused whole (counted in
      ``dropped_runs``), so the runs already under way still complete; past the byte bound a
      payload is replaced by a note saying so.
    - ``drop_policy``: see `DropPolicy`.
    - ``bulk_max_items`` / ``bulk_max_bytes`` (``PREFACTOR_BULK_MAX_ITEMS`` /
      ``PREFACTOR_BULK_MAX_BYTES``): one ``POST /api/v1/bulk`` request carries whole runs in
      order, up to this many items or bytes. 0 items sends one request per operation. A
      server without the bulk endpoint is detected and served one request per operation.
    - ``linger`` (``PREFACTOR_EXPORT_LINGER``, seconds): how long operations may gather before
      they are sent together (``flush`` and exit do not wait for it).
    - ``max_requests_in_flight`` (``PREFACTOR_MAX_REQUESTS_IN_FLIGHT``): bulk requests under
      way at once.
    - ``export_concurrency`` (``PREFACTOR_EXPORT_CONCURRENCY``): requests under way at once
      when one request carries one operation (causal order kept, siblings side by side).
    - ``retry_budget`` (``PREFACTOR_RETRY_BUDGET``, seconds): how long an operation is retried
      after its first failed attempt (jittered exponential backoff between
      `HttpClientConfig`'s ``initial_retry_delay`` and ``max_retry_delay``, or the server's
      ``Retry-After``); a run is never given up while its operations are within it.
    - ``shutdown_timeout`` (``PREFACTOR_SHUTDOWN_TIMEOUT``, seconds): how long ``close()``,
      interpreter exit and SIGTERM wait for delivery.
    - ``num_workers``, ``max_retries``, ``retry_delay_base``: accepted for compatibility with
      the published SDK; the retry budget above replaces them.
    """

    model_config = ConfigDict(validate_assignment=True)

    max_buffered_operations: int = _default("MAX_BUFFERED_OPERATIONS", 100_000)
    max_buffered_bytes: int = _default("MAX_BUFFERED_BYTES", 64 * 1024 * 1024)
    drop_policy: DropPolicy = "drop_spans_first"
    bulk_max_items: int = _default("BULK_MAX_ITEMS", 500)
    bulk_max_bytes: int = _default("BULK_MAX_BYTES", 2 * 1024 * 1024)
    linger: float = _default("EXPORT_LINGER", 0.02, float)
    max_requests_in_flight: int = _default("MAX_REQUESTS_IN_FLIGHT", 2)
    export_concurrency: int = _default("EXPORT_CONCURRENCY", 16)
    retry_budget: float = _default("RETRY_BUDGET", 600.0, float)
    shutdown_timeout: float = _default("SHUTDOWN_TIMEOUT", 10.0, float)
    num_workers: int = Field(default=3, ge=1, le=20)
    max_retries: int = Field(default=3, ge=0)
    retry_delay_base: float = 1.0

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        return _refuse_unknown(cls, data)

    @field_validator("max_buffered_operations", "max_buffered_bytes", "bulk_max_bytes")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("bulk_max_items")
    @classmethod
    def _items(cls, value: int) -> int:
        if not 0 <= value <= 10_000:
            raise ValueError("must be between 0 and 10000")
        return value

    @field_validator("max_requests_in_flight", "export_concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if not 1 <= value <= 256:
            raise ValueError("must be between 1 and 256")
        return value

    @field_validator("linger", "retry_budget", "shutdown_timeout", "retry_delay_base")
    @classmethod
    def _seconds(cls, value: float, info: ValidationInfo) -> float:
        name = info.field_name or ""
        top = MAX_SECONDS[name]
        # retry_delay_base multiplies a delay, so 0 means nothing there. `not` refuses NaN too.
        if name == "retry_delay_base":
            if not 0 < value <= top:
                raise ValueError(
                    f"{name} must be more than 0 and at most {top:g} seconds, got {value!r}"
                )
        elif not 0 <= value <= top:
            raise ValueError(f"{name} must be between 0 and {top:g} seconds, got {value!r}")
        return value


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
    termination_poll_interval: float | None = 10.0

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        return _refuse_unknown(cls, data)

    @field_validator("termination_poll_interval")
    @classmethod
    def _poll(cls, value: float | None) -> float | None:
        if value is not None and not MIN_POLL_INTERVAL <= value <= MAX_POLL_INTERVAL:
            raise ValueError(
                f"termination_poll_interval must be None (off) or between "
                f"{MIN_POLL_INTERVAL:g} and {MAX_POLL_INTERVAL:g} seconds, got {value!r}"
            )
        return value

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
