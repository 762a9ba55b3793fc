"""Parents across frameworks: the ambient span, no leaks between runs, abandoned runs."""

from __future__ import annotations

import asyncio
from typing import Any

from _lc_models import AGENT_OUTLINE, make_agent, make_rag_chain
from _lc_support import check_instance, instances, no_open_ambient_span, outline, traced
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

import prefactor_integrations
from prefactor_integrations._shared import ambient_span, current_span_id
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}


def test_a_root_run_nests_under_another_frameworks_open_span(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    tracer = handler.client.tracer
    instance_id = tracer.start_instance(
        agent_version={"name": "outer", "external_identifier": "outer-1", "description": ""},
        agent_schema_version=handler.agent_schema_version,
    )
    outer = tracer.create_span(instance_id, "langchain:chain", payload={"name": "outer-query"})
    with ambient_span(outer):
        make_agent().invoke(QUESTION, {"callbacks": [handler]})
    tracer.finish_span(outer, result_payload={"ok": True})
    tracer.finish_instance(instance_id)

    (inst,) = traced(local_server, handler, root="langchain:chain")
    nested = "\n".join("  " + line for line in AGENT_OUTLINE.splitlines())
    assert inst == "langchain:chain outer-query\n" + nested


def test_work_inside_a_tool_nests_under_the_tool_span(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    tracer = handler.client.tracer

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers, with a span of some other framework inside."""
        parent = current_span_id()
        assert parent is not None
        instance_id = tracer.instance_of(parent)
        assert instance_id is not None
        inner = tracer.create_span(
            instance_id, "langchain:retriever", parent_span_id=parent, payload={"name": "foreign"}
        )
        tracer.finish_span(inner, result_payload={"documents": []})
        return a + b

    make_agent(tools=[add]).invoke(QUESTION, {"callbacks": [handler]})

    (tree,) = traced(local_server, handler)
    assert "    langchain:tool add\n      langchain:retriever foreign\n" in tree


async def test_consecutive_top_level_runs_never_nest_into_each_other(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    agent = make_agent()
    config = {"callbacks": [handler]}

    tracer = handler.client.tracer
    for _ in range(3):
        await agent.ainvoke(QUESTION, config)
        assert no_open_ambient_span(tracer)
    agent.invoke(QUESTION, config)
    assert no_open_ambient_span(tracer)
    [c async for c in agent.astream(QUESTION, config)]
    assert no_open_ambient_span(tracer)

    assert traced(local_server, handler) == [AGENT_OUTLINE] * 5


async def test_failed_runs_do_not_leak_ambient_context(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    def fail(_: Any) -> Any:
        raise KeyError("missing")

    broken = RunnableLambda(fail, name="broken")
    for _ in range(2):
        try:
            await broken.ainvoke(1, {"callbacks": [handler]})
        except KeyError:
            pass
        assert no_open_ambient_span(handler.client.tracer)

    assert traced(local_server, handler, status="failed") == ["langchain:agent broken"] * 2


async def test_abandoned_stream_is_finished_cancelled_by_the_idle_sweep(
    local_server: LocalServer,
) -> None:
    from _lc_support import make_client

    handler = PrefactorCallbackHandler(make_client(local_server), idle_timeout=0.0)
    stream = make_rag_chain().astream("What is Prefactor?", {"callbacks": [handler]})
    first = await anext(stream)  # start the run, then walk away without closing it
    assert first

    assert handler.sweep() == 1
    assert handler.stats()["open_runs"] == 0
    handler.flush(timeout=10.0)

    (inst,) = instances(local_server)
    spans = check_instance(local_server, inst, status="cancelled")
    assert {s["status"] for s in spans if s["parent_span_id"] is None} == {"cancelled"}
    assert any(s["result_payload"].get("reason") for s in spans)
    assert outline(spans).startswith("langchain:agent RunnableSequence")
    await stream.aclose()  # type: ignore[attr-defined]
    # The swept run's late callbacks are ignored: no new instance, nothing reopened.
    assert handler.flush(timeout=10.0)
    assert [i["status"] for i in instances(local_server)] == ["cancelled"]
    handler.close()


async def test_cancelled_task_finishes_its_instance_cancelled(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    started = asyncio.Event()

    async def slow(x: int) -> int:
        started.set()
        await asyncio.sleep(30)
        return x

    chain = RunnableLambda(lambda x: x, name="first") | RunnableLambda(slow, name="slow")
    task = asyncio.create_task(chain.ainvoke(1, {"callbacks": [handler]}))
    await started.wait()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass

    assert traced(local_server, handler, status="cancelled") == [
        "langchain:agent RunnableSequence\n  langchain:chain first\n  langchain:chain slow"
    ]


async def test_open_runs_are_bounded_and_the_oldest_is_cancelled(
    local_server: LocalServer,
) -> None:
    from _lc_support import make_client

    handler = PrefactorCallbackHandler(make_client(local_server), max_open_runs=2)
    streams = [
        make_rag_chain().astream(f"question {i}", {"callbacks": [handler]}) for i in range(3)
    ]
    for stream in streams:
        await anext(stream)  # three runs open at once; the first is evicted
    assert handler.stats()["open_roots"] == 2
    for stream in streams:
        [c async for c in stream]  # the evicted one's remaining callbacks are ignored
    assert handler.flush(timeout=10.0)

    statuses = [inst["status"] for inst in instances(local_server)]
    assert statuses == ["cancelled", "complete", "complete"]
    assert handler.stats()["abandoned"] == 1
    handler.close()


def test_current_instance_id_inside_a_tool_is_the_runs_instance(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    seen: list[str | None] = []

    @tool
    def where_am_i(question: str) -> str:
        """Report the traced instance."""
        seen.append(prefactor_integrations.current_instance_id())
        return "here"

    where_am_i.invoke({"question": "?"}, config={"callbacks": [handler]})
    assert prefactor_integrations.flush(10)
    assert prefactor_integrations.current_instance_id() is None
    [instance] = instances(local_server)
    assert seen == [instance["id"]]
