"""`TraceStore` reads and `Trace` trees built from what the server stored."""

from __future__ import annotations

from local_helpers import Api

from prefactor_local.server import LocalServer
from prefactor_local.store import TraceStore
from prefactor_local.trace import Trace, load_traces


def _fill(api: Api, agent_id: str = "agent-trace") -> tuple[str, dict[str, str]]:
    instance = api.started(agent_id=agent_id)
    iid = instance["id"]
    ids: dict[str, str] = {}
    ids["chain"] = api.new_span(
        iid, schema_name="test:chain", started_at="2026-05-01T10:00:00Z", id=f"{iid}-chain"
    )["id"]
    ids["llm"] = api.new_span(
        iid,
        schema_name="test:llm",
        parent_span_id=ids["chain"],
        started_at="2026-05-01T10:00:00.100Z",
        payload={"model_name": "fake-gpt", "inputs": {"messages": ["hi"]}},
    )["id"]
    api.finish_span(
        ids["llm"],
        timestamp="2026-05-01T10:00:00.350Z",
        result_payload={"token_usage": {"prompt_tokens": 12, "completion_tokens": 3}},
    )
    ids["tool"] = api.new_span(
        iid,
        schema_name="test:tool",
        parent_span_id=ids["chain"],
        status="failed",
        started_at="2026-05-01T10:00:00.400Z",
        finished_at="2026-05-01T10:00:00.450Z",
        payload={"tool_name": "search", "inputs": {"q": "x"}},
        result_payload={"error": {"error_type": "ValueError", "message": "no results"}},
    )["id"]
    api.finish_span(ids["chain"], timestamp="2026-05-01T10:00:01Z")
    api.post(
        f"/api/v1/agent_instance/{iid}/finish",
        {"status": "complete", "timestamp": "2026-05-01T10:00:02Z"},
    )
    return iid, ids


def test_store_read_api_matches_the_wire_shapes(api: Api, server: LocalServer) -> None:
    iid, ids = _fill(api, agent_id="agent-store")
    via_http = api.get(f"/api/v1/agent_instance/{iid}").json()["details"]
    stored = server.store.get_instance(iid)
    assert stored is not None
    assert stored.pop("replays") == 0
    assert stored == via_http
    spans = server.store.list_spans(iid)
    assert [span["id"] for span in spans] == [ids["chain"], ids["llm"], ids["tool"]]
    assert spans[1]["payload"]["model_name"] == "fake-gpt"
    assert spans[1]["result_payload"] == {
        "token_usage": {"prompt_tokens": 12, "completion_tokens": 3}
    }
    assert [i["id"] for i in server.store.list_instances("agent-store")] == [iid]
    assert server.store.get_instance("nope") is None
    assert server.store.list_spans("nope") == []
    counts = server.store.counts()
    assert counts["agent_instances"] >= 1 and counts["agent_spans"] >= 3
    assert server.store.get_agent("agent-store") is not None


def test_a_read_only_store_sees_the_servers_rows(api: Api, server: LocalServer) -> None:
    iid, _ = _fill(api)
    reader = TraceStore(server.db_path, read_only=True)
    try:
        assert reader.get_instance(iid) is not None
        assert len(reader.list_spans(iid)) == 3
    finally:
        reader.close()


def test_trace_tree_durations_and_highlights(api: Api, server: LocalServer) -> None:
    iid, ids = _fill(api)
    trace = Trace.load(server.store, iid)
    assert trace is not None
    assert trace.id == iid and trace.status == "complete"
    assert [root.id for root in trace.roots] == [ids["chain"]]
    chain = trace.roots[0]
    assert [child.id for child in chain.children] == [ids["llm"], ids["tool"]]
    assert [node.depth for node in trace.walk()] == [0, 1, 1]
    assert trace.span_count == 3
    llm, tool = chain.children
    assert chain.duration_ms == 1000
    assert llm.duration_ms == 250
    assert trace.offset_ms(tool) == 400
    assert llm.highlights() == {"model": "fake-gpt", "tokens": "12 in / 3 out (15 total)"}
    assert tool.highlights() == {"tool": "search", "error": "ValueError: no results"}
    as_dict = trace.to_dict()
    assert as_dict["id"] == iid
    assert as_dict["spans"][0]["children"][1]["duration_ms"] == 50
    assert as_dict["spans"][0]["children"][0]["children"] == []


def test_trace_build_handles_orphans_and_any_order() -> None:
    instance = {"id": "i", "status": "active", "inserted_at": "2026-01-01T00:00:00Z"}
    spans: list[dict[str, str | None]] = [
        {"id": "c", "parent_span_id": "b", "started_at": "2026-01-01T00:00:02Z"},
        {"id": "b", "parent_span_id": "a", "started_at": "2026-01-01T00:00:01Z"},
        {"id": "x", "parent_span_id": "missing", "started_at": "2026-01-01T00:00:03Z"},
        {"id": "a", "parent_span_id": None, "started_at": "2026-01-01T00:00:00Z"},
    ]
    trace = Trace.build(instance, spans)
    assert [root.id for root in trace.roots] == ["a", "x"]
    assert [node.id for node in trace.walk()] == ["a", "b", "c", "x"]
    assert trace.roots[0].duration_ms is None
    assert trace.duration_ms is None


def test_load_traces_newest_first_with_limit(own_api: Api, local_server: LocalServer) -> None:
    first, _ = _fill(own_api, agent_id="agent-a")
    second, _ = _fill(own_api, agent_id="agent-b")
    assert [t.id for t in load_traces(local_server.store)] == [second, first]
    assert [t.id for t in load_traces(local_server.store, limit=1)] == [second]
    assert [t.id for t in load_traces(local_server.store, agent_id="agent-a")] == [first]
