"""Scripts that end without flushing, normally or by an unhandled exception: the exit-time
drain delivers what they traced."""

from __future__ import annotations

import textwrap

from _rel_support import (
    AGENT_OUTLINE,
    STATS_AT_EXIT,
    check_runs,
    exit_stats,
    outline,
    report,
    run_script,
    tally,
)

from prefactor_local.server import LocalServer

SCRIPT = STATS_AT_EXIT + textwrap.dedent(
    """
    import os

    from langchain_core.tools import tool
    from _rel_support import QUESTION, make_agent
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    @tool
    def divide(a: int, b: int) -> float:
        \"\"\"Divide a by b.\"\"\"
        raise ZeroDivisionError("the tool broke")

    handler = PrefactorCallbackHandler(agent_name="exit-agent")  # configured from the environment
    CLIENTS.append(handler.client)
    agent = make_agent()
    for _ in range(3):
        agent.invoke(QUESTION, {"callbacks": [handler]})
    if os.environ.get("END_WITH_ERROR"):
        make_agent(tools=[divide]).invoke(QUESTION, {"callbacks": [handler]})
    """
)


def _by_host_name(server: LocalServer) -> str:
    # A host name, as real deployments use: new connections at exit must resolve it.
    return server.url.replace("127.0.0.1", "localhost")


def test_script_that_never_flushes_has_every_span_stored(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 100  # plenty still queued when the script ends
    done = run_script(SCRIPT, local_server, PREFACTOR_API_URL=_by_host_name(local_server))

    assert done.returncode == 0, done.stderr
    assert "could not be delivered" not in done.stderr, done.stderr
    (stats,) = exit_stats(done.stdout)
    assert stats["failed"] == 0 and stats["pending"] == 0 and stats["sent"] > 0, stats
    counted = check_runs(local_server, 3)
    assert counted.lost == 0 and counted.duplicated == 0
    report("exit without flush (3 runs)", stats["queued"], counted)


def test_script_ended_by_an_unhandled_exception_has_every_span_stored(
    local_server: LocalServer,
) -> None:
    local_server.faults.latency_ms = 100
    done = run_script(
        SCRIPT,
        local_server,
        PREFACTOR_API_URL=_by_host_name(local_server),
        END_WITH_ERROR="1",
    )

    assert done.returncode == 1 and "ZeroDivisionError: the tool broke" in done.stderr
    assert "could not be delivered" not in done.stderr, done.stderr
    (stats,) = exit_stats(done.stdout)
    assert stats["failed"] == 0 and stats["pending"] == 0, stats
    instances = local_server.store.list_instances()
    assert sorted(i["status"] for i in instances) == ["complete"] * 3 + ["failed"]
    failed = next(i for i in instances if i["status"] == "failed")
    spans = local_server.store.list_spans(failed["id"])
    assert outline(spans) == (*AGENT_OUTLINE[:4], "    langchain:tool divide")
    (tool_span,) = [s for s in spans if s["schema_name"] == "langchain:tool"]
    assert tool_span["status"] == "failed"
    assert tool_span["result_payload"]["error"]["error_type"] == "ZeroDivisionError"
    counted = tally(local_server, 4)
    expected = 3 * len(AGENT_OUTLINE) + 5
    assert counted.stored == expected and counted.duplicated == 0
    report(
        "exit by unhandled exception (4 runs)",
        stats["queued"],
        type(counted)(expected, counted.stored, 0, expected - counted.stored),
    )


LLAMA_INDEX_SCRIPT = textwrap.dedent(
    """
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM
    from prefactor_integrations.llama_index import instrument

    instrument(agent_name="exit-rag")
    docs = [Document(text="The capital of Peru is Lima.")]
    index = VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))
    print(index.as_query_engine(llm=MockLLM(max_tokens=8)).query("Where is Lima?"))
    streaming = index.as_query_engine(llm=MockLLM(max_tokens=8), streaming=True)
    response = streaming.query("Where is Lima?")
    next(response.response_gen)  # read a little, then the script ends with the stream open
    """
)


def test_llama_index_runs_open_at_exit_are_finished_cancelled(local_server: LocalServer) -> None:
    done = run_script(LLAMA_INDEX_SCRIPT, local_server)

    assert done.returncode == 0, done.stderr
    statuses = sorted(str(i["status"]) for i in local_server.store.list_instances())
    assert statuses == ["cancelled", "complete"]
    (open_at_exit,) = [i for i in local_server.store.list_instances() if i["status"] == "cancelled"]
    spans = local_server.store.list_spans(str(open_at_exit["id"]))
    assert spans and all(s["status"] in ("complete", "cancelled") for s in spans)
    assert any(s["status"] == "cancelled" for s in spans)
