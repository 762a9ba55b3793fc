"""Process-wide tracing with instrument()/uninstrument(), PREFACTOR_TRACING, and env config."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from _lc_models import AGENT_OUTLINE, RAG_OUTLINE, make_agent, make_rag_chain
from _lc_support import instances, make_client, traced

import prefactor_integrations
from prefactor_integrations._shared import PrefactorConfigurationError
from prefactor_integrations.langchain import (
    PrefactorCallbackHandler,
    instrument,
    instrumented_handler,
    uninstrument,
)
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}


def test_instrument_traces_runs_that_pass_no_handler(local_server: LocalServer) -> None:
    handler = instrument(PrefactorCallbackHandler(make_client(local_server)))
    assert instrumented_handler() is handler

    make_agent().invoke(QUESTION)
    asyncio.run(make_agent().ainvoke(QUESTION))
    with ThreadPoolExecutor(max_workers=2) as pool:  # plain threads see it too
        list(pool.map(lambda _: make_rag_chain().invoke("q"), range(2)))

    assert traced(local_server, handler) == [AGENT_OUTLINE, AGENT_OUTLINE, RAG_OUTLINE, RAG_OUTLINE]

    uninstrument()
    assert instrumented_handler() is None
    make_agent().invoke(QUESTION)
    assert prefactor_integrations.flush(timeout=10.0)
    assert len(instances(local_server)) == 4  # nothing new after uninstrument()


def test_an_explicit_handler_is_not_doubled_by_instrument(local_server: LocalServer) -> None:
    global_handler = instrument(PrefactorCallbackHandler(make_client(local_server)))
    explicit = PrefactorCallbackHandler(make_client(local_server), agent_name="explicit")

    make_agent().invoke(QUESTION, {"callbacks": [explicit]})
    make_agent().invoke(QUESTION, {"callbacks": [global_handler]})

    assert traced(local_server, explicit) == [AGENT_OUTLINE, AGENT_OUTLINE]
    names = sorted(v["body"]["name"] for v in local_server.store.list_agent_versions())
    assert names == ["explicit", "langchain-agent"]


def test_instrument_without_arguments_uses_the_environment(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in local_server.env.items():
        monkeypatch.setenv(key, value)
    handler = instrument()

    make_agent().invoke(QUESTION)
    make_rag_chain().invoke("q")

    assert traced(local_server, handler) == [AGENT_OUTLINE, RAG_OUTLINE]


def test_handler_configured_from_the_environment(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in local_server.env.items():
        monkeypatch.setenv(key, value)
    handler = PrefactorCallbackHandler(agent_name="from-env")

    make_agent().invoke(QUESTION, {"callbacks": [handler]})

    assert traced(local_server, handler) == [AGENT_OUTLINE]


def test_missing_environment_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PREFACTOR_API_URL", "PREFACTOR_API_TOKEN", "PREFACTOR_AGENT_ID"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(PrefactorConfigurationError) as both:
        PrefactorCallbackHandler()
    assert "PREFACTOR_API_URL and PREFACTOR_API_TOKEN are not set" in str(both.value)

    monkeypatch.setenv("PREFACTOR_API_URL", "http://127.0.0.1:9")
    with pytest.raises(PrefactorConfigurationError) as one:
        PrefactorCallbackHandler()
    assert "PREFACTOR_API_TOKEN is not set" in str(one.value)
    assert "PREFACTOR_AGENT_ID" in str(one.value)


SCRIPT = """
import prefactor_integrations  # with PREFACTOR_TRACING set, this is all it takes
from langchain_core.runnables import RunnableLambda

chain = RunnableLambda(lambda x: x + 1, name="inc") | RunnableLambda(lambda x: x * 2, name="dbl")
assert chain.invoke(1) == 4
assert prefactor_integrations.flush(timeout=20.0)
"""


def test_prefactor_tracing_env_traces_a_fresh_process(local_server: LocalServer) -> None:
    env = {**os.environ, **local_server.env, "PREFACTOR_TRACING": "true"}
    root = Path(prefactor_integrations.__file__).parent.parent
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT)],
        env=env,
        cwd=root,
        check=True,
        timeout=60,
    )

    (inst,) = instances(local_server)
    spans = local_server.store.list_spans(inst["id"])
    assert inst["status"] == "complete"
    assert sorted(s["payload"]["name"] for s in spans) == ["RunnableSequence", "dbl", "inc"]


EXIT_SCRIPT = """
from langchain_core.runnables import RunnableGenerator, RunnableLambda
from prefactor_integrations.langchain import PrefactorCallbackHandler

def words(chunks):
    for chunk in chunks:
        yield from str(chunk).split()

handler = PrefactorCallbackHandler(agent_name="exit-test")
chain = RunnableLambda(lambda x: x, name="prepare") | RunnableGenerator(words, name="words")
stream = chain.stream("a b c", {"callbacks": [handler]})
assert next(stream) == "a"
# the process ends here with the run still open
"""


def test_runs_open_at_interpreter_exit_are_delivered_cancelled(local_server: LocalServer) -> None:
    env = {**os.environ, **local_server.env}
    root = Path(prefactor_integrations.__file__).parent.parent
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT)],
        env=env,
        cwd=root,
        check=True,
        timeout=60,
    )

    (inst,) = instances(local_server)
    assert inst["status"] == "cancelled"
    spans = local_server.store.list_spans(inst["id"])
    # Streaming steps are all still open while the stream is being read.
    assert {s["status"] for s in spans} == {"cancelled"}
    assert sorted(s["payload"]["name"] for s in spans) == ["RunnableSequence", "prepare", "words"]
    root_span = next(s for s in spans if s["parent_span_id"] is None)
    assert root_span["status"] == "cancelled"
    assert root_span["result_payload"]["reason"] == "process exiting"
