"""The ambient "current span": a per-context stack of open span ids.

Each asyncio task and each copied `contextvars.Context` sees its own stack, because every change
replaces the list instead of mutating it. Threads started with ``run_in_executor`` or
``asyncio.to_thread`` receive a copy of the caller's context, and so of its stack.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["SpanContextStack"]

_stack: ContextVar[tuple[str, ...]] = ContextVar("prefactor_span_stack", default=())


class SpanContextStack:
    """Class-level API over one context variable holding the open span ids, innermost last."""

    @staticmethod
    def get_stack() -> list[str]:
        """A copy of the current context's stack, outermost first."""
        return list(_stack.get())

    @staticmethod
    def push(span_id: str) -> None:
        """Make ``span_id`` the innermost span of the current context."""
        _stack.set((*_stack.get(), span_id))

    @staticmethod
    def pop() -> str | None:
        """Remove and return the innermost span id, or None when empty."""
        stack = _stack.get()
        if not stack:
            return None
        _stack.set(stack[:-1])
        return stack[-1]

    @staticmethod
    def peek() -> str | None:
        """The innermost span id, or None when empty."""
        stack = _stack.get()
        return stack[-1] if stack else None

    @staticmethod
    def remove(span_id: str) -> bool:
        """Remove ``span_id`` wherever it sits in the current stack; whether it was there."""
        stack = _stack.get()
        if span_id not in stack:
            return False
        index = len(stack) - 1 - stack[::-1].index(span_id)
        _stack.set(stack[:index] + stack[index + 1 :])
        return True

    @staticmethod
    def depth() -> int:
        """How many spans are open in the current context."""
        return len(_stack.get())

    @staticmethod
    def is_empty() -> bool:
        """Whether no span is open in the current context."""
        return not _stack.get()

    @staticmethod
    def clear() -> None:
        """Empty the current context's stack."""
        _stack.set(())
