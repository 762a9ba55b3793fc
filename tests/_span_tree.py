"""The span tree of stored spans as indented lines: shared by the tests' outline helpers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

Span = dict[str, Any]


def by_start(parent: Span | None, siblings: list[Span]) -> list[Span]:
    """Siblings in start order."""
    return sorted(siblings, key=lambda span: span["started_at"] or "")


def tree_lines(
    spans: list[Span],
    line: Callable[[Span], str],
    order: Callable[[Span | None, list[Span]], list[Span]] = by_start,
) -> list[str]:
    """``line(span)`` for every span, indented two spaces per level. A span whose parent is not
    among ``spans`` is a root; ``order(parent, siblings)`` puts each level in order."""
    by_id = {span["id"]: span for span in spans}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in spans:
        parent = span["parent_span_id"] if span["parent_span_id"] in by_id else None
        children[parent].append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in order(by_id.get(parent or ""), children[parent]):
            lines.append("  " * depth + line(span))
            walk(span["id"], depth + 1)

    walk(None, 0)
    return lines
