"""One run, one trace: when several of our handlers see the same run (the same handler attached
twice, or different handlers bound and passed at invoke), the first one to see it owns it."""

from __future__ import annotations

import pytest
from _lc_support import make_client, traced
from langchain.agents import create_agent
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_integrations.testing import ScriptedChatModel
from prefactor_local.server import LocalServer

AGENT_TREE = """\
langchain:agent LangGraph
  langchain:node model
    langchain:llm scripted-chat
  langchain:node tools
    langchain:tool get_weather
  langchain:node model
    langchain:llm scripted-chat"""


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


def weather_agent() -> object:
    model = ScriptedChatModel(
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}], answer="Sunny."
    )
    return create_agent(model, [get_weather])


def two_steps() -> object:
    return RunnableLambda(lambda x: x + 1) | RunnableLambda(lambda x: x * 2)


def test_the_same_handler_bound_and_passed_traces_the_run_once(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    result = two_steps().with_config(callbacks=[handler]).invoke(1, {"callbacks": [handler]})

    assert result == 4
    assert traced(local_server, handler) == [
        "langchain:agent RunnableSequence\n"
        "  langchain:chain RunnableLambda\n"
        "  langchain:chain RunnableLambda"
    ]
    assert handler.client.stats().failed == 0


def test_the_same_handler_twice_records_a_failure_once(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    def boom(x: int) -> int:
        raise ValueError("bad input")

    chain = RunnableLambda(lambda x: x) | RunnableLambda(boom)
    with pytest.raises(ValueError, match="bad input"):
        chain.with_config(callbacks=[handler]).invoke(1, {"callbacks": [handler]})

    [tree] = traced(local_server, handler, status="failed")
    assert tree == (
        "langchain:agent RunnableSequence\n  langchain:chain RunnableLambda\n  langchain:chain boom"
    )


def test_two_handlers_on_one_agent_give_the_tree_of_one(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    other = PrefactorCallbackHandler(make_client(local_server), agent_name="other-agent")
    agent = weather_agent()
    try:
        agent.with_config(callbacks=[handler]).invoke(  # type: ignore[attr-defined]
            {"messages": [("user", "Weather in Paris?")]}, {"callbacks": [other]}
        )
        assert other.flush(timeout=20.0)
        assert traced(local_server, handler) == [AGENT_TREE]
        assert handler.stats()["open_runs"] == other.stats()["open_runs"] == 0
    finally:
        other.close(timeout=5.0)


def test_a_handler_passed_to_an_inner_call_stands_down_for_the_outer_owner(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    inner_handler = PrefactorCallbackHandler(make_client(local_server), agent_name="inner")
    inner = RunnableLambda(lambda x: x * 2).with_config(run_name="inner")

    def outer(x: int) -> int:
        return inner.invoke(x, {"callbacks": [inner_handler]})

    try:
        assert RunnableLambda(outer).invoke(3, {"callbacks": [handler]}) == 6
        assert inner_handler.flush(timeout=20.0)
        assert traced(local_server, handler) == ["langchain:agent outer\n  langchain:chain inner"]
    finally:
        inner_handler.close(timeout=5.0)


def test_a_handler_alone_on_the_next_run_traces_it(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    other = PrefactorCallbackHandler(make_client(local_server), agent_name="other-agent")
    try:
        two_steps().invoke(1, {"callbacks": [handler, other]})
        two_steps().invoke(1, {"callbacks": [other]})
        assert other.flush(timeout=20.0)
        assert len(traced(local_server, handler)) == 2
    finally:
        other.close(timeout=5.0)
