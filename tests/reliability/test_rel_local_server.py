"""The local server turns away bad requests and keeps serving; concurrent writers lose nothing."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _rel_support import Tally, report

from prefactor_local.server import LocalServer

WRITERS = 8
REQUESTS_EACH = 100


@pytest.fixture
def api(local_server: LocalServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {local_server.token}"}
    with httpx.Client(base_url=local_server.url, headers=headers, timeout=30) as client:
        yield client


def _register(api: httpx.Client) -> str:
    response = api.post(
        "/api/v1/agent_instance/register",
        json={"agent_version": {"name": "load"}, "agent_schema_version": {}},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["details"]["id"])


def _span(instance_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "details": {
            "agent_instance_id": instance_id,
            "schema_name": "load:write",
            "status": "active",
            "payload": payload,
            "idempotency_key": str(uuid.uuid4()),
        }
    }


def _still_serving(api: httpx.Client, instance_id: str) -> None:
    response = api.post("/api/v1/agent_spans", json=_span(instance_id, check="alive"))
    assert response.status_code == 200, response.text


def test_bad_requests_are_refused_and_the_server_keeps_serving(
    local_server: LocalServer, api: httpx.Client
) -> None:
    instance_id = _register(api)
    body = _span(instance_id, n=1)
    refused: list[tuple[str, httpx.Response]] = [
        ("no token", httpx.post(f"{local_server.url}/api/v1/agent_spans", json=body)),
        (
            "wrong token",
            httpx.post(
                f"{local_server.url}/api/v1/agent_spans",
                json=body,
                headers={"Authorization": "Bearer pfl_wrong"},
            ),
        ),
        (
            "not bearer",
            httpx.post(
                f"{local_server.url}/api/v1/agent_spans",
                json=body,
                headers={"Authorization": f"Basic {local_server.token}"},
            ),
        ),
    ]
    for what, response in refused:
        assert response.status_code == 401, what
        assert response.json()["code"] == "unauthorized", what
        assert local_server.token not in response.text
        _still_serving(api, instance_id)

    oversized = api.post(
        "/api/v1/agent_spans",
        content=b'{"details": {"payload": "' + b"x" * (6 * 1024 * 1024) + b'"}}',
        headers={"Content-Type": "application/json"},
    )
    assert oversized.status_code == 413
    _still_serving(api, instance_id)

    for raw in (b'{"details": {', b"\xff\xfe not json", b'{"details": NaN}', b"[1, 2"):
        malformed = api.post(
            "/api/v1/agent_spans", content=raw, headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400, raw
        assert malformed.json()["code"] == "invalid_json"
        _still_serving(api, instance_id)

    stored = local_server.store.list_spans(instance_id)
    assert [s["payload"] for s in stored] == [{"check": "alive"}] * len(stored)
    assert len(stored) == len(refused) + 1 + 4  # only the good requests left rows


def test_concurrent_writers_lose_no_row(local_server: LocalServer, api: httpx.Client) -> None:
    instance_ids = [_register(api) for _ in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    failures: list[str] = []

    def writer(number: int) -> None:
        headers = {"Authorization": f"Bearer {local_server.token}"}
        with httpx.Client(base_url=local_server.url, headers=headers, timeout=60) as client:
            start.wait()
            for index in range(REQUESTS_EACH):
                # Half into the writer's own instance, half into one shared by everybody.
                target = instance_ids[number] if index % 2 else instance_ids[0]
                response = client.post(
                    "/api/v1/agent_spans", json=_span(target, writer=number, index=index)
                )
                if response.status_code != 200:
                    failures.append(f"{number}/{index}: {response.status_code}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not failures, failures[:5]

    rows = [s for iid in instance_ids for s in local_server.store.list_spans(iid)]
    written = {(s["payload"]["writer"], s["payload"]["index"]) for s in rows}
    expected = {(n, i) for n in range(WRITERS) for i in range(REQUESTS_EACH)}
    assert written == expected  # none lost
    assert len(rows) == len(expected)  # none doubled
    assert local_server.store.counts()["agent_spans"] == len(expected)
    total = WRITERS * REQUESTS_EACH
    report(
        f"local server: {WRITERS} threads x {REQUESTS_EACH} writes",
        total,
        Tally(total, len(rows), len(rows) - len(written), len(expected - written)),
    )


def test_stopping_with_slow_requests_in_flight_is_prompt_and_quiet(
    local_server: LocalServer, api: httpx.Client, caplog: Any
) -> None:
    instance_id = _register(api)
    local_server.faults.latency_ms = 30_000
    caplog.set_level(logging.WARNING)
    errors: list[BaseException] = []

    def slow_write() -> None:
        try:
            httpx.post(
                f"{local_server.url}/api/v1/agent_spans",
                json=_span(instance_id, n=1),
                headers={"Authorization": f"Bearer {local_server.token}"},
                timeout=60,
            )
        except httpx.HTTPError as exc:  # the server went away mid-request: expected
            errors.append(exc)

    writers = [threading.Thread(target=slow_write) for _ in range(3)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 10
    while len(local_server.requests) < 4:  # the register, and the three slow writes
        assert time.monotonic() < deadline, "the slow writes never arrived"
        time.sleep(0.01)
    started = time.monotonic()
    local_server.stop()
    assert time.monotonic() - started < 5  # not the 30 s the requests were told to take
    for writer in writers:
        writer.join(timeout=10)
    assert len(errors) == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
