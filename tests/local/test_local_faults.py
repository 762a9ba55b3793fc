"""Fault injection: what a client actually sees for each fault, and where faults never apply."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from local_helpers import Api, assert_error

from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


def test_faults_are_off_by_default(server: LocalServer, api: Api) -> None:
    assert server.faults == FaultConfig()
    for _ in range(20):
        assert api.get("/api/v1/ping").status_code == 200


def test_error_rate_answers_the_chosen_statuses_without_doing_the_work(
    server: LocalServer, api: Api
) -> None:
    instance = api.started()
    server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,))
    response = api.span(instance["id"])
    body = assert_error(response, 503, "injected_fault")
    assert "503" in body["message"]
    server.faults = FaultConfig()
    assert server.store.list_spans(instance["id"]) == []


def test_429_carries_retry_after_when_configured(server: LocalServer, api: Api) -> None:
    server.faults = FaultConfig(error_rate=1.0, error_statuses=(429,), retry_after=2)
    response = api.get("/api/v1/ping")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    server.faults = FaultConfig(error_rate=1.0, error_statuses=(429,))
    assert "Retry-After" not in api.get("/api/v1/ping").headers


def test_in_place_changes_apply_and_max_faults_counts_down(server: LocalServer, api: Api) -> None:
    server.faults.error_rate = 1.0
    server.faults.error_statuses = (500,)
    server.faults.max_faults = 2
    statuses = [api.get("/api/v1/ping").status_code for _ in range(4)]
    assert statuses == [500, 500, 200, 200]
    assert server.faults.max_faults == 0


def test_seed_makes_the_fault_sequence_reproducible(server: LocalServer, api: Api) -> None:
    def run() -> list[int]:
        server.faults = FaultConfig(error_rate=0.5, error_statuses=(500, 502, 503), seed=7)
        return [api.get("/api/v1/ping").status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 200 in first and any(status >= 500 for status in first)
    assert len(set(first)) > 2


def test_latency_delays_mutating_requests_only(server: LocalServer, api: Api) -> None:
    server.faults = FaultConfig(latency_ms=1000)
    started = time.monotonic()
    assert api.get("/api/v1/ping").status_code == 200
    assert time.monotonic() - started >= 0.99
    started = time.monotonic()
    assert api.get("/api/v1/agent_instance").status_code == 200
    assert time.monotonic() - started < 0.9


def test_hang_makes_a_client_timeout_fire_then_still_answers(server: LocalServer, api: Api) -> None:
    server.faults = FaultConfig(hang_rate=1.0, hang_seconds=0.6)
    with pytest.raises(httpx.ReadTimeout):
        api.http.get("/api/v1/ping", timeout=0.2)
    response = api.http.get("/api/v1/ping", timeout=5)
    assert response.status_code == 200


def test_hang_then_work_is_done_even_if_the_client_gave_up(server: LocalServer, api: Api) -> None:
    instance = api.started()
    server.faults = FaultConfig(hang_rate=1.0, hang_seconds=0.3, max_faults=1)
    with pytest.raises(httpx.ReadTimeout):
        api.http.post(
            "/api/v1/agent_spans",
            json={
                "details": {
                    "agent_instance_id": instance["id"],
                    "schema_name": "test:llm",
                    "status": "active",
                    "payload": {},
                }
            },
            timeout=0.1,
        )
    assert server.store.wait_until(lambda store: len(store.list_spans(instance["id"])) == 1)


def test_drop_closes_the_connection_without_a_response(server: LocalServer, api: Api) -> None:
    instance = api.started()
    server.faults = FaultConfig(drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        api.span(instance["id"])
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/api/v1/ping")
    server.faults = FaultConfig()
    assert server.store.list_spans(instance["id"]) == []
    assert api.get("/api/v1/ping").status_code == 200


def test_drop_response_does_the_work_so_the_retry_is_a_replay(
    server: LocalServer, api: Api
) -> None:
    instance = api.started()
    server.faults = FaultConfig(drop_response_rate=1.0, max_faults=1)
    key = str(uuid.uuid4())
    with pytest.raises(httpx.RemoteProtocolError):
        api.span(instance["id"], idempotency_key=key)
    retried = api.span(instance["id"], idempotency_key=key)
    assert retried.status_code == 200
    spans = server.store.list_spans(instance["id"])
    assert len(spans) == 1 and spans[0]["replays"] == 1
    assert retried.json()["details"]["id"] == spans[0]["id"]


def test_bad_json_and_non_object_bodies_on_demand(server: LocalServer, api: Api) -> None:
    server.faults = FaultConfig(bad_json_rate=1.0)
    response = api.get("/api/v1/ping")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    server.faults = FaultConfig(non_object_rate=1.0)
    response = api.get("/api/v1/ping")
    assert response.status_code == 200
    assert not isinstance(response.json(), dict)


def test_faults_never_touch_admin_or_read_routes(server: LocalServer, api: Api) -> None:
    instance = api.started()
    server.faults = FaultConfig(error_rate=1.0, error_statuses=(500,))
    assert api.get("/api/v1/agent_instance").status_code == 200
    assert api.get("/api/v1/agent_spans", params={"agent_instance_id": instance["id"]}).is_success
    assert api.get("/api/v1/agent").status_code == 200
    assert api.get("/api/v1/_admin/faults").status_code == 200
    assert api.post(f"/api/v1/agent_instance/{instance['id']}/finish").status_code == 500


def test_path_prefix_limits_the_faults(server: LocalServer, api: Api) -> None:
    instance = api.started()
    server.faults = FaultConfig(
        error_rate=1.0, error_statuses=(502,), path_prefix="/api/v1/agent_spans"
    )
    assert api.span(instance["id"]).status_code == 502
    assert api.get("/api/v1/ping").status_code == 200
    assert api.post(f"/api/v1/agent_instance/{instance['id']}/finish").status_code == 200


def test_admin_route_sets_and_clears_faults(server: LocalServer, api: Api) -> None:
    response = api.http.put(
        "/api/v1/_admin/faults",
        json={"error_rate": 1, "error_statuses": [504], "seed": 3, "latency_ms": 1},
    )
    assert response.status_code == 200
    assert response.json()["details"]["faults"]["error_statuses"] == [504]
    assert server.faults.error_rate == 1 and server.faults.error_statuses == (504,)
    assert api.get("/api/v1/ping").status_code == 504
    injected = api.get("/api/v1/_admin/faults").json()["details"]["injected"]
    assert injected["error"] >= 1
    assert api.http.delete("/api/v1/_admin/faults").status_code == 200
    assert server.faults == FaultConfig()
    assert api.get("/api/v1/ping").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"error_rate": 2}, "error_rate"),
        ({"error_statuses": [200]}, "error_statuses"),
        ({"hang_seconds": -1}, "hang_seconds"),
        ({"colour": "red"}, "colour"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_admin_route_rejects_bad_settings(
    server: LocalServer, api: Api, body: dict[str, object], field: str
) -> None:
    response = api.http.put("/api/v1/_admin/faults", json=body)
    assert field in assert_error(response, 422)["errors"]
    assert server.faults == FaultConfig()


def test_admin_route_needs_the_token(server: LocalServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert_error(client.put("/api/v1/_admin/faults", json={"error_rate": 1}), 401)
    assert server.faults == FaultConfig()


def test_faults_given_at_construction(tmp_path: object) -> None:
    with LocalServer(faults=FaultConfig(error_rate=1.0, error_statuses=(503,))) as server:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}
        ) as client:
            assert client.post("/api/v1/agent_spans", json={}).status_code == 503
            assert client.get("/api/v1/agent_instance").status_code == 200
        assert server.injected_faults["error"] == 1


def test_requests_are_recorded_with_their_faults(server: LocalServer, api: Api) -> None:
    server.clear_requests()
    server.faults = FaultConfig(drop_rate=1.0, max_faults=1)
    body = {"details": {"agent_instance_id": "x"}, "idempotency_key": "recorded-key"}
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/api/v1/agent_spans", body, headers={"X-Prefactor-SDK": "test-sdk@1.0"})
    api.post("/api/v1/agent_spans", body, headers={"X-Prefactor-SDK": "test-sdk@1.0"})
    api.get("/api/v1/agent_instance", params={"agent_id": "a"})
    dropped, retried, listed = server.requests
    assert (dropped.method, dropped.path, dropped.status, dropped.fault) == (
        "POST",
        "/api/v1/agent_spans",
        None,
        "drop",
    )
    assert dropped.json() == retried.json() == body
    assert dropped.headers["x-prefactor-sdk"] == "test-sdk@1.0"
    assert retried.status == 422 and retried.fault is None
    assert listed.query == "agent_id=a" and listed.status == 200


def test_faults_survive_a_restart(local_server: LocalServer) -> None:
    local_server.faults.error_rate = 1.0
    local_server.restart()
    assert local_server.faults.error_rate == 1.0
    with httpx.Client(
        base_url=local_server.url, headers={"Authorization": f"Bearer {local_server.token}"}
    ) as client:
        assert client.get("/api/v1/ping").status_code >= 429
