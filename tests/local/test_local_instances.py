"""Agent instance endpoints over real loopback HTTP: lifecycle, validation, idempotency."""

from __future__ import annotations

import uuid

import httpx
import pytest
from local_helpers import Api, assert_error, client_for

from prefactor_local.pfid import is_pfid
from prefactor_local.server import LocalServer

INSTANCE_FIELDS = {
    "type",
    "id",
    "account_id",
    "agent_id",
    "agent_version_id",
    "environment_id",
    "agent_deployment_id",
    "status",
    "inserted_at",
    "updated_at",
    "started_at",
    "finished_at",
    "termination_reason",
    "span_counts",
    "purpose",
    "quality_payloads",
}


def test_ping_answers_with_a_success_envelope(api: Api) -> None:
    response = api.get("/api/v1/ping")
    assert response.status_code == 200
    assert response.json()["status"] == "success"
    assert isinstance(response.json()["details"], dict)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": ""}],
)
def test_missing_or_wrong_token_is_401(server: LocalServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for method, path in [
            ("GET", "/api/v1/ping"),
            ("POST", "/api/v1/agent_instance/register"),
            ("GET", "/api/v1/agent_instance"),
            ("PUT", "/api/v1/_admin/faults"),
        ]:
            response = client.request(method, path, json={})
            body = assert_error(response, 401, "unauthorized")
            assert set(body) >= {"status", "code", "message"}


def test_register_returns_a_pending_instance_with_every_documented_field(api: Api) -> None:
    instance = api.register(purpose="eval", environment_id="env-1")
    assert set(instance) >= INSTANCE_FIELDS
    assert instance["type"] == "agent_instance"
    assert instance["status"] == "pending"
    assert instance["purpose"] == "eval"
    assert instance["agent_id"] == "agent-tests"
    assert instance["environment_id"] == "env-1"
    assert instance["started_at"] is None and instance["finished_at"] is None
    assert is_pfid(instance["id"])
    assert instance["inserted_at"].endswith("Z")
    assert instance["span_counts"]["total"] == 0
    assert set(instance["span_counts"]) >= {
        "total",
        "pending",
        "active",
        "complete",
        "failed",
        "cancelled",
        "finished",
    }


def test_register_defaults_purpose_and_agent_for_deployment_tokens(api: Api) -> None:
    instance = api.register(agent_id=None)
    assert instance["purpose"] == "live"
    assert instance["agent_id"] and instance["environment_id"]
    again = api.register(agent_id=None)
    assert again["agent_id"] == instance["agent_id"]
    assert again["agent_deployment_id"] == instance["agent_deployment_id"]


def test_start_then_finish(api: Api, server: LocalServer) -> None:
    instance = api.register()
    started = api.post(
        f"/api/v1/agent_instance/{instance['id']}/start",
        {"timestamp": "2026-01-02T03:04:05.5+02:00"},
    )
    assert started.status_code == 200
    assert started.json()["details"]["status"] == "active"
    assert started.json()["details"]["started_at"] == "2026-01-02T01:04:05.500000Z"
    finished = api.post(
        f"/api/v1/agent_instance/{instance['id']}/finish",
        {"status": "failed", "timestamp": "2026-01-02T01:05:00Z"},
    )
    assert finished.status_code == 200
    assert finished.json()["details"]["status"] == "failed"
    assert finished.json()["details"]["finished_at"] == "2026-01-02T01:05:00.000000Z"
    stored = server.store.get_instance(instance["id"])
    assert stored is not None and stored["status"] == "failed"


def test_start_and_finish_without_a_body_use_server_time(api: Api) -> None:
    instance = api.register()
    started = api.post(f"/api/v1/agent_instance/{instance['id']}/start")
    assert started.status_code == 200 and started.json()["details"]["started_at"]
    finished = api.post(f"/api/v1/agent_instance/{instance['id']}/finish")
    assert finished.json()["details"]["status"] == "complete"
    assert finished.json()["details"]["finished_at"] >= started.json()["details"]["started_at"]


def test_get_instance_and_unknown_ids(api: Api) -> None:
    instance = api.register()
    response = api.get(f"/api/v1/agent_instance/{instance['id']}")
    assert response.status_code == 200
    assert response.json()["details"]["id"] == instance["id"]
    for method, path in [
        ("GET", "/api/v1/agent_instance/nope"),
        ("POST", "/api/v1/agent_instance/nope/start"),
        ("POST", "/api/v1/agent_instance/nope/finish"),
        ("POST", "/api/v1/agent_instance/nope/terminate"),
    ]:
        assert_error(api.http.request(method, path, json={}), 404, "not_found")
    assert_error(
        api.post("/api/v1/agent_instance/nope/record_quality", {"name": "q", "payload": None}),
        404,
        "not_found",
    )


def test_finishing_twice_is_409_invalid_action(api: Api) -> None:
    instance = api.started()
    path = f"/api/v1/agent_instance/{instance['id']}/finish"
    assert api.post(path, {"status": "complete"}).status_code == 200
    assert_error(api.post(path, {"status": "complete"}), 409, "invalid_action")
    assert_error(api.post(f"/api/v1/agent_instance/{instance['id']}/start"), 409, "invalid_action")


def test_record_quality_sets_and_removes_payloads(api: Api) -> None:
    instance = api.started()
    path = f"/api/v1/agent_instance/{instance['id']}/record_quality"
    first = api.post(path, {"name": "accuracy", "payload": {"score": 0.9}})
    assert first.status_code == 200
    assert first.json()["details"]["quality_payloads"] == {"accuracy": {"score": 0.9}}
    api.post(path, {"name": "tone", "payload": {"ok": True}})
    removed = api.post(path, {"name": "accuracy", "payload": None})
    assert removed.json()["details"]["quality_payloads"] == {"tone": {"ok": True}}
    errors = assert_error(api.post(path, {"name": "x"}), 422)["errors"]
    assert "payload" in errors
    assert "name" in assert_error(api.post(path, {"payload": {}}), 422)["errors"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"agent_version": None}, "agent_version"),
        ({"agent_schema_version": None}, "agent_schema_version"),
        ({"agent_version": "v1"}, "agent_version"),
        ({"purpose": "production"}, "purpose"),
        ({"idempotency_key": "k" * 65}, "idempotency_key"),
        ({"id": "x" * 65}, "id"),
        ({"id": ""}, "id"),
        ({"id": 12}, "id"),
        ({"agent_id": 5}, "agent_id"),
        ({"update_current_version": "yes"}, "update_current_version"),
    ],
)
def test_invalid_register_bodies_are_422(api: Api, change: dict[str, object], field: str) -> None:
    body = api.register_body()
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None}
    response = api.post("/api/v1/agent_instance/register", body)
    errors = assert_error(response, 422, "invalid_value")["errors"]
    assert field in errors


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
def test_register_body_must_be_an_object(api: Api, body: object) -> None:
    response = api.http.post(
        "/api/v1/agent_instance/register",
        content=b"" if body is None else httpx.Response(200, json=body).content,
        headers={"Content-Type": "application/json"},
    )
    assert "body" in assert_error(response, 422)["errors"]


@pytest.mark.parametrize(
    ("timestamp", "message"),
    [
        ("2026-01-02T03:04:05", "timezone"),
        ("yesterday", "ISO-8601"),
        ("2026-13-02T03:04:05Z", "ISO-8601"),
        (12345, "string"),
    ],
)
def test_bad_or_naive_timestamps_are_422(api: Api, timestamp: object, message: str) -> None:
    instance = api.register()
    response = api.post(f"/api/v1/agent_instance/{instance['id']}/start", {"timestamp": timestamp})
    errors = assert_error(response, 422, "invalid_value")["errors"]
    assert message in errors["timestamp"][0]
    assert api.get(f"/api/v1/agent_instance/{instance['id']}").json()["details"]["status"] == (
        "pending"
    )


def test_unknown_finish_status_is_422(api: Api) -> None:
    instance = api.started()
    response = api.post(f"/api/v1/agent_instance/{instance['id']}/finish", {"status": "done"})
    assert "status" in assert_error(response, 422)["errors"]
    response = api.post(f"/api/v1/agent_instance/{instance['id']}/finish", {"status": "active"})
    assert "status" in assert_error(response, 422)["errors"]


def test_client_given_id_is_honoured_and_collisions_are_409(api: Api) -> None:
    instance_id = f"client-{uuid.uuid4()}"
    instance = api.register(id=instance_id)
    assert instance["id"] == instance_id
    response = api.post("/api/v1/agent_instance/register", api.register_body(id=instance_id))
    assert_error(response, 409, "already_exists")


def test_same_idempotency_key_replays_the_first_response(api: Api, server: LocalServer) -> None:
    body = api.register_body()
    first = api.post("/api/v1/agent_instance/register", body)
    second = api.post("/api/v1/agent_instance/register", body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    instance_id = first.json()["details"]["id"]
    same_agent = [i for i in server.store.list_instances("agent-tests") if i["id"] == instance_id]
    assert len(same_agent) == 1
    assert same_agent[0]["replays"] == 1
    path = f"/api/v1/agent_instance/{instance_id}/start"
    start_body = {"timestamp": None, "idempotency_key": "start-key-1"}
    assert api.post(path, start_body).json() == api.post(path, start_body).json()
    stored = server.store.get_instance(instance_id)
    assert stored is not None and stored["replays"] == 2
    fresh = api.post(path, {"timestamp": None, "idempotency_key": "start-key-2"})
    assert_error(fresh, 409, "invalid_action")


def test_idempotency_key_header_is_honoured(api: Api, server: LocalServer) -> None:
    body = api.register_body(idempotency_key=None)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post("/api/v1/agent_instance/register", body, headers=headers)
    second = api.post("/api/v1/agent_instance/register", body, headers=headers)
    assert first.json() == second.json()
    stored = server.store.get_instance(first.json()["details"]["id"])
    assert stored is not None and stored["replays"] == 1


def test_a_key_is_scoped_to_its_route(api: Api) -> None:
    key = str(uuid.uuid4())
    a = api.register(idempotency_key=key)
    b = api.register()
    start_a = api.post(f"/api/v1/agent_instance/{a['id']}/start", {"idempotency_key": key})
    start_b = api.post(f"/api/v1/agent_instance/{b['id']}/start", {"idempotency_key": key})
    assert start_a.json()["details"]["status"] == "active"
    assert start_a.json()["details"]["id"] == a["id"]
    assert start_b.json()["details"]["id"] == b["id"]
    assert start_b.json()["details"]["status"] == "active"


def test_agent_version_details_are_immutable_per_external_identifier(
    api: Api, server: LocalServer
) -> None:
    api.register(agent_id="agent-versions")
    renamed = dict(api.register_body(agent_id="agent-versions"))
    renamed["agent_version"] = {"name": "Renamed", "external_identifier": "v1"}
    response = api.post("/api/v1/agent_instance/register", renamed)
    assert_error(response, 409, "already_exists")
    api.register(
        agent_id="agent-versions",
        agent_version={"name": "Renamed", "external_identifier": "v2"},
        agent_schema_version={"external_identifier": "schema-2", "span_type_schemas": []},
    )
    versions = server.store.list_agent_versions("agent-versions")
    assert [v["external_identifier"] for v in versions] == ["v1", "v2"]
    schemas = server.store.list_agent_schema_versions("agent-versions")
    assert [s["external_identifier"] for s in schemas] == ["schema-1", "schema-2"]
    assert schemas[0]["body"]["span_type_schemas"][0]["name"] == "test:llm"
    listed = api.get("/api/v1/agent_schema_version", params={"agent_id": "agent-versions"})
    assert len(listed.json()["summaries"]) == 2


def test_instance_external_identifier_is_unique_per_agent(api: Api) -> None:
    ext = f"run-{uuid.uuid4()}"
    instance = api.register(external_identifier=ext)
    assert instance["external_identifier"] == ext
    response = api.post(
        "/api/v1/agent_instance/register", api.register_body(external_identifier=ext)
    )
    assert_error(response, 409, "already_exists")
    other = api.register(external_identifier=ext, agent_id="agent-elsewhere")
    assert other["external_identifier"] == ext


def test_terminate_marks_the_instance_and_blocks_finish(api: Api) -> None:
    instance = api.started()
    path = f"/api/v1/agent_instance/{instance['id']}"
    response = api.post(f"{path}/terminate", {"reason": "budget exceeded"})
    assert response.status_code == 200
    details = response.json()["details"]
    assert details["status"] == "terminated"
    assert details["termination_reason"] == "budget exceeded"
    polled = api.get(path).json()["details"]
    assert polled["status"] == "terminated"
    assert polled["termination_reason"] == "budget exceeded"
    assert_error(api.post(f"{path}/finish", {"status": "complete"}), 409, "invalid_action")
    assert_error(api.post(f"{path}/terminate", {"reason": "again"}), 409, "invalid_action")


def test_local_server_terminate_helper(server: LocalServer) -> None:
    with client_for(server) as client:
        api = Api(client)
        instance = api.started()
        details = server.terminate(instance["id"], "stop now")
        assert details["status"] == "terminated"
        polled = api.get(f"/api/v1/agent_instance/{instance['id']}").json()["details"]
        assert polled["termination_reason"] == "stop now"
