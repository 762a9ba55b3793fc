"""instrument()/uninstrument(), configuration, schema registration and failure isolation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _li_support import check_tree, make_client, mock_llm, of_type, only_instance, stored
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index_instrumentation import get_dispatcher

from prefactor_integrations.llama_index import (
    PrefactorEventHandler,
    PrefactorSpanHandler,
    instrument,
    uninstrument,
)
from prefactor_local.server import LocalServer

SPAN_TYPES = {
    "llama_index:query",
    "llama_index:retrieve",
    "llama_index:embedding",
    "llama_index:llm",
    "llama_index:synthesize",
    "llama_index:rerank",
    "llama_index:tool",
    "llama_index:agent",
    "llama_index:workflow",
    "llama_index:span",
}


def _ours(handlers: list[Any]) -> list[Any]:
    return [h for h in handlers if isinstance(h, (PrefactorSpanHandler, PrefactorEventHandler))]


def test_instrument_twice_adds_one_pair_and_uninstrument_removes_it(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    dispatcher = get_dispatcher()
    client = make_client(local_server)
    first = instrument(client)
    second = instrument(client)
    assert first is second
    assert len(_ours(dispatcher.span_handlers)) == 1
    assert len(_ours(dispatcher.event_handlers)) == 1

    index.as_query_engine(llm=mock_llm()).query("traced")
    uninstrument()
    uninstrument()
    assert _ours(dispatcher.span_handlers) == []
    assert _ours(dispatcher.event_handlers) == []

    index.as_query_engine(llm=mock_llm()).query("not traced")
    runs = stored(local_server, first)
    assert [check_tree(s, root_type="llama_index:query")["payload"]["query"] for _, s in runs] == [
        "traced"
    ]

    again = instrument(client)
    assert again is not first
    index.as_query_engine(llm=mock_llm()).query("traced again")
    assert len(stored(local_server, again)) == 2


def test_instrument_again_with_capture_content_false_stops_capturing_text(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    dispatcher = get_dispatcher()
    client = make_client(local_server)
    first = instrument(client)
    index.as_query_engine(llm=mock_llm()).query("Where is Nairobi?")
    private = instrument(client, capture_content=False)
    assert private is not first
    assert _ours(dispatcher.span_handlers) == [private]
    assert _ours(dispatcher.event_handlers) == [private.event_handler]
    index.as_query_engine(llm=mock_llm()).query("Where is Lima?")

    (_, open_spans), (_, private_spans) = stored(local_server, private)
    assert "capital of" in json.dumps([s["result_payload"] for s in open_spans])
    dumped = json.dumps([(s["payload"], s["result_payload"]) for s in private_spans])
    assert "Lima" not in dumped and "capital" not in dumped
    root = check_tree(private_spans, root_type="llama_index:query")
    assert root["payload"]["query"] == "[14 chars]"  # "Where is Lima?"


def test_instrument_without_client_reads_the_environment(
    local_server: LocalServer, index: VectorStoreIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in local_server.env.items():
        monkeypatch.setenv(name, value)
    handler = instrument()
    index.as_query_engine(llm=mock_llm()).query("configured from env")
    instance, spans = only_instance(local_server, handler)
    assert instance["status"] == "complete"
    check_tree(spans, root_type="llama_index:query")


def test_every_span_type_is_registered_in_the_schema_version(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    index.as_query_engine(llm=mock_llm()).query("register my schema")
    instance, _ = only_instance(local_server, traced)
    (schema_version,) = local_server.store.list_agent_schema_versions()
    assert instance["agent_schema_version_id"] == schema_version["id"]
    assert schema_version["external_identifier"].startswith("llama-index-")
    entries = {e["name"]: e for e in schema_version["body"]["span_type_schemas"]}
    assert set(entries) >= SPAN_TYPES
    for name in SPAN_TYPES:
        entry = entries[name]
        assert entry["title"] and entry["description"] and entry["template"], entry
        assert entry["params_schema"]["type"] == "object"
    assert traced.agent_schema_version["external_identifier"].startswith("llama-index-")


def test_user_functions_decorated_with_dispatcher_span_are_kept(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    dispatcher = get_dispatcher("my_app.pipeline")
    llm = mock_llm()

    @dispatcher.span
    def summarise(topic: str) -> str:
        return str(llm.complete(f"Summarise {topic}").text)

    summarise("tides")
    _, spans = only_instance(local_server, traced)
    root = check_tree(spans, root_type="llama_index:span")
    assert root["payload"]["arguments"] == {"topic": "tides"}
    (llm_span,) = of_type(spans, "llama_index:llm")
    assert llm_span["parent_span_id"] == root["id"]
    assert llm_span["payload"]["prompt"] == "Summarise tides"


class _BrokenModelName(MockLLM):
    """An LLM wrapper whose ``model`` attribute raises (as buggy third-party wrappers do)."""

    @property
    def model(self) -> str:
        raise RuntimeError("model lookup exploded")


def test_handler_errors_never_reach_llama_index(
    local_server: LocalServer, traced: PrefactorSpanHandler, index: VectorStoreIndex
) -> None:
    engine = index.as_query_engine(llm=_BrokenModelName(max_tokens=4))
    response = engine.query("still works?")
    assert str(response) == "text text text text"

    instance, spans = only_instance(local_server, traced)
    assert instance["status"] == "complete"
    check_tree(spans, root_type="llama_index:query")
    assert traced.internal_errors.total >= 1
    stats = traced.stats()
    assert stats["open_runs"] == 0
    assert traced.open_spans == {}


def test_terminated_run_gets_prefactor_terminated_error_at_next_span(
    local_server: LocalServer, traced: PrefactorSpanHandler
) -> None:
    from prefactor_core import PrefactorTerminatedError

    dispatcher = get_dispatcher("my_app.agent")
    llm = mock_llm()
    calls: list[str] = []

    @dispatcher.span
    def long_task() -> None:
        calls.append(llm.complete("step one").text)
        assert traced.flush(10.0)
        (instance,) = local_server.store.list_instances()
        local_server.terminate(instance["id"], reason="budget exceeded")
        # this call was already under way; its span's response tells the client
        calls.append(llm.complete("step two").text)
        assert traced.flush(10.0)
        calls.append(llm.complete("step three").text)

    with pytest.raises(PrefactorTerminatedError) as raised:
        long_task()
    assert raised.value.reason == "budget exceeded"
    assert len(calls) == 2

    runs = stored(local_server, traced)
    assert len(runs) == 1
    instance, spans = runs[0]
    assert instance["status"] == "terminated"
    assert instance["termination_reason"] == "budget exceeded"
    assert len(of_type(spans, "llama_index:llm")) == 2
    root = check_tree(spans, root_type="llama_index:span")
    assert root["status"] == "cancelled"
    assert root["result_payload"]["reason"] == "terminated: budget exceeded"
    assert traced.stats()["open_runs"] == 0

    # the next, unrelated run is traced normally
    llm.complete("fresh start")
    assert len(stored(local_server, traced)) == 2


def test_handlers_can_be_attached_by_hand(
    local_server: LocalServer, index: VectorStoreIndex
) -> None:
    dispatcher = get_dispatcher()
    spans_handler = PrefactorSpanHandler(make_client(local_server), agent_name="manual")
    events_handler = PrefactorEventHandler(spans_handler)
    dispatcher.add_span_handler(spans_handler)
    dispatcher.add_event_handler(events_handler)
    try:
        index.as_query_engine(llm=mock_llm()).query("attached by hand")
    finally:
        dispatcher.span_handlers.remove(spans_handler)
        dispatcher.event_handlers.remove(events_handler)
        spans_handler.close()

    instance, spans = only_instance(local_server, spans_handler)
    assert instance["status"] == "complete"
    (llm,) = of_type(spans, "llama_index:llm")
    assert llm["result_payload"]["response"]
    (version,) = local_server.store.list_agent_versions()
    assert version["body"]["name"] == "manual"
