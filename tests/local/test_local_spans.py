"""Span endpoints: create/finish, coalesced creates, parents, control signals, idempotency."""

from __future__ import annotations

import uuid

import pytest
from local_helpers import Api, assert_error

from prefactor_local.pfid import is_pfid, pfid_partition
from prefactor_local.server import LocalServer

SPAN_FIELDS = {
    "type",
    "id",
    "agent_instance_id",
    "parent_span_id",
    "schema_name",
    "status",
    "payload",
    "result_payload",
    "started_at",
    "finished_at",
    "inserted_at",
    "updated_at",
}


def test_create_and_finish_a_span(api: Api, server: LocalServer) -> None:
    instance = api.started()
    created = api.span(instance["id"], payload={"model_name": "fake", "inputs": {"q": "hi"}})
    assert created.status_code == 200
    body = created.json()
    assert body["status"] == "success" and "control" not in body
    span = body["details"]
    assert set(span) >= SPAN_FIELDS
    assert span["type"] == "agent_span" and span["status"] == "active"
    assert span["payload"] == {"model_name": "fake", "inputs": {"q": "hi"}}
    assert span["result_payload"] is None and span["finished_at"] is None
    assert is_pfid(span["id"])
    assert pfid_partition(span["id"]) == pfid_partition(instance["id"])
    assert server.store.get_span(span["id"]) == {**span, "replays": 0}
    finished = api.finish_span(
        span["id"], status="failed", result_payload={"error": {"message": "boom"}}
    )
    assert finished.status_code == 200
    details = finished.json()["details"]
    assert details["status"] == "failed"
    assert details["result_payload"] == {"error": {"message": "boom"}}
    assert details["finished_at"] >= details["started_at"]
    stored = server.store.list_spans(instance["id"])
    assert [(s["id"], s["status"]) for s in stored] == [(span["id"], "failed")]
    counts = api.get(f"/api/v1/agent_instance/{instance['id']}").json()["details"]["span_counts"]
    assert counts["total"] == 1 and counts["failed"] == 1 and counts["finished"] == 1


def test_finishing_a_finished_span_is_409_invalid_action(api: Api) -> None:
    span = api.new_span(api.started()["id"])
    assert api.finish_span(span["id"]).status_code == 200
    assert_error(api.finish_span(span["id"]), 409, "invalid_action")


def test_finish_unknown_span_is_404(api: Api) -> None:
    assert_error(api.finish_span("missing-span"), 404, "not_found")


def test_span_on_unknown_instance_is_404(api: Api) -> None:
    assert_error(api.span("no-such-instance"), 404, "not_found")


def test_spans_are_accepted_on_a_pending_instance(api: Api) -> None:
    instance = api.register()
    span = api.new_span(instance["id"])
    assert span["agent_instance_id"] == instance["id"]


def test_coalesced_create_with_a_terminal_status(api: Api, server: LocalServer) -> None:
    instance = api.started()
    span = api.new_span(
        instance["id"],
        schema_name="test:tool",
        status="complete",
        started_at="2026-03-01T10:00:00Z",
        finished_at="2026-03-01T10:00:01.250Z",
        result_payload={"outputs": {"output": 42}},
        id="tool-span-1",
    )
    assert span["id"] == "tool-span-1"
    assert span["status"] == "complete"
    assert span["finished_at"] == "2026-03-01T10:00:01.250000Z"
    assert span["result_payload"] == {"outputs": {"output": 42}}
    assert server.store.get_span("tool-span-1") == {**span, "replays": 0}
    assert_error(api.finish_span("tool-span-1"), 409, "invalid_action")
    default_end = api.new_span(instance["id"], status="failed")
    assert default_end["finished_at"] is not None
    assert server.store.get_span("tool-span-1") is not None


def test_finished_at_needs_a_terminal_status(api: Api) -> None:
    response = api.span(api.started()["id"], finished_at="2026-03-01T10:00:00Z")
    assert "finished_at" in assert_error(response, 422)["errors"]["details"]


def test_parent_must_exist_in_the_same_instance(api: Api) -> None:
    first = api.started()
    second = api.started()
    parent = api.new_span(first["id"])
    child = api.new_span(first["id"], parent_span_id=parent["id"], schema_name="test:tool")
    assert child["parent_span_id"] == parent["id"]
    errors = assert_error(api.span(first["id"], parent_span_id="ghost"), 422)["errors"]
    assert "parent_span_id" in errors["details"]
    response = api.span(second["id"], parent_span_id=parent["id"])
    assert "parent_span_id" in assert_error(response, 422)["errors"]["details"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "running"}, "status"),
        ({"status": "terminated"}, "status"),
        ({"status": None}, "status"),
        ({"schema_name": None}, "schema_name"),
        ({"agent_instance_id": None}, "agent_instance_id"),
        ({"payload": ["not", "an", "object"]}, "payload"),
        ({"payload": "text"}, "payload"),
        ({"result_payload": 3}, "result_payload"),
        ({"started_at": "2026-01-01T00:00:00"}, "started_at"),
        ({"id": "i" * 65}, "id"),
        ({"idempotency_key": "k" * 65}, "idempotency_key"),
    ],
)
def test_invalid_span_creates_are_422(api: Api, change: dict[str, object], field: str) -> None:
    details: dict[str, object] = {
        "agent_instance_id": api.started()["id"],
        "schema_name": "test:llm",
        "status": "active",
        "payload": {},
    }
    details.update(change)
    details = {key: value for key, value in details.items() if value is not None}
    response = api.post("/api/v1/agent_spans", {"details": details})
    errors = assert_error(response, 422, "invalid_value")["errors"]
    assert field in errors["details"]


def test_span_create_requires_details(api: Api) -> None:
    response = api.post("/api/v1/agent_spans", {"agent_instance_id": "x"})
    assert "details" in assert_error(response, 422)["errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "active"}, "status"),
        ({"status": "done"}, "status"),
        ({"result_payload": [1]}, "result_payload"),
        ({"timestamp": "2026-01-01 00:00:00"}, "timestamp"),
        ({"idempotency_key": "k" * 65}, "idempotency_key"),
    ],
)
def test_invalid_span_finishes_are_422(api: Api, body: dict[str, object], field: str) -> None:
    span = api.new_span(api.started()["id"])
    response = api.post(f"/api/v1/agent_spans/{span['id']}/finish", body)
    assert field in assert_error(response, 422)["errors"]


def test_pending_span_can_only_be_cancelled(api: Api) -> None:
    instance = api.started()
    pending = api.new_span(instance["id"], status="pending")
    assert pending["started_at"] is None
    assert_error(api.finish_span(pending["id"], status="complete"), 409, "invalid_action")
    cancelled = api.finish_span(pending["id"], status="cancelled")
    assert cancelled.json()["details"]["status"] == "cancelled"


def test_span_create_replays_by_key_inside_or_beside_details(api: Api, server: LocalServer) -> None:
    instance = api.started()
    key = str(uuid.uuid4())
    first = api.span(instance["id"], idempotency_key=key)
    again = api.span(instance["id"], idempotency_key=key)
    assert first.json() == again.json()
    details: dict[str, object] = {
        "agent_instance_id": instance["id"],
        "schema_name": "test:llm",
        "status": "active",
        "payload": {},
        "idempotency_key": key,
    }
    outer: dict[str, object] = {"details": details, "idempotency_key": key}
    assert api.post("/api/v1/agent_spans", outer).json() == first.json()
    inner_less = {name: value for name, value in details.items() if name != "idempotency_key"}
    top_level_only = {"details": inner_less, "idempotency_key": key}
    assert api.post("/api/v1/agent_spans", top_level_only).json() == first.json()
    spans = server.store.list_spans(instance["id"])
    assert len(spans) == 1 and spans[0]["replays"] == 3
    outer["idempotency_key"] = "different-key"
    assert "idempotency_key" in assert_error(api.post("/api/v1/agent_spans", outer), 422)["errors"]


def test_span_finish_replay_and_client_id_collision(api: Api, server: LocalServer) -> None:
    instance = api.started()
    span_id = f"span-{uuid.uuid4()}"
    api.new_span(instance["id"], id=span_id)
    assert_error(api.span(instance["id"], id=span_id), 409, "already_exists")
    first = api.finish_span(span_id, idempotency_key="finish-key-0001")
    second = api.finish_span(span_id, idempotency_key="finish-key-0001")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    stored = server.store.get_span(span_id)
    assert stored is not None and stored["replays"] == 1


def test_terminate_adds_control_to_the_next_span_responses(api: Api) -> None:
    instance = api.started()
    open_span = api.new_span(instance["id"])
    response = api.post(
        f"/api/v1/agent_instance/{instance['id']}/terminate", {"reason": "policy violation"}
    )
    assert response.status_code == 200
    created = api.span(instance["id"])
    assert created.status_code == 200
    assert created.json()["control"] == {"terminate": True, "reason": "policy violation"}
    finished = api.finish_span(open_span["id"], status="cancelled")
    assert finished.json()["control"] == {"terminate": True, "reason": "policy violation"}
    other = api.started()
    assert "control" not in api.span(other["id"]).json()


def test_terminate_without_a_reason(api: Api, server: LocalServer) -> None:
    instance = api.started()
    server.terminate(instance["id"])
    assert api.span(instance["id"]).json()["control"] == {"terminate": True, "reason": None}
