"""Test helpers: a scripted chat model, a local trace recorder and span-tree assertions.

* :class:`ScriptedChatModel` - a LangChain chat model that plays a tool-calling conversation
  with no provider (needs the ``langchain`` extra; imported on first use).
* :class:`TraceRecorder` - a ``prefactor_local`` server in this process, a client and handlers
  aimed at it, and readers for what it stored (needs the ``local`` extra).
* :func:`outline` / :func:`assert_outline` - a span tree as indented text, and a comparison
  against an expected outline with a readable diff.
* ``prefactor_integrations.testing.pytest_plugin`` - the ``prefactor_trace`` pytest fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .outline import OutlineMismatchError, assert_outline, outline, span_label
from .recorder import DEFAULT_AGENT_ID, TraceRecorder

if TYPE_CHECKING:
    from .chat_model import ScriptedChatModel, ToolCallSpec, Turn

__all__ = [
    "DEFAULT_AGENT_ID",
    "OutlineMismatchError",
    "ScriptedChatModel",
    "ToolCallSpec",
    "TraceRecorder",
    "Turn",
    "assert_outline",
    "outline",
    "span_label",
]

_LAZY = frozenset({"ScriptedChatModel", "ToolCallSpec", "Turn"})


def __getattr__(name: str) -> Any:
    # LangChain is an optional extra: the chat model is imported only when asked for.
    if name in _LAZY:
        from . import chat_model

        return getattr(chat_model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
