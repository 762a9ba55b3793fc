"""``ScriptedChatModel`` as users and the cookbook use it, checked through what gets traced."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from prefactor_integrations.testing import ScriptedChatModel, TraceRecorder, assert_outline


@tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"{city}: sunny"


@tool
def get_time(city: str) -> str:
    """Local time in a city."""
    return f"{city}: 12:00"


def llm_spans(recorder: TraceRecorder) -> list[dict[str, Any]]:
    spans = recorder.spans(recorder.trace().id)
    found = [s for s in spans if s["schema_name"] == "langchain:llm"]
    return sorted(found, key=lambda s: str(s["started_at"]))


def test_multi_turn_script_drives_an_agent(prefactor_trace: TraceRecorder) -> None:
    model = ScriptedChatModel(
        model_name="my-model",
        turns=[
            [
                {"name": "get_weather", "args": {"city": "Oslo"}},
                {"name": "get_time", "args": {"city": "Oslo"}, "id": "t1"},
            ],
            [{"name": "get_weather", "args": {"city": "Rome"}}],
            "Oslo is sunny at noon; Rome is sunny too.",
        ],
    )
    agent = create_agent(model, [get_weather, get_time])
    out = agent.invoke(
        {"messages": [("user", "Oslo and Rome?")]},
        config={"callbacks": [prefactor_trace.langchain_handler()]},
    )
    messages = out["messages"]
    assert messages[-1].content == "Oslo is sunny at noon; Rome is sunny too."
    tool_results = sorted(str(m.content) for m in messages if isinstance(m, ToolMessage))
    assert tool_results == ["Oslo: 12:00", "Oslo: sunny", "Rome: sunny"]
    assert_outline(
        prefactor_trace.trace(),
        """
        langchain:agent
          langchain:llm my-model
          langchain:tool
          langchain:tool
          langchain:llm my-model
          langchain:tool get_weather
          langchain:llm my-model
        """,
        ignore=["langchain:node"],
        ordered=False,
    )
    first = llm_spans(prefactor_trace)[0]
    # bind_tools hands the tools' schemas over like a provider integration.
    tools = first["payload"]["tools"]
    assert {t["function"]["name"] for t in tools} == {"get_weather", "get_time"}
    calls = first["result_payload"]["outputs"]["messages"][0]["tool_calls"]
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    assert calls[1]["id"] == "t1"


def test_streaming_token_by_token_with_fixed_usage(prefactor_trace: TraceRecorder) -> None:
    model = ScriptedChatModel(
        answer="one two three four", usage={"input_tokens": 7, "output_tokens": 4}
    )
    handler = prefactor_trace.langchain_handler()
    chunks = list(model.stream("count", config={"callbacks": [handler]}))
    assert [c.content for c in chunks] == ["one ", "two ", "three ", "four", ""]
    assert chunks[-1].usage_metadata == {"input_tokens": 7, "output_tokens": 4, "total_tokens": 11}

    (span,) = llm_spans(prefactor_trace)
    result = span["result_payload"]
    assert result["token_usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert result["streaming"]["chunks"] == 5
    assert result["outputs"]["content"] == "one two three four"
    assert span["payload"]["model_name"] == "scripted-chat"


async def test_async_calls_and_estimated_usage() -> None:
    model = ScriptedChatModel(answer="fine thanks", latency=0.01)
    reply = await model.ainvoke([HumanMessage("how are you today?")])
    assert reply.content == "fine thanks"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["output_tokens"] == 2
    assert reply.usage_metadata["input_tokens"] > 0
    streamed = [c.content async for c in model.astream("hi")]
    assert "".join(str(c) for c in streamed) == "fine thanks"
    assert ScriptedChatModel(report_usage=False).invoke("hi").usage_metadata is None


def test_turn_is_chosen_by_the_conversation() -> None:
    model = ScriptedChatModel(tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}])
    first = model.invoke([HumanMessage("weather?")])
    assert first.tool_calls[0]["name"] == "get_weather"
    assert first.response_metadata["finish_reason"] == "tool_calls"
    history = [
        HumanMessage("weather?"),
        first,
        ToolMessage("sunny", tool_call_id=first.tool_calls[0]["id"]),
    ]
    assert model.invoke(history).content == "Done."
    # A new human message starts the script again; past the end the answer repeats.
    assert model.invoke([*history, AIMessage("Done."), HumanMessage("again?")]).tool_calls
    assert model.invoke([*history, AIMessage("x"), AIMessage("y")]).content == "Done."


def test_error_fails_the_llm_span(prefactor_trace: TraceRecorder) -> None:
    model = ScriptedChatModel(error=TimeoutError("provider timed out"))
    with pytest.raises(TimeoutError):
        model.invoke("hi", config={"callbacks": [prefactor_trace.langchain_handler()]})
    (span,) = llm_spans(prefactor_trace)
    assert span["status"] == "failed"
    assert span["result_payload"]["error"]["error_type"] == "TimeoutError"


def test_package_imports_without_the_framework_extras() -> None:
    code = (
        "import sys\n"
        "for name in ('langchain', 'langchain_core', 'langgraph', 'llama_index'):\n"
        "    sys.modules[name] = None\n"
        "import prefactor_integrations.testing as t\n"
        "spans = [{'id': 'a', 'parent_span_id': None, 'schema_name': 'x:root',"
        " 'status': 'complete'}]\n"
        "t.assert_outline(spans, 'x:root [complete]')\n"
        "try:\n"
        "    t.ScriptedChatModel\n"
        "except ImportError:\n"
        "    print('lazy')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "lazy"
