"""`POST /api/v1/bulk`: ordered items, stop at the first error, outputs keyed by idempotency key."""

from __future__ import annotations

import uuid

from local_helpers import AGENT_VERSION, SCHEMA_VERSION, Api, assert_error

from prefactor_local.server import LocalServer


def _key(label: str) -> str:
    return f"{label}-{uuid.uuid4()}"


def test_bulk_runs_a_whole_trace(api: Api, server: LocalServer) -> None:
    instance_id = f"bulk-{uuid.uuid4()}"
    keys = [_key(label) for label in ("reg", "start", "span", "child", "fin", "q", "done")]
    items = [
        {
            "_type": "agent_instances/register",
            "idempotency_key": keys[0],
            "id": instance_id,
            "agent_id": "agent-bulk",
            "agent_version": AGENT_VERSION,
            "agent_schema_version": SCHEMA_VERSION,
        },
        {
            "_type": "agent_instances/start",
            "idempotency_key": keys[1],
            "agent_instance_id": instance_id,
        },
        {
            "_type": "agent_spans/create",
            "idempotency_key": keys[2],
            "agent_instance_id": instance_id,
            "schema_name": "test:llm",
            "status": "active",
            "id": f"{instance_id}-root",
        },
        {
            "_type": "agent_spans/create",
            "idempotency_key": keys[3],
            "details": {
                "agent_instance_id": instance_id,
                "schema_name": "test:tool",
                "status": "complete",
                "parent_span_id": f"{instance_id}-root",
                "result_payload": {"ok": True},
            },
        },
        {
            "_type": "agent_spans/finish",
            "idempotency_key": keys[4],
            "agent_span_id": f"{instance_id}-root",
            "status": "complete",
        },
        {
            "_type": "agent_instances/record_quality",
            "idempotency_key": keys[5],
            "agent_instance_id": instance_id,
            "name": "score",
            "payload": {"value": 1},
        },
        {
            "_type": "agent_instances/finish",
            "idempotency_key": keys[6],
            "agent_instance_id": instance_id,
            "status": "complete",
        },
    ]
    response = api.post("/api/v1/bulk", {"items": items})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert list(body["outputs"]) == keys
    assert all(output["status"] == "success" for output in body["outputs"].values())
    assert body["outputs"][keys[0]]["details"]["status"] == "pending"
    assert body["outputs"][keys[6]]["details"]["status"] == "complete"
    spans = server.store.list_spans(instance_id)
    assert [(s["schema_name"], s["status"]) for s in spans] == [
        ("test:llm", "complete"),
        ("test:tool", "complete"),
    ]
    again = api.post("/api/v1/bulk", {"items": items})
    assert again.json() == body
    instance = server.store.get_instance(instance_id)
    assert instance is not None and instance["replays"] == 4
    assert instance["quality_payloads"] == {"score": {"value": 1}}


def test_bulk_stops_at_the_first_error(api: Api, server: LocalServer) -> None:
    instance = api.started()
    good, bad, skipped = _key("good"), _key("bad"), _key("skipped")
    items = [
        {
            "_type": "agent_spans/create",
            "idempotency_key": good,
            "agent_instance_id": instance["id"],
            "schema_name": "test:llm",
            "status": "active",
        },
        {"_type": "agent_spans/finish", "idempotency_key": bad, "agent_span_id": "ghost"},
        {
            "_type": "agent_spans/create",
            "idempotency_key": skipped,
            "agent_instance_id": instance["id"],
            "schema_name": "test:llm",
            "status": "active",
        },
    ]
    body = api.post("/api/v1/bulk", {"items": items}).json()
    assert list(body["outputs"]) == [good, bad]
    assert body["outputs"][good]["status"] == "success"
    assert body["outputs"][bad]["status"] == "error"
    assert body["outputs"][bad]["code"] == "not_found"
    assert len(server.store.list_spans(instance["id"])) == 1


def test_bulk_item_validation_errors_carry_errors(api: Api) -> None:
    key = _key("invalid")
    items = [{"_type": "agent_spans/create", "idempotency_key": key, "agent_instance_id": "x"}]
    output = api.post("/api/v1/bulk", {"items": items}).json()["outputs"][key]
    assert output["status"] == "error" and output["code"] == "invalid_value"
    assert "schema_name" in output["errors"]["details"]


def test_bulk_request_validation_is_a_422(api: Api) -> None:
    assert "items" in assert_error(api.post("/api/v1/bulk", {"items": []}), 422)["errors"]
    assert "items" in assert_error(api.post("/api/v1/bulk", {}), 422)["errors"]
    short = [{"_type": "agent_instances/start", "idempotency_key": "short"}]
    errors = assert_error(api.post("/api/v1/bulk", {"items": short}), 422)["errors"]
    assert "idempotency_key" in errors["items"]["0"]
    duplicated = [
        {"_type": "agent_instances/start", "idempotency_key": "same-key-1"},
        {"_type": "agent_instances/start", "idempotency_key": "same-key-1"},
    ]
    errors = assert_error(api.post("/api/v1/bulk", {"items": duplicated}), 422)["errors"]
    assert "idempotency_key" in errors["items"]["1"]
    unknown = [{"_type": "agents/list", "idempotency_key": "unknown-type"}]
    errors = assert_error(api.post("/api/v1/bulk", {"items": unknown}), 422)["errors"]
    assert "_type" in errors["items"]["0"]


def test_bulk_span_outputs_carry_the_control_signal_of_their_instance(api: Api) -> None:
    stopped, running = api.started(), api.started()
    open_span = api.new_span(stopped["id"])
    response = api.post(f"/api/v1/agent_instance/{stopped['id']}/terminate", {"reason": "halt"})
    assert response.status_code == 200
    keys = [_key(label) for label in ("a", "b", "c", "d")]
    items = [
        {
            "_type": "agent_spans/create",
            "idempotency_key": keys[0],
            "agent_instance_id": stopped["id"],
            "schema_name": "test:step",
            "status": "complete",
        },
        {
            "_type": "agent_spans/create",
            "idempotency_key": keys[1],
            "agent_instance_id": running["id"],
            "schema_name": "test:step",
            "status": "complete",
        },
        {
            "_type": "agent_spans/finish",
            "idempotency_key": keys[2],
            "agent_span_id": open_span["id"],
            "status": "cancelled",
        },
        {
            "_type": "agent_spans/create",
            "idempotency_key": keys[3],
            "agent_instance_id": running["id"],
            "schema_name": "test:step",
            "status": "active",
        },
    ]
    outputs = api.post("/api/v1/bulk", {"items": items}).json()["outputs"]
    halt = {"terminate": True, "reason": "halt"}
    assert [outputs[key].get("control") for key in keys] == [halt, None, halt, None]
    assert all(outputs[key]["status"] == "success" for key in keys)
    later = api.span(stopped["id"])
    assert later.json()["control"] == halt
