"""The LangChain agent the overhead benchmarks run: two model calls and one tool call per run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import tool

__all__ = ["INPUT", "NoopHandler", "ToolCallingFakeModel", "build_agent"]

INPUT: dict[str, Any] = {"messages": [("user", "What is 2 + 3?")]}


class ToolCallingFakeModel(BaseChatModel):
    """Asks for the ``add`` tool on the first call and answers on the second, with token
    usage on both replies, like a real provider."""

    @property
    def _llm_type(self) -> str:
        return "benchmark-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, Any]:
        return self.bind(tools=[getattr(t, "name", str(t)) for t in tools])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        if messages and isinstance(messages[-1], ToolMessage):
            reply = AIMessage(
                content="2 + 3 = 5",
                usage_metadata={"input_tokens": 42, "output_tokens": 6, "total_tokens": 48},
                response_metadata={"model_name": "fake-1", "finish_reason": "stop"},
            )
        else:
            reply = AIMessage(
                content="",
                tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}],
                usage_metadata={"input_tokens": 30, "output_tokens": 9, "total_tokens": 39},
                response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
            )
        return ChatResult(generations=[ChatGeneration(message=reply)])


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class NoopHandler(BaseCallbackHandler):
    """A callback handler that does nothing: the floor of any callback-based tracer."""


def build_agent() -> Any:
    """``langchain.agents.create_agent`` over the fake model and the ``add`` tool."""
    return create_agent(ToolCallingFakeModel(), [add])
