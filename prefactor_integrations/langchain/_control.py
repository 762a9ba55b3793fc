"""LangGraph control-flow exceptions and ``Command``, without requiring LangGraph."""

from __future__ import annotations

from typing import Any

from .._shared.status import CANCELLATION

__all__ = [
    "CANCELLATION",
    "Command",
    "GraphBubbleUp",
    "GraphHandlerBase",
    "GraphInterrupt",
    "ParentCommand",
    "interrupts_of",
    "is_command",
]

try:
    from langgraph.errors import GraphBubbleUp, GraphInterrupt, ParentCommand
    from langgraph.types import Command
except ImportError:  # LangGraph is optional: plain LangChain never raises these

    class GraphBubbleUp(Exception):  # type: ignore[no-redef]
        """Placeholder: LangGraph is not installed."""

    class GraphInterrupt(GraphBubbleUp):  # type: ignore[no-redef]
        """Placeholder: LangGraph is not installed."""

    class ParentCommand(GraphBubbleUp):  # type: ignore[no-redef]
        """Placeholder: LangGraph is not installed."""

    class Command:  # type: ignore[no-redef]
        """Placeholder: LangGraph is not installed."""


try:
    # LangGraph's own interrupt/resume callbacks reach only handlers of this class.
    from langgraph.callbacks import GraphCallbackHandler as GraphHandlerBase
except ImportError:  # no LangGraph, or one older than its lifecycle callbacks
    from langchain_core.callbacks import BaseCallbackHandler as GraphHandlerBase  # type: ignore[assignment]


def is_command(value: Any) -> bool:
    """True for a LangGraph ``Command``."""
    return isinstance(value, Command)


def interrupts_of(value: Any) -> list[dict[str, Any]]:
    """The interrupts carried by a ``GraphInterrupt`` or an ``__interrupt__`` output value."""
    items: Any
    items = (value.args[0] if value.args else ()) if isinstance(value, GraphInterrupt) else value
    if not isinstance(items, list | tuple):
        items = (items,)
    out: list[dict[str, Any]] = []
    for item in items:
        if hasattr(item, "value"):
            entry: dict[str, Any] = {"value": item.value}
            interrupt_id = getattr(item, "id", None)
            if interrupt_id is not None:
                entry["id"] = interrupt_id
            out.append(entry)
        else:
            out.append({"value": item})
    return out
