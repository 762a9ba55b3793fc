"""The same span trees whichever way an agent, graph or chain is run."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _lc_models import AGENT_OUTLINE, ANSWER, GRAPH_OUTLINE, RAG_OUTLINE, make_agent, make_graph
from _lc_models import make_rag_chain as make_chain
from _lc_support import outline, spans_of, traced
from langchain_core.runnables import RunnableConfig, RunnableLambda

from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}


def run(runnable: Any, inputs: list[Any], mode: str, config: dict[str, Any]) -> list[Any]:
    """Run ``runnable`` on every input with one of LangChain's entry points."""
    if mode == "invoke":
        return [runnable.invoke(x, config) for x in inputs]
    if mode == "batch":
        return list(runnable.batch(inputs, config))
    if mode == "stream":
        return [list(runnable.stream(x, config)) for x in inputs]

    async def arun() -> list[Any]:
        if mode == "ainvoke":
            return [await runnable.ainvoke(x, config) for x in inputs]
        if mode == "abatch":
            return list(await runnable.abatch(inputs, config))
        out: list[Any] = []
        for x in inputs:
            if mode == "astream":
                out.append([c async for c in runnable.astream(x, config)])
            else:
                out.append([e async for e in runnable.astream_events(x, config, version="v2")])
        return out

    return asyncio.run(arun())


MODES = ["invoke", "ainvoke", "batch", "abatch", "stream", "astream", "astream_events"]


@pytest.mark.parametrize("mode", MODES)
def test_agent_tree_is_the_same_in_every_mode(
    mode: str, local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    results = run(make_agent(), [QUESTION, QUESTION], mode, {"callbacks": [handler]})

    # The agent's own output is untouched by tracing.
    untraced = run(make_agent(), [QUESTION, QUESTION], mode, {})
    assert len(results) == 2
    assert _shape(results, mode) == _shape(untraced, mode)
    assert traced(local_server, handler) == [AGENT_OUTLINE, AGENT_OUTLINE]


def _shape(results: list[Any], mode: str) -> Any:
    """What a caller sees, minus ids and timings that differ run to run."""
    if mode == "astream_events":
        return [[(e["event"], e["name"]) for e in events] for events in results]
    if mode in ("stream", "astream"):
        return [[sorted(chunk) for chunk in chunks] for chunks in results]
    return [[m.content for m in r["messages"]] for r in results]


@pytest.mark.parametrize("mode", ["invoke", "abatch", "stream", "astream_events"])
def test_graph_and_chain_trees_are_the_same_in_every_mode(
    mode: str, local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    config = {"callbacks": [handler]}
    run(make_graph(), [{"topic": "tracing", "notes": []}], mode, config)
    run(make_chain(), ["What is Prefactor?"], mode, config)

    assert traced(local_server, handler) == [GRAPH_OUTLINE, RAG_OUTLINE]


def test_handler_bound_with_with_config(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    agent = make_agent().with_config(callbacks=[handler])

    agent.invoke(QUESTION)
    asyncio.run(agent.ainvoke(QUESTION))

    assert traced(local_server, handler) == [AGENT_OUTLINE, AGENT_OUTLINE]


def test_sixteen_runs_on_an_eight_thread_pool(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    agent = make_agent()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda _: agent.invoke(QUESTION, {"callbacks": [handler]}), range(16))
        )

    assert all(a["messages"][-1].content == ANSWER for a in answers)
    assert traced(local_server, handler) == [AGENT_OUTLINE] * 16
    assert handler.stats()["open_runs"] == 0


async def test_twenty_concurrent_ainvoke_through_one_handler(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    agent = make_agent()
    config = {"callbacks": [handler]}

    answers = await asyncio.gather(*(agent.ainvoke(QUESTION, config) for _ in range(20)))

    assert all(a["messages"][-1].content == ANSWER for a in answers)
    assert traced(local_server, handler) == [AGENT_OUTLINE] * 20
    assert handler.stats() | {"internal_errors_by_place": {}} == {
        "open_roots": 0,
        "open_runs": 0,
        "abandoned": 0,
        "untracked_runs": 0,
        "internal_errors": 0,
        "internal_errors_by_place": {},
    }


def _stopped_early(server: LocalServer, handler: PrefactorCallbackHandler) -> dict[str, Any]:
    """Check the stored run of a chain stream left after its first chunks; return its root."""
    assert traced(server, handler, status="cancelled") == [RAG_OUTLINE]
    spans = spans_of(server, "langchain:agent")
    (root,) = spans
    assert root["status"] == "cancelled"
    assert root["result_payload"]["reason"] == "stream closed before its end"
    # The text streamed until the last chunk taken (langchain-core keeps what was received).
    assert root["result_payload"]["outputs"]["output"]
    (llm,) = spans_of(server, "langchain:llm")
    assert llm["status"] == "cancelled"
    (parallel,) = [
        s for s in spans_of(server, "langchain:chain") if outline([s]).endswith("question>")
    ]
    assert parallel["status"] == "complete"  # the steps that had ended stay complete
    return root


def test_a_chain_stream_left_early_is_recorded_cancelled(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    stream = make_chain().stream("What is Prefactor?", {"callbacks": [handler]})
    assert next(stream) and next(stream)
    stream.close()  # what leaving a `for` loop early does once the generator is dropped
    _stopped_early(local_server, handler)


def test_a_stream_left_early_inside_a_step_cancels_that_step_only(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    inner = make_chain()

    def first_chunk(question: str, config: RunnableConfig) -> str:
        stream = inner.stream(question, config)
        chunk: str = next(stream)
        stream.close()
        return chunk

    outer = RunnableLambda(first_chunk, name="first_chunk")
    assert outer.invoke("What is Prefactor?", {"callbacks": [handler]})

    inner_outline = "\n".join("  " + line for line in RAG_OUTLINE.splitlines())
    inner_outline = inner_outline.replace("  langchain:agent", "  langchain:chain", 1)
    assert traced(local_server, handler) == ["langchain:agent first_chunk\n" + inner_outline]
    (sequence,) = [
        s
        for s in spans_of(local_server, "langchain:chain")
        if outline([s]) == "langchain:chain RunnableSequence"
        and s["parent_span_id"] == spans_of(local_server, "langchain:agent")[0]["id"]
    ]
    assert sequence["status"] == "cancelled"
    assert sequence["result_payload"]["reason"] == "stream closed before its end"
    assert spans_of(local_server, "langchain:agent")[0]["status"] == "complete"
