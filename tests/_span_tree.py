"""The span tree of stored spans as indented lines: shared by the tests' outline helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefactor_local.trace import SpanNode, Trace

Span = dict[str, Any]


def by_start(parent: Span | None, siblings: list[Span]) -> list[Span]:
    """Siblings in start order."""
    return sorted(siblings, key=lambda span: span["started_at"] or "")


def tree_lines(
    spans: list[Span],
    line: Callable[[Span], str],
    order: Callable[[Span | None, list[Span]], list[Span]] = by_start,
) -> list[str]:
    """``line(span)`` for every span of the tree `Trace.build` makes of ``spans``, indented two
    spaces per level; ``order(parent, siblings)`` puts each level in order."""
    lines: list[str] = []

    def walk(nodes: list[SpanNode], parent: Span | None, depth: int) -> None:
        node_of = {id(node.span): node for node in nodes}
        for span in order(parent, [node.span for node in nodes]):
            lines.append("  " * depth + line(span))
            walk(node_of[id(span)].children, span, depth + 1)

    walk(Trace.build({}, spans).roots, None, 0)
    return lines
