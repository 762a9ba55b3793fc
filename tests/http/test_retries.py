"""Retries against the local server's fault injection: what is retried, how long it waits."""

from __future__ import annotations

import json
import socket
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest
from _http_support import AGENT_VERSION, SCHEMA_VERSION, ConfigFactory, WireRecorder

from prefactor_http import (
    HttpClientConfig,
    PrefactorApiError,
    PrefactorHttpClient,
    PrefactorRetryExhaustedError,
    RetryAttempt,
    RetryPolicy,
    is_transient_error,
    parse_retry_after,
)
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


async def register(client: PrefactorHttpClient, instance_id: str) -> None:
    await client.agent_instances.register(
        AGENT_VERSION, SCHEMA_VERSION, id=instance_id, idempotency_key=f"reg-{instance_id}"
    )


async def test_5xx_then_success(make_config: ConfigFactory, local_server: LocalServer) -> None:
    retries: list[RetryAttempt] = []
    wire = WireRecorder()
    async with PrefactorHttpClient(
        make_config(), transport=wire, on_retry=retries.append
    ) as client:
        local_server.faults = FaultConfig(
            error_rate=1.0, error_statuses=(500, 502, 503), max_faults=2, seed=7
        )
        instance = await client.agent_instances.register(
            AGENT_VERSION, SCHEMA_VERSION, id="inst-5xx", idempotency_key="key-5xx"
        )
    assert instance.id == "inst-5xx"
    assert [r.attempt for r in retries] == [1, 2]
    assert all(r.path == "/api/v1/agent_instance/register" for r in retries)
    assert all(isinstance(r.error, PrefactorApiError) for r in retries)
    assert all(r.error.status_code in (500, 502, 503) for r in retries)  # type: ignore[attr-defined]
    assert all(0 < r.delay <= 0.05 for r in retries)
    assert len(wire.requests) == 3
    assert local_server.store.counts()["agent_instances"] == 1
    assert local_server.injected_faults["error"] == 2


async def test_route_specific_fault_only_hits_that_route(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    await register(client, "inst-route")
    local_server.faults = FaultConfig(
        error_rate=1.0, error_statuses=(503,), path_prefix="/api/v1/agent_spans", max_faults=1
    )
    await client.agent_instances.start("inst-route")
    await client.agent_spans.create("inst-route", "demo:llm", id="span-route")
    paths = [r.url.path for r in wire.requests]
    assert paths == [
        "/api/v1/agent_instance/register",
        "/api/v1/agent_instance/inst-route/start",
        "/api/v1/agent_spans",
        "/api/v1/agent_spans",
    ]
    assert [s["id"] for s in local_server.store.list_spans("inst-route")] == ["span-route"]


async def test_429_retry_after_is_honoured(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    retries: list[RetryAttempt] = []
    config = make_config(max_retry_delay=5.0)
    async with PrefactorHttpClient(config, on_retry=retries.append) as client:
        local_server.faults = FaultConfig(
            error_rate=1.0, error_statuses=(429,), retry_after=0.4, max_faults=1
        )
        started = time.monotonic()
        await client.validate_token()
        elapsed = time.monotonic() - started
    assert len(retries) == 1
    assert retries[0].delay == pytest.approx(0.4)
    assert isinstance(retries[0].error, PrefactorApiError)
    assert retries[0].error.retry_after == pytest.approx(0.4)
    assert elapsed >= 0.35, "the retry waited for Retry-After, not the 10 ms backoff"


async def test_retry_after_is_capped_at_max_retry_delay(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    retries: list[RetryAttempt] = []
    async with PrefactorHttpClient(make_config(), on_retry=retries.append) as client:
        local_server.faults = FaultConfig(
            error_rate=1.0, error_statuses=(429,), retry_after=30, max_faults=1
        )
        started = time.monotonic()
        await client.validate_token()
        elapsed = time.monotonic() - started
    assert [r.delay for r in retries] == [0.05]
    assert elapsed < 10


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    config = HttpClientConfig(
        "https://api.example.test",
        "tok",
        initial_retry_delay=1.0,
        retry_multiplier=2.0,
        max_retry_delay=5.0,
    )
    policy = RetryPolicy(config)
    for index, base in enumerate([1.0, 2.0, 4.0]):
        delays = {policy.backoff(index) for _ in range(50)}
        assert all(base * 0.75 <= d <= min(base * 1.25, 5.0) for d in delays)
        assert len(delays) > 1, "jittered"
    assert policy.backoff(3) == 5.0
    assert policy.backoff(10_000) == 5.0


async def test_hang_past_request_timeout_then_success(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    retries: list[RetryAttempt] = []
    config = make_config(request_timeout=0.3)
    async with PrefactorHttpClient(config, on_retry=retries.append) as client:
        local_server.faults = FaultConfig(hang_rate=1.0, hang_seconds=3, max_faults=1)
        started = time.monotonic()
        envelope = await client.validate_token()
        elapsed = time.monotonic() - started
    assert envelope["status"] == "success"
    assert len(retries) == 1
    assert isinstance(retries[0].error, httpx.TimeoutException)
    assert is_transient_error(retries[0].error)
    assert elapsed < 2.5, "the client gave up on the hung attempt instead of waiting 3 s"


async def test_dropped_connection_then_success(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    await register(client, "inst-drop")
    local_server.faults = FaultConfig(drop_rate=1.0, max_faults=1)
    started = await client.agent_instances.start("inst-drop", idempotency_key="key-drop")
    assert started.status == "active"
    assert local_server.injected_faults["drop"] == 1
    assert len(wire.bodies("/api/v1/agent_instance/inst-drop/start")) == 2


async def test_lost_response_is_replayed_with_the_same_key(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    # The server does the work, then closes the connection before answering.
    local_server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    await client.agent_instances.register(
        AGENT_VERSION, SCHEMA_VERSION, id="inst-lost", idempotency_key="key-lost-register"
    )
    local_server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)
    span = await client.agent_spans.create(
        "inst-lost", "demo:llm", id="span-lost", started_at=when, idempotency_key="key-lost-span"
    )
    assert span.id == "span-lost"
    assert local_server.injected_faults["drop_response"] == 2

    register_bodies = wire.bodies("/api/v1/agent_instance/register")
    span_bodies = wire.bodies("/api/v1/agent_spans")
    assert len(register_bodies) == 2 and len(set(register_bodies)) == 1, "same bytes each attempt"
    assert len(span_bodies) == 2 and len(set(span_bodies)) == 1
    sent = json.loads(span_bodies[0])
    assert sent["idempotency_key"] == sent["details"]["idempotency_key"] == "key-lost-span"

    counts = local_server.store.counts()
    assert (counts["agent_instances"], counts["agent_spans"]) == (1, 1)
    instance = local_server.store.get_instance("inst-lost")
    assert instance is not None and instance["replays"] == 1
    assert local_server.store.list_spans("inst-lost")[0]["replays"] == 1


async def test_a_lost_response_without_a_callers_key_is_replayed_with_the_key_made_for_it(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    # As a user of the published client does: no idempotency key anywhere.
    local_server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    instance = await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION)
    local_server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    await client.agent_instances.start(instance.id)
    local_server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    span = await client.agent_spans.create(instance.id, "demo:llm")
    local_server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    await client.agent_spans.finish(span.id, status="complete")
    assert local_server.injected_faults["drop_response"] == 4

    paths = (
        "/api/v1/agent_instance/register",
        f"/api/v1/agent_instance/{instance.id}/start",
        "/api/v1/agent_spans",
        f"/api/v1/agent_spans/{span.id}/finish",
    )
    keys = []
    for path in paths:
        first, retry = wire.bodies(path)
        assert first == retry, path  # the same bytes, so the same key, on the retry
        key = json.loads(first)["idempotency_key"]
        assert uuid.UUID(key).version == 4, path
        keys.append(key)
    assert len(set(keys)) == len(keys), "one key per call"

    counts = local_server.store.counts()
    assert (counts["agent_instances"], counts["agent_spans"]) == (1, 1)
    stored = local_server.store.get_instance(instance.id)
    assert stored is not None and stored["status"] == "active" and stored["replays"] == 2
    (stored_span,) = local_server.store.list_spans(instance.id)
    assert stored_span["status"] == "complete" and stored_span["replays"] == 2


async def test_retries_exhausted(make_config: ConfigFactory, local_server: LocalServer) -> None:
    wire = WireRecorder()
    async with PrefactorHttpClient(make_config(max_retries=2), transport=wire) as client:
        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,))
        with pytest.raises(PrefactorRetryExhaustedError) as caught:
            await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, id="inst-never")
    error = caught.value
    assert error.message == "Request to /api/v1/agent_instance/register failed after 3 attempts"
    assert isinstance(error.last_error, PrefactorApiError)
    assert error.last_error.status_code == 503
    assert error.__cause__ is error.last_error
    assert is_transient_error(error)
    assert len(wire.requests) == 3
    assert local_server.store.counts()["agent_instances"] == 0


async def test_zero_retries_reraises_the_original_error(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    wire = WireRecorder()
    async with PrefactorHttpClient(make_config(max_retries=0), transport=wire) as client:
        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(502,))
        with pytest.raises(PrefactorApiError) as caught:
            await client.validate_token()
    assert type(caught.value) is PrefactorApiError
    assert caught.value.status_code == 502
    assert len(wire.requests) == 1


async def test_only_configured_statuses_are_retried(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    wire = WireRecorder()
    config = make_config(retry_on_status_codes=(503,))
    async with PrefactorHttpClient(config, transport=wire) as client:
        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(502,), max_faults=1)
        with pytest.raises(PrefactorApiError) as caught:
            await client.validate_token()
        assert caught.value.status_code == 502
        assert len(wire.requests) == 1, "502 is not in retry_on_status_codes"

        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,), max_faults=1)
        await client.validate_token()
        assert len(wire.requests) == 3, "503 is retried"

    wire = WireRecorder()
    config = make_config(retry_on_status_codes=(409,))
    async with PrefactorHttpClient(config, transport=wire) as client:
        await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, id="inst-409")
        with pytest.raises(PrefactorRetryExhaustedError) as exhausted:
            await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, id="inst-409")
    assert len(wire.requests) == 1 + 4, "a configured 409 is retried like any listed status"
    assert not is_transient_error(exhausted.value), "but it stays a permanent error"


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_connection_refused_is_retried_then_exhausted(transport: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    retries: list[RetryAttempt] = []
    config = HttpClientConfig(
        f"http://127.0.0.1:{port}",
        "tok-unused",
        max_retries=2,
        initial_retry_delay=0.01,
        max_retry_delay=0.02,
        transport=transport,
    )
    async with PrefactorHttpClient(config, on_retry=retries.append) as client:
        with pytest.raises(PrefactorRetryExhaustedError) as caught:
            await client.validate_token()
    # httpx-aiohttp reports a refused connection as ConnectTimeout, httpx as ConnectError.
    assert isinstance(caught.value.last_error, (httpx.ConnectError, httpx.ConnectTimeout))
    assert is_transient_error(caught.value)
    assert [r.attempt for r in retries] == [1, 2]


async def test_a_failing_on_retry_callback_does_not_stop_retries(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    calls: list[int] = []

    async def on_retry(attempt: RetryAttempt) -> None:
        calls.append(attempt.attempt)
        raise RuntimeError("counter broke")

    async with PrefactorHttpClient(make_config(), on_retry=on_retry) as client:
        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(500,), max_faults=1)
        assert (await client.validate_token())["status"] == "success"
    assert calls == [1]


def test_exhausted_wrapping_a_permanent_error_is_permanent() -> None:
    permanent = PrefactorApiError("conflict", "already_exists", 409)
    assert not is_transient_error(PrefactorRetryExhaustedError("x", permanent))
    assert not is_transient_error(PrefactorRetryExhaustedError("x", None))
    timeout = httpx.ReadTimeout("slow")
    assert is_transient_error(PrefactorRetryExhaustedError("x", timeout))
    assert is_transient_error(httpx.RemoteProtocolError("Server disconnected"))
    assert is_transient_error(httpx.ReadError("reset"))
    assert not is_transient_error(httpx.UnsupportedProtocol("ftp"))
