"""Failures of the agent are recorded and passed on unchanged; ours never reach the agent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _lc_models import (
    AGENT_OUTLINE,
    ANSWER,
    ChatScripted,
    KeywordRetriever,
    make_agent,
    make_rag_chain,
)
from _lc_support import instances, outline, spans_of, traced
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from prefactor_core.exceptions import PrefactorTerminatedError
from prefactor_integrations._shared import current_span_id
from prefactor_integrations.langchain import PrefactorCallbackHandler, payloads
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}


def test_failing_tool_fails_its_spans_and_reaches_the_caller_unchanged(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    raised: list[Exception] = []

    @tool
    def lookup(a: int, b: int) -> int:
        """Look something up."""
        raised.append(ValueError(f"no entry for {a}"))
        raise raised[-1]

    with pytest.raises(ValueError) as caught:
        make_agent(tools=[lookup]).invoke(QUESTION, {"callbacks": [handler]})

    assert caught.value is raised[0]
    (tree,) = traced(local_server, handler, status="failed")
    assert tree == (
        "langchain:agent LangGraph\n"
        "  langchain:node model\n"
        "    langchain:llm scripted-1\n"
        "  langchain:node tools\n"
        "    langchain:tool lookup"
    )
    (span,) = spans_of(local_server, "langchain:tool")
    assert span["status"] == "failed"
    error = span["result_payload"]["error"]
    assert error["error_type"] == "ValueError"
    assert error["message"] == "no entry for 2"
    assert "Traceback" in error["stacktrace"] and "no entry for 2" in error["stacktrace"]
    statuses = {outline([s]).strip(): s["status"] for s in spans_of(local_server, "langchain:node")}
    assert statuses == {"langchain:node model": "complete", "langchain:node tools": "failed"}
    (root,) = spans_of(local_server, "langchain:agent")
    assert root["status"] == "failed"
    assert root["result_payload"]["error"]["error_type"] == "ValueError"


async def test_failing_model_fails_its_span_and_reaches_the_caller_unchanged(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    boom = RuntimeError("model endpoint down")
    agent = make_agent(model=ChatScripted(tool_name="add", fail_with=boom))

    with pytest.raises(RuntimeError) as caught:
        await agent.ainvoke(QUESTION, {"callbacks": [handler]})

    assert caught.value is boom
    (tree,) = traced(local_server, handler, status="failed")
    assert tree == "langchain:agent LangGraph\n  langchain:node model\n    langchain:llm scripted-1"
    (llm,) = spans_of(local_server, "langchain:llm")
    assert llm["status"] == "failed"
    assert llm["result_payload"]["error"]["error_type"] == "RuntimeError"
    assert llm["result_payload"]["error"]["message"] == "model endpoint down"


def test_failing_retriever_in_a_chain(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    with pytest.raises(LookupError, match="index offline"):
        make_rag_chain(KeywordRetriever(fail=True)).invoke("q", {"callbacks": [handler]})

    traced(local_server, handler, status="failed")
    (span,) = spans_of(local_server, "langchain:retriever")
    assert span["status"] == "failed"
    assert span["result_payload"]["error"]["error_type"] == "LookupError"


def test_an_error_inside_the_handler_never_reaches_the_agent(
    local_server: LocalServer, handler: PrefactorCallbackHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("bug in payload extraction")

    monkeypatch.setattr(payloads, "llm_start_payload", broken)

    answer = make_agent().invoke(QUESTION, {"callbacks": [handler]})

    assert answer["messages"][-1].content == ANSWER
    stats = handler.stats()
    assert stats["internal_errors"] == 2
    assert stats["internal_errors_by_place"] == {"on_chat_model_start:RuntimeError": 2}
    # Everything else is still traced; the model calls are simply missing.
    (tree,) = traced(local_server, handler)
    assert tree == "\n".join(line for line in AGENT_OUTLINE.splitlines() if "llm" not in line)


def test_a_run_that_cannot_be_traced_is_skipped_whole_not_split(
    local_server: LocalServer, handler: PrefactorCallbackHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = payloads.chain_inputs
    calls: list[Any] = []

    def fails_once(inputs: Any) -> Any:
        calls.append(inputs)
        if len(calls) == 1:  # the first top-level run's own inputs
            raise TypeError("unexpected input shape")
        return real(inputs)

    monkeypatch.setattr(payloads, "chain_inputs", fails_once)
    agent = make_agent()

    first = agent.invoke(QUESTION, {"callbacks": [handler]})
    second = agent.invoke(QUESTION, {"callbacks": [handler]})

    assert first["messages"][-1].content == second["messages"][-1].content == ANSWER
    # The first run is not traced at all (rather than each of its steps becoming an instance).
    assert traced(local_server, handler) == [AGENT_OUTLINE]
    assert handler.stats()["internal_errors"] == 1
    assert handler.stats()["open_runs"] == 0


def test_termination_stops_the_agent_with_prefactor_terminated_error(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    calls: list[str] = []

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers (the platform terminates the run meanwhile)."""
        span_id = current_span_id()
        assert span_id is not None
        instance_id = handler.client.tracer.instance_of(span_id)
        assert handler.flush(timeout=10.0)
        local_server.terminate(instance_id, reason="policy violation")
        # Any span request now gets `control.terminate` back.
        RunnableLambda(lambda x: x, name="audit").invoke(a)
        assert handler.flush(timeout=10.0)
        calls.append("add")
        return a + b

    with pytest.raises(PrefactorTerminatedError) as caught:
        make_agent(tools=[add]).invoke(QUESTION, {"callbacks": [handler]})

    assert caught.value.reason == "policy violation"
    assert calls == ["add"]  # the tool ran once; the model was never called again
    assert handler.flush(timeout=10.0)
    (inst,) = instances(local_server)
    assert inst["status"] == "terminated"
    spans = local_server.store.list_spans(inst["id"])
    assert outline(spans) == (
        "langchain:agent LangGraph\n"
        "  langchain:node model\n"
        "    langchain:llm scripted-1\n"
        "  langchain:node tools\n"
        "    langchain:tool add\n"
        "      langchain:chain audit"
    )
    by_label = {outline([s]): s for s in spans}
    assert by_label["langchain:tool add"]["status"] == "complete"
    for name in ("langchain:node tools", "langchain:agent LangGraph"):
        assert by_label[name]["status"] == "cancelled"
        assert by_label[name]["result_payload"]["terminated"] is True
    assert handler.stats()["open_runs"] == 0


async def test_termination_also_stops_async_runs(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    @tool
    async def add(a: int, b: int) -> int:
        """Add two integers (the platform terminates the run meanwhile)."""
        instance_id = handler.client.tracer.instance_of(current_span_id() or "")
        assert handler.flush(timeout=10.0)
        local_server.terminate(instance_id, reason="budget")
        await RunnableLambda(lambda x: x, name="audit").ainvoke(a)
        await asyncio.to_thread(handler.flush, 10.0)
        return a + b

    with pytest.raises(PrefactorTerminatedError, match="budget"):
        await make_agent(tools=[add]).ainvoke(QUESTION, {"callbacks": [handler]})

    assert handler.flush(timeout=10.0)
    (inst,) = instances(local_server)
    assert inst["status"] == "terminated"
    assert all(s["finished_at"] for s in local_server.store.list_spans(inst["id"]))


@pytest.mark.parametrize("stop", [SystemExit(0), KeyboardInterrupt()], ids=type)
def test_a_clean_shutdown_mid_run_is_recorded_cancelled_not_failed(
    local_server: LocalServer, handler: PrefactorCallbackHandler, stop: BaseException
) -> None:
    def shut_down(x: int) -> int:
        raise stop

    chain = RunnableLambda(lambda x: x + 1, name="first") | RunnableLambda(
        shut_down, name="shut_down"
    )
    with pytest.raises(type(stop)) as caught:
        chain.invoke(1, {"callbacks": [handler]})

    assert caught.value is stop
    assert traced(local_server, handler, status="cancelled") == [
        "langchain:agent RunnableSequence\n  langchain:chain first\n  langchain:chain shut_down"
    ]
    (inst,) = instances(local_server)
    statuses = {outline([s]): s["status"] for s in local_server.store.list_spans(inst["id"])}
    assert statuses == {
        "langchain:agent RunnableSequence": "cancelled",
        "langchain:chain first": "complete",
        "langchain:chain shut_down": "cancelled",
    }
