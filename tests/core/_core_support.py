"""Helpers for the core tests: configs aimed at the local server, and reads of what it stored."""

from __future__ import annotations

import socket
from typing import Any

from prefactor_core import PrefactorCoreConfig, QueueConfig
from prefactor_http.config import HttpClientConfig
from prefactor_local.server import LocalServer

AGENT_VERSION = {"name": "test-agent", "external_identifier": "v1"}


def http_config(url: str, token: str, **overrides: Any) -> HttpClientConfig:
    """Fast-retrying HTTP settings."""
    values: dict[str, Any] = {
        "api_url": url,
        "api_token": token,
        "request_timeout": 5.0,
        "max_retries": 3,
        "initial_retry_delay": 0.01,
        "max_retry_delay": 0.05,
    }
    values.update(overrides)
    return HttpClientConfig(**values)


def config_for(
    server: LocalServer, *, http: dict[str, Any] | None = None, **queue: Any
) -> PrefactorCoreConfig:
    """A core config for ``server``; keyword arguments set `QueueConfig` fields."""
    queue_values: dict[str, Any] = {"retry_budget": 5.0}
    queue_values.update(queue)
    poll = queue_values.pop("termination_poll_interval", 1.0)
    return PrefactorCoreConfig(
        http_config=http_config(server.url, server.token, **(http or {})),
        queue_config=QueueConfig(**queue_values),
        termination_poll_interval=poll,
    )


def unreachable_url() -> str:
    """A loopback URL where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def processing_log(server: LocalServer) -> list[tuple[str, str]]:
    """Every mutating request the server processed, in processing order: (route, resource id)."""
    with server.store.read() as conn:
        rows = conn.execute(
            "SELECT route, resource_id FROM idempotency_keys ORDER BY rowid"
        ).fetchall()
    return [(str(row["route"]), str(row["resource_id"])) for row in rows]


def spans_by_id(server: LocalServer, instance_id: str) -> dict[str, dict[str, Any]]:
    """The stored spans of an instance, by id."""
    return {span["id"]: span for span in server.store.list_spans(instance_id)}


def api_requests(server: LocalServer) -> list[Any]:
    """The requests the server recorded, less its admin routes (health checks, faults)."""
    return [r for r in server.requests if not r.path.startswith("/api/v1/_admin")]
