"""Agent CRUD, the trace read routes with their list envelope, and pagination."""

from __future__ import annotations

import uuid

import pytest
from local_helpers import Api, assert_error

from prefactor_local.server import LocalServer

PAGINATION_FIELDS = {
    "item_count",
    "item_end",
    "item_start",
    "next_page_offset",
    "page_count",
    "page_index",
    "page_offset",
    "page_size",
    "previous_page_offset",
}


def _create_agent(api: Api, **details: object) -> dict[str, object]:
    body = {"details": {"name": "Support bot", **details}, "idempotency_key": str(uuid.uuid4())}
    response = api.post("/api/v1/agent", body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()["details"]
    return result


def test_agent_crud(own_api: Api, local_server: LocalServer) -> None:
    api = own_api
    agent = _create_agent(api, description="helps", external_identifier="bot-1", team_id="t1")
    assert agent["type"] == "agent" and agent["status"] == "pending"
    assert agent["available_actions"] == {
        "update": True,
        "retire": True,
        "reinstate": False,
        "delete": True,
    }
    agent_id = str(agent["id"])
    fetched = api.get(f"/api/v1/agent/{agent_id}").json()["details"]
    assert fetched["name"] == "Support bot" and fetched["instance_counts"]["total"] == 0

    updated = api.http.put(
        f"/api/v1/agent/{agent_id}", json={"details": {"name": "Renamed", "team_id": None}}
    )
    assert updated.status_code == 200
    assert updated.json()["details"]["name"] == "Renamed"
    assert updated.json()["details"]["team_id"] is None
    assert updated.json()["details"]["description"] == "helps"
    bad = api.http.put(f"/api/v1/agent/{agent_id}", json={"details": {"external_identifier": "x"}})
    assert "external_identifier" in assert_error(bad, 422)["errors"]["details"]

    shown = api.get("/api/v1/agent/show", params={"external_identifier": "bot-1"})
    assert shown.json()["details"]["id"] == agent_id
    assert "instance_counts" not in shown.json()["details"]
    counted = api.get("/api/v1/agent/show", params={"agent_id": agent_id, "include_counts": "true"})
    assert counted.json()["details"]["instance_counts"]["total"] == 0
    assert_error(api.get("/api/v1/agent/show"), 422)
    both = {"agent_id": agent_id, "external_identifier": "bot-1"}
    assert_error(api.get("/api/v1/agent/show", params=both), 422)

    retired = api.post(f"/api/v1/agent/{agent_id}/retire")
    assert retired.json()["details"]["status"] == "retired"
    assert retired.json()["details"]["available_actions"]["reinstate"] is True
    assert_error(api.post(f"/api/v1/agent/{agent_id}/retire"), 409, "invalid_action")
    register = api.post("/api/v1/agent_instance/register", api.register_body(agent_id=agent_id))
    assert_error(register, 409, "invalid_action")
    reinstated = api.post(f"/api/v1/agent/{agent_id}/reinstate", {"idempotency_key": "reinst-01"})
    assert reinstated.json()["details"]["status"] == "pending"
    assert_error(api.post(f"/api/v1/agent/{agent_id}/reinstate"), 409, "invalid_action")

    api.register(agent_id=agent_id)
    assert api.get(f"/api/v1/agent/{agent_id}").json()["details"]["status"] == "active"
    deleted = api.http.delete(f"/api/v1/agent/{agent_id}")
    assert deleted.status_code == 200 and deleted.json()["details"]["id"] == agent_id
    assert_error(api.get(f"/api/v1/agent/{agent_id}"), 404, "not_found")
    assert_error(api.http.delete(f"/api/v1/agent/{agent_id}"), 404, "not_found")
    assert local_server.store.get_agent(agent_id) is None


def test_agent_create_validation_and_conflicts(api: Api) -> None:
    assert (
        "name" in assert_error(api.post("/api/v1/agent", {"details": {}}), 422)["errors"]["details"]
    )
    assert "details" in assert_error(api.post("/api/v1/agent", {"name": "x"}), 422)["errors"]
    ext = f"ext-{uuid.uuid4()}"
    agent = _create_agent(api, id=f"agent-{ext}", external_identifier=ext)
    assert agent["id"] == f"agent-{ext}"
    assert_error(api.post("/api/v1/agent", {"details": {"name": "x", "id": agent["id"]}}), 409)
    duplicate = api.post("/api/v1/agent", {"details": {"name": "x", "external_identifier": ext}})
    assert_error(duplicate, 409, "already_exists")
    key = str(uuid.uuid4())
    body = {"details": {"name": "Replayed"}, "idempotency_key": key}
    assert api.post("/api/v1/agent", body).json() == api.post("/api/v1/agent", body).json()
    assert_error(api.get("/api/v1/agent/unknown"), 404, "not_found")
    assert_error(api.post("/api/v1/agent/unknown/retire"), 404, "not_found")


def test_agent_list_filters_sorts_and_paginates(own_api: Api) -> None:
    api = own_api
    for name in ["charlie", "alpha", "bravo"]:
        _create_agent(api, name=name, team_id="team-a")
    _create_agent(api, name="delta", team_id="team-b")
    listed = api.get("/api/v1/agent", params={"team_id": "team-a", "sorting": "name"}).json()
    assert listed["status"] == "success"
    assert [a["name"] for a in listed["summaries"]] == ["alpha", "bravo", "charlie"]
    assert listed["sorting"] == {"field": "name", "direction": "asc"}
    assert "instance_counts" not in listed["summaries"][0]
    page = api.get(
        "/api/v1/agent",
        params={"sorting": "-name", "pagination[offset]": "1", "pagination[page_size]": "2"},
    ).json()
    assert [a["name"] for a in page["summaries"]] == ["charlie", "bravo"]
    assert page["pagination"] == {
        "item_count": 4,
        "item_start": 2,
        "item_end": 3,
        "next_page_offset": 3,
        "page_count": 2,
        "page_index": 0,
        "page_offset": 1,
        "page_size": 2,
        "previous_page_offset": 0,
    }
    for size in ["0", "101", "many"]:
        response = api.get("/api/v1/agent", params={"pagination[page_size]": size})
        assert "pagination" in assert_error(response, 422)["errors"]
    assert_error(api.get("/api/v1/agent", params={"sorting": "colour"}), 422)


def test_instance_and_span_reads_use_the_list_envelope(own_api: Api) -> None:
    api = own_api
    instances = [api.started(agent_id="agent-list") for _ in range(3)]
    api.started(agent_id="agent-other")
    listed = api.get("/api/v1/agent_instance", params={"agent_id": "agent-list"}).json()
    assert set(listed) >= {"status", "summaries", "pagination", "sorting"}
    assert set(listed["pagination"]) == PAGINATION_FIELDS
    assert [i["id"] for i in listed["summaries"]] == [i["id"] for i in reversed(instances)]
    assert listed["sorting"] == {"field": "inserted_at", "direction": "desc"}
    assert listed["pagination"]["item_count"] == 3
    assert listed["pagination"]["next_page_offset"] is None
    everything = api.get("/api/v1/agent_instance").json()
    assert everything["pagination"]["item_count"] == 4

    spans = [api.new_span(instances[0]["id"]) for _ in range(5)]
    page = api.get(
        "/api/v1/agent_spans",
        params={
            "agent_instance_id": instances[0]["id"],
            "pagination[page_size]": "2",
            "pagination[offset]": "2",
        },
    ).json()
    assert [s["id"] for s in page["summaries"]] == [spans[2]["id"], spans[3]["id"]]
    assert page["pagination"]["item_count"] == 5
    assert page["pagination"]["page_index"] == 1
    assert page["pagination"]["page_count"] == 3
    assert page["pagination"]["next_page_offset"] == 4
    assert page["pagination"]["previous_page_offset"] == 0
    assert page["sorting"] == {"field": "inserted_at", "direction": "asc"}


@pytest.mark.parametrize(("size", "ok"), [("1", True), ("1000", True), ("1001", False)])
def test_trace_reads_allow_pages_up_to_1000(api: Api, size: str, ok: bool) -> None:
    response = api.get("/api/v1/agent_spans", params={"pagination[page_size]": size})
    assert (response.status_code == 200) is ok


def test_unknown_routes_and_methods_answer_with_envelopes(api: Api) -> None:
    assert_error(api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(api.http.delete("/api/v1/agent_spans"), 405, "method_not_allowed")
