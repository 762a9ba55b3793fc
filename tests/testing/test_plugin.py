"""The ``prefactor_trace`` fixture used as a user would: a LangChain agent, a LlamaIndex query."""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_integrations.llama_index import instrumented_handler
from prefactor_integrations.testing import (
    OutlineMismatchError,
    ScriptedChatModel,
    TraceRecorder,
    assert_outline,
    outline,
)

AGENT_OUTLINE = """
    langchain:agent
      langchain:node model
        langchain:llm scripted-chat
      langchain:node tools
        langchain:tool lookup [complete]
      langchain:node model
        langchain:llm
"""


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return {"answer": "42"}.get(key, "?")


def make_agent() -> Any:
    model = ScriptedChatModel(
        tool_calls=[{"name": "lookup", "args": {"key": "answer"}}], answer="It is 42."
    )
    return create_agent(model, [lookup])


def ask(agent: Any, handler: Any) -> Any:
    return agent.invoke(
        {"messages": [("user", "What is the answer?")]}, config={"callbacks": [handler]}
    )


def test_langchain_agent_trace(prefactor_trace: TraceRecorder) -> None:
    result = ask(make_agent(), prefactor_trace.langchain_handler())
    assert result["messages"][-1].content == "It is 42."

    trace = prefactor_trace.trace()
    assert trace.status == "complete"
    assert trace.instance["agent_id"] == "test-agent"
    assert_outline(trace, AGENT_OUTLINE)
    assert_outline(
        trace,
        """
        langchain:agent [complete]
          langchain:llm
          langchain:tool lookup
          langchain:llm
        """,
        ignore=["langchain:node"],
    )
    instances = prefactor_trace.instances()
    assert [i["id"] for i in instances] == [trace.id]
    spans = prefactor_trace.spans(trace.id)
    assert len(spans) == 7
    llm = next(s for s in spans if s["schema_name"] == "langchain:llm")
    assert llm["result_payload"]["token_usage"]["total_tokens"] > 0


def test_environment_points_at_the_recorder(prefactor_trace: TraceRecorder) -> None:
    assert os.environ["PREFACTOR_API_URL"] == prefactor_trace.url
    assert os.environ["PREFACTOR_API_TOKEN"] == prefactor_trace.token
    assert os.environ["PREFACTOR_AGENT_ID"] == "test-agent"
    # A handler configured from the environment alone reports to the same server.
    ask(make_agent(), PrefactorCallbackHandler())
    assert_outline(prefactor_trace.trace(), AGENT_OUTLINE)


def test_llama_index_query_trace(prefactor_trace: TraceRecorder) -> None:
    prefactor_trace.instrument_llama_index()
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is in France."), Document(text="Lima is in Peru.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    engine = index.as_query_engine(llm=MockLLM(max_tokens=5), similarity_top_k=1)
    engine.query("Where is Paris?")

    assert_outline(
        prefactor_trace.trace(),
        """
        llama_index:query
          llama_index:retrieve
            llama_index:embedding
          llama_index:synthesize
            llama_index:llm MockLLM [complete]
        """,
    )


def test_wrong_outline_fails_with_a_readable_diff(prefactor_trace: TraceRecorder) -> None:
    ask(make_agent(), prefactor_trace.langchain_handler())
    trace = prefactor_trace.trace()
    wrong = """
        langchain:agent
          langchain:node model
            langchain:llm
          langchain:node tools
            langchain:tool search [failed]
    """
    with pytest.raises(OutlineMismatchError) as caught:
        assert_outline(trace, wrong)
    message = str(caught.value)
    assert trace.id in message
    assert "--- expected\n+++ actual" in message
    # Lines that agree are shown as written in the expectation; the others show the actual span.
    assert "\n     langchain:llm\n" in message
    assert "\n-    langchain:tool search [failed]\n" in message
    assert "\n+    langchain:tool lookup [complete]\n" in message
    assert "\n+  langchain:node model [complete]\n" in message
    assert isinstance(caught.value, AssertionError)


def test_recorder_undoes_its_instrumentation(tmp_path: Any) -> None:
    with TraceRecorder(tmp_path / "t.db") as recorder:
        recorder.instrument_llama_index()
        assert instrumented_handler() is not None
        with recorder.environment() as env:
            assert os.environ["PREFACTOR_API_URL"] == env["PREFACTOR_API_URL"]
    assert instrumented_handler() is None
    assert os.environ.get("PREFACTOR_API_URL") != env["PREFACTOR_API_URL"]


USER_TESTS = '''
from langchain.agents import create_agent
from langchain_core.tools import tool

from prefactor_integrations.testing import ScriptedChatModel, assert_outline


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def run(prefactor_trace):
    model = ScriptedChatModel(tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}}])
    agent = create_agent(model, [add])
    agent.invoke({"messages": [("user", "2+3?")]},
                 config={"callbacks": [prefactor_trace.langchain_handler()]})
    return prefactor_trace.trace()


def test_right(prefactor_trace):
    assert_outline(run(prefactor_trace), """
        langchain:agent
          langchain:llm
          langchain:tool add
          langchain:llm
    """, ignore=["langchain:node"])


def test_wrong(prefactor_trace):
    assert_outline(run(prefactor_trace), """
        langchain:agent
          langchain:llm
          langchain:tool multiply
    """, ignore=["langchain:node"])
'''


def test_plugin_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*OutlineMismatchError: span tree of instance * does not match the outline:*",
            "*-  langchain:tool multiply*",
            "*+  langchain:tool add*",
            "*+  langchain:llm scripted-chat*",
        ]
    )


def test_outline_text(prefactor_trace: TraceRecorder) -> None:
    ask(make_agent(), prefactor_trace.langchain_handler())
    trace = prefactor_trace.trace()
    assert outline(trace, ignore=["langchain:node"]) == (
        "langchain:agent LangGraph\n"
        "  langchain:llm scripted-chat\n"
        "  langchain:tool lookup\n"
        "  langchain:llm scripted-chat"
    )
    assert outline(trace, labels=False, statuses=True).splitlines()[:2] == [
        "langchain:agent [complete]",
        "  langchain:node [complete]",
    ]
    assert prefactor_trace.outline() == outline(trace)


def test_recorder_reaches_its_server_past_a_proxy(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that accepts nothing: requests to the loopback server must not go through it.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with TraceRecorder(tmp_path / "t.db") as recorder:
        ask(make_agent(), recorder.langchain_handler())
        assert_outline(recorder.trace(), AGENT_OUTLINE)
