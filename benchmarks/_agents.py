"""The LangChain agent the overhead benchmarks run: two model calls and one tool call per run."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tools import tool

from prefactor_integrations.testing import ScriptedChatModel

__all__ = ["INPUT", "NoopHandler", "build_agent"]

INPUT: dict[str, Any] = {"messages": [("user", "What is 2 + 3?")]}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class NoopHandler(BaseCallbackHandler):
    """A callback handler that does nothing: the floor of any callback-based tracer."""


def build_agent(model_latency: float = 0.0) -> Any:
    """``langchain.agents.create_agent`` over a scripted model that asks for ``add`` once and
    then answers, with token usage on both replies, like a real provider.

    ``model_latency``: seconds the model takes per reply (0: it answers at once, so the run
    is pure CPU work)."""
    model = ScriptedChatModel(
        model_name="fake-1",
        tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}}],
        answer="2 + 3 = 5",
        usage={"input_tokens": 36, "output_tokens": 8, "total_tokens": 44},
        latency=model_latency,
    )
    return create_agent(model, [add])
