"""Span trees as compact text outlines, and assertions against an expected outline.

An outline has one line per span, indented two spaces per level::

    langchain:agent LangGraph
      langchain:node model
        langchain:llm scripted-chat
      langchain:node tools
        langchain:tool get_weather [complete]

Each line is the span type, then optionally a label (the LangGraph node, tool, model or run
name) and optionally a ``[status]``. In an *expected* outline the label and status may be left
out; whatever is given must match.
"""

from __future__ import annotations

import difflib
import fnmatch
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefactor_local.trace import SpanNode, Trace
from prefactor_local.trace import span_label as shared_span_label

__all__ = ["OutlineMismatchError", "assert_outline", "outline", "span_label"]

TraceLike = Any | Sequence[Mapping[str, Any]]
"""A ``prefactor_local.trace.Trace``, a ``SpanNode``, or a list of span dicts as stored by the
local server (``TraceStore.list_spans``)."""

_LINE = re.compile(r"^(?P<schema>\S+)(?:\s+(?P<label>.*?))?(?:\s*\[(?P<status>[^\]]+)\])?\s*$")


class OutlineMismatchError(AssertionError):
    """The span tree differs from the expected outline; the message holds a diff."""


@dataclass
class _Node:
    schema: str
    label: str
    status: str
    step: int | None = None
    children: list[_Node] = field(default_factory=list)


@dataclass
class _Expected:
    schema: str
    label: str | None
    status: str | None
    text: str
    children: list[_Expected] = field(default_factory=list)

    def matches(self, node: _Node) -> bool:
        return (
            self.schema == node.schema
            and (self.label is None or self.label == node.label)
            and (self.status is None or self.status == node.status)
        )


def span_label(span: Mapping[str, Any]) -> str:
    """The label of a span: its LangGraph node, model, tool or run name ("" when none), by the
    same rule as ``prefactor-local show`` and the HTML waterfall."""
    return shared_span_label(span)


# -- building trees ------------------------------------------------------------------------------


def _spans_of(trace: TraceLike) -> list[dict[str, Any]]:
    if isinstance(trace, Sequence) and not isinstance(trace, (str, bytes)):
        return [dict(span) for span in trace]
    walk = getattr(trace, "walk", None)
    if callable(walk):
        return [dict(node.span) for node in walk()]
    raise TypeError(
        "expected a prefactor_local Trace or SpanNode, or a list of span dicts; "
        f"got {type(trace).__name__}"
    )


def _tree(spans: list[dict[str, Any]]) -> list[_Node]:
    """The spans nested as the local server's `Trace` nests them, as outline nodes."""

    def node(span_node: SpanNode) -> _Node:
        span = span_node.span
        payload = span.get("payload")
        step = payload.get("step") if isinstance(payload, Mapping) else None
        return _Node(
            schema=span_node.schema_name,
            label=span_label(span),
            status=span_node.status,
            step=step if isinstance(step, int) and not isinstance(step, bool) else None,
            children=_canonical([node(child) for child in span_node.children]),
        )

    return _canonical([node(root) for root in Trace.build({}, spans).roots])


def _canonical(nodes: list[_Node]) -> list[_Node]:
    """Siblings whose order is up to a scheduler (LangGraph nodes of one step) by label."""
    if len(nodes) > 1 and all(n.step is not None for n in nodes):
        return sorted(nodes, key=lambda n: (n.step, n.label, n.schema))
    return nodes


def _drop(nodes: list[_Node], patterns: Sequence[str]) -> list[_Node]:
    out: list[_Node] = []
    for node in nodes:
        children = _drop(node.children, patterns)
        if any(fnmatch.fnmatchcase(node.schema, pattern) for pattern in patterns):
            out.extend(children)
        else:
            out.append(_Node(node.schema, node.label, node.status, node.step, children))
    return out


def _text(node: _Node, *, labels: bool, statuses: bool) -> str:
    text = node.schema
    if labels and node.label:
        text += f" {node.label}"
    if statuses:
        text += f" [{node.status}]"
    return text


def _render(nodes: Iterable[_Node], depth: int, labels: bool, statuses: bool) -> list[str]:
    lines: list[str] = []
    for node in nodes:
        lines.append("  " * depth + _text(node, labels=labels, statuses=statuses))
        lines.extend(_render(node.children, depth + 1, labels, statuses))
    return lines


def outline(
    trace: TraceLike,
    *,
    labels: bool = True,
    statuses: bool = False,
    ignore: Sequence[str] = (),
) -> str:
    """The span tree of ``trace`` as an outline (see the module docstring).

    Siblings are in start order, except LangGraph nodes of the same step, which are sorted by
    name (their order depends on the scheduler). ``labels`` adds the node/tool/model/run name,
    ``statuses`` the ``[status]``. Spans whose type matches a pattern in ``ignore``
    (``fnmatch`` style, e.g. ``"langchain:node"`` or ``"langchain:chain*"``) are left out and
    their children move up a level.
    """
    nodes = _drop(_tree(_spans_of(trace)), ignore)
    return "\n".join(_render(nodes, 0, labels, statuses))


# -- comparing -----------------------------------------------------------------------------------


def _parse(expected: str) -> list[_Expected]:
    lines = [line.rstrip() for line in expected.strip("\n").splitlines() if line.strip()]
    if not lines:
        return []
    margin = min(len(line) - len(line.lstrip(" ")) for line in lines)
    roots: list[_Expected] = []
    stack: list[tuple[int, _Expected]] = []
    for number, raw in enumerate(lines, 1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError(f"expected outline line {number}: indent with spaces, not tabs")
        indent = len(raw) - len(raw.lstrip(" ")) - margin
        text = raw.strip()
        match = _LINE.match(text)
        if match is None:  # pragma: no cover - the pattern accepts any non-blank text
            raise ValueError(f"expected outline line {number} cannot be read: {text!r}")
        item = _Expected(
            schema=match["schema"],
            label=(match["label"] or None),
            status=match["status"],
            text=text,
        )
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack:
            stack[-1][1].children.append(item)
        elif indent > 0 and roots:
            raise ValueError(f"expected outline line {number} is indented under nothing: {raw!r}")
        else:
            roots.append(item)
        stack.append((indent, item))
    return roots


def _match_all(expected: list[_Expected], nodes: list[_Node], ordered: bool) -> bool:
    if len(expected) != len(nodes):
        return False
    if ordered:
        return all(_match(e, n, ordered) for e, n in zip(expected, nodes, strict=True))
    return _assign(expected, nodes, ordered) is not None


def _match(expected: _Expected, node: _Node, ordered: bool) -> bool:
    return expected.matches(node) and _match_all(expected.children, node.children, ordered)


def _assign(expected: list[_Expected], nodes: list[_Node], ordered: bool) -> list[_Node] | None:
    """``nodes`` reordered so that each matches the expected line at its position, or None."""
    if not expected:
        return [] if not nodes else None
    first, rest = expected[0], expected[1:]
    for i, node in enumerate(nodes):
        if _match(first, node, ordered):
            tail = _assign(rest, nodes[:i] + nodes[i + 1 :], ordered)
            if tail is not None:
                return [node, *tail]
    return None


def _pairs(
    expected: list[_Expected], nodes: list[_Node], ordered: bool
) -> list[tuple[_Expected | None, _Node | None]]:
    """For the diff: each expected line with the span shown in its place.

    Ordered siblings pair up by position. Unordered ones pair with the best candidate (a whole
    matching subtree, else a matching line, else the same type and label, else the same type);
    spans left over come last.
    """
    if ordered:
        return list(itertools.zip_longest(expected, nodes))
    left = list(nodes)
    chosen: list[_Node | None] = [None] * len(expected)
    tests: tuple[Callable[[_Expected, _Node], bool], ...] = (
        lambda e, n: _match(e, n, ordered),
        lambda e, n: e.matches(n),
        lambda e, n: e.schema == n.schema and e.label in (None, n.label),
        lambda e, n: e.schema == n.schema,
    )
    for test in tests:
        for i, item in enumerate(expected):
            if chosen[i] is None:
                hit = next((n for n in left if test(item, n)), None)
                if hit is not None:
                    chosen[i] = hit
                    left.remove(hit)
    pairs: list[tuple[_Expected | None, _Node | None]] = list(zip(expected, chosen, strict=True))
    pairs.extend((None, n) for n in left)
    return pairs


def _project(
    expected: list[_Expected], nodes: list[_Node], depth: int, ordered: bool, statuses: bool
) -> list[str]:
    """The actual tree written the way the expected outline is written where they agree."""
    lines: list[str] = []
    for item, node in _pairs(expected, nodes, ordered):
        if node is None:
            continue
        if item is not None and item.matches(node):
            lines.append("  " * depth + item.text)
        else:
            lines.append("  " * depth + _text(node, labels=True, statuses=statuses))
        lines.extend(
            _project(item.children if item else [], node.children, depth + 1, ordered, statuses)
        )
    return lines


def _describe(trace: TraceLike) -> str:
    instance = getattr(trace, "instance", None)
    if isinstance(instance, Mapping) and instance.get("id"):
        return f" of instance {instance['id']}"
    return ""


def assert_outline(
    trace: TraceLike,
    expected: str,
    *,
    ignore: Sequence[str] = (),
    ordered: bool = True,
) -> None:
    """Assert that the span tree of ``trace`` has the shape written in ``expected``.

    ``expected`` is an outline (see the module docstring); the common indentation is removed,
    so a triple-quoted string can be indented with the code. Labels and ``[status]`` are
    checked only where given. ``ignore`` leaves out spans of matching types (their children
    move up), e.g. ``ignore=["langchain:node"]`` to compare only model and tool calls. With
    ``ordered=False`` siblings may appear in any order.

    Raises :class:`OutlineMismatchError` (an ``AssertionError``) with a unified diff of the
    expected outline against the actual tree.
    """
    wanted = _parse(expected)
    nodes = _drop(_tree(_spans_of(trace)), ignore)
    if _match_all(wanted, nodes, ordered):
        return
    statuses = "[" in expected
    actual_lines = _project(wanted, nodes, 0, ordered, statuses)
    expected_lines = _render_expected(wanted, 0)
    diff = difflib.unified_diff(
        expected_lines,
        actual_lines,
        fromfile="expected",
        tofile="actual",
        lineterm="",
        n=max(len(expected_lines), len(actual_lines)),
    )
    body = "\n".join(diff)
    if not actual_lines:
        body += "\n(the trace has no spans)"
    raise OutlineMismatchError(f"span tree{_describe(trace)} does not match the outline:\n{body}")


def _render_expected(items: list[_Expected], depth: int) -> list[str]:
    lines: list[str] = []
    for item in items:
        lines.append("  " * depth + item.text)
        lines.extend(_render_expected(item.children, depth + 1))
    return lines
