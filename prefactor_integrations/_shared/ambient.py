"""The ambient ("current") span shared by every framework adapter and the user's own code.

The ambient span lives in ``prefactor_core.context_stack.SpanContextStack`` (a contextvar holding
a copy-on-write list of span ids), so a LlamaIndex query run inside a LangChain tool, or a user's
``client.span(...)`` block, finds the span it should nest under, in the same instance.

Rules the adapters follow:

* the framework's own parent id wins; the ambient span is only consulted for a run with no known
  parent (:func:`ambient_parent`), or to prefer a *deeper* open span of the same instance over the
  framework parent (:func:`prefer_deeper`);
* a span id left on the stack by mistake is harmless: only spans the tracer still knows as open
  count (``tracer.instance_of``), and :func:`remove_spans` clears a finished tree's ids from the
  current context when its root ends, so consecutive top-level runs never nest into each other.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterator
from contextlib import contextmanager
from typing import Protocol

from prefactor_core.context_stack import SpanContextStack

__all__ = [
    "InstanceResolver",
    "ambient_parent",
    "ambient_span",
    "current_span_id",
    "prefer_deeper",
    "prune_closed",
    "push_span",
    "remove_span",
    "remove_spans",
]


class InstanceResolver(Protocol):
    """The part of ``prefactor_core.tracer.Tracer`` this module needs."""

    def instance_of(self, span_id: str) -> str | None: ...


def current_span_id() -> str | None:
    """The innermost ambient span id in this context (open or not), or None."""
    return SpanContextStack.peek()


def push_span(span_id: str) -> None:
    """Make ``span_id`` the ambient span of the current context."""
    SpanContextStack.push(span_id)


def remove_span(span_id: str) -> bool:
    """Remove ``span_id`` from the current context's stack wherever it sits.

    Returns True if it was there. Spans above it stay, in order.
    """
    return SpanContextStack.remove(span_id)


def remove_spans(span_ids: Collection[str]) -> int:
    """Remove every id in ``span_ids`` from the current context's stack; return how many."""
    present = {s for s in SpanContextStack.get_stack() if s in span_ids}
    removed = 0
    for span_id in present:
        while SpanContextStack.remove(span_id):
            removed += 1
    return removed


@contextmanager
def ambient_span(span_id: str) -> Iterator[None]:
    """Make ``span_id`` the ambient span for the duration of a ``with`` block."""
    push_span(span_id)
    try:
        yield
    finally:
        remove_span(span_id)


def ambient_parent(
    tracer: InstanceResolver, *, skip: Container[str] = ()
) -> tuple[str, str] | None:
    """``(instance_id, span_id)`` of the innermost ambient span that is still open, or None.

    Ids of spans already finished (or unknown to this process) are skipped, and so are ids in
    ``skip`` (an adapter passes the root spans of its own open top-level runs: a new top-level
    run of the same framework in the same context is a new run, not a child of an unfinished one,
    for example a stream the caller stopped reading).
    """
    for span_id in reversed(SpanContextStack.get_stack()):
        if span_id in skip:
            continue
        instance_id = tracer.instance_of(span_id)
        if instance_id is not None:
            return instance_id, span_id
    return None


def prune_closed(tracer: InstanceResolver) -> int:
    """Remove from the current context's stack every span the tracer no longer knows as open.

    Adapters call this when a top-level run ends, so nothing of it lingers as ambient context.
    Returns how many ids were removed.
    """
    stack = SpanContextStack.get_stack()
    if not stack:
        return 0
    dead = {s for s in stack if tracer.instance_of(s) is None}
    return remove_spans(dead) if dead else 0


def prefer_deeper(tracer: InstanceResolver, parent_span_id: str, instance_id: str) -> str:
    """Tie-break between the framework's parent span and the ambient span.

    When ``parent_span_id`` sits on the current stack and an open span of the same instance sits
    above it (for example a LlamaIndex span opened inside a LangChain tool that calls back into
    LangChain), that deeper span is returned; otherwise ``parent_span_id``.
    """
    stack = SpanContextStack.get_stack()
    if not stack or stack[-1] == parent_span_id:
        return parent_span_id
    try:
        pos = stack.index(parent_span_id)
    except ValueError:
        return parent_span_id
    for span_id in reversed(stack[pos + 1 :]):
        if tracer.instance_of(span_id) == instance_id:
            return span_id
    return parent_span_id
