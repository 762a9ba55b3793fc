"""Flat stored spans → one tree per agent instance, with timings and the fields worth showing.

Shared by `prefactor-local show` and anything else that draws a trace (waterfalls, quickstart
summaries): build a `Trace` from a `TraceStore` and walk its `SpanNode`s.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, NamedTuple

from prefactor_local.store import TraceStore
from prefactor_local.timeutil import parse_stored

_MODEL_KEYS = ("model_name", "ls_model_name", "model", "model_id")
_USAGE_KEYS = ("token_usage", "usage", "usage_metadata")
_INPUT_TOKEN_KEYS = ("prompt_tokens", "input_tokens")
_OUTPUT_TOKEN_KEYS = ("completion_tokens", "output_tokens")
_SEARCH_DEPTH = 3
# Where a span's name is, after the LangGraph node, model and tool: the run, method or agent name.
_NAME_KEYS = ("name", "run_name", "agent_name", "node_name", "langgraph_node")


def _millis(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds() * 1000, 0.0)


class TokenCounts(NamedTuple):
    """Token usage of one span; a count the payload does not give is None."""

    prompt: int | None
    completion: int | None
    total: int | None


@dataclass
class SpanNode:
    """One span (the API's JSON object) with its children, ordered by start time."""

    span: dict[str, Any]
    children: list[SpanNode] = field(default_factory=list)
    depth: int = 0

    @property
    def id(self) -> str:
        """The span id."""
        return str(self.span["id"])

    @property
    def schema_name(self) -> str:
        """The span type, e.g. `langchain:llm`."""
        return str(self.span.get("schema_name") or "")

    @property
    def status(self) -> str:
        """`active`, `complete`, `failed`, ..."""
        return str(self.span.get("status") or "")

    @property
    def parent_span_id(self) -> str | None:
        """The parent's id, or None for a root."""
        value = self.span.get("parent_span_id")
        return None if value is None else str(value)

    @property
    def payload(self) -> dict[str, Any]:
        """The span's params."""
        value = self.span.get("payload")
        return value if isinstance(value, dict) else {}

    @property
    def result_payload(self) -> dict[str, Any]:
        """The span's result ({} when none)."""
        value = self.span.get("result_payload")
        return value if isinstance(value, dict) else {}

    @property
    def started_at(self) -> datetime | None:
        """Start time (aware UTC)."""
        return parse_stored(self.span.get("started_at"))

    @property
    def finished_at(self) -> datetime | None:
        """End time (aware UTC), None while running."""
        return parse_stored(self.span.get("finished_at"))

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to finish; None while running."""
        return _millis(self.started_at, self.finished_at)

    def walk(self) -> Iterator[SpanNode]:
        """This node and its descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def highlights(self) -> dict[str, str]:
        """The payload fields a reader looks for: model, tokens, tool, error (when present)."""
        found: dict[str, str] = {}
        model = _find_string(self.payload, _MODEL_KEYS) or _find_string(
            self.result_payload, _MODEL_KEYS
        )
        if model:
            found["model"] = model
        tokens = _token_usage(self.result_payload) or _token_usage(self.payload)
        if tokens:
            found["tokens"] = tokens
        tool = _find_string(self.payload, ("tool_name",))
        if tool is None and "tool" in self.schema_name:
            name = self.payload.get("name")
            tool = name if isinstance(name, str) else None
        if tool:
            found["tool"] = tool
        error = _error_message(self.result_payload, self.status) or _error_message(
            self.payload, self.status
        )
        if error:
            found["error"] = error
        return found

    @property
    def label(self) -> str:
        """What tells two spans of one type apart (see `span_label`)."""
        return _label(self.payload, self.highlights())

    def token_counts(self) -> TokenCounts | None:
        """Prompt, completion and total tokens from the result (else the params), if reported."""
        return _token_counts(self.result_payload) or _token_counts(self.payload)

    def to_dict(self) -> dict[str, Any]:
        """The span JSON plus `duration_ms` and nested `children`."""
        data = dict(self.span)
        data["duration_ms"] = self.duration_ms
        data["children"] = [child.to_dict() for child in self.children]
        return data


@dataclass
class Trace:
    """One agent instance (the API's JSON object) and its span tree."""

    instance: dict[str, Any]
    roots: list[SpanNode] = field(default_factory=list)

    @classmethod
    def build(cls, instance: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> Trace:
        """Nest `spans` (any order) under their parents; orphans become roots."""
        nodes = {span["id"]: SpanNode(dict(span)) for span in spans}
        roots: list[SpanNode] = []
        for node in nodes.values():
            parent = nodes.get(node.parent_span_id) if node.parent_span_id else None
            if parent is None or parent is node:
                roots.append(node)
            else:
                parent.children.append(node)
        order = {span["id"]: index for index, span in enumerate(spans)}

        def sort_key(node: SpanNode) -> tuple[str, int]:
            return (str(node.span.get("started_at") or ""), order[node.id])

        seen: set[str] = set()

        def arrange(items: list[SpanNode], depth: int) -> list[SpanNode]:
            kept = []
            for node in sorted(items, key=sort_key):
                if node.id in seen:
                    continue
                seen.add(node.id)
                node.depth = depth
                node.children = arrange(node.children, depth + 1)
                kept.append(node)
            return kept

        return cls(dict(instance), arrange(roots, 0))

    @classmethod
    def load(cls, store: TraceStore, instance_id: str) -> Trace | None:
        """The trace of one instance, or None when the id is unknown."""
        instance = store.get_instance(instance_id)
        if instance is None:
            return None
        return cls.build(instance, store.list_spans(instance_id))

    @property
    def id(self) -> str:
        """The instance id."""
        return str(self.instance["id"])

    @property
    def status(self) -> str:
        """The instance status."""
        return str(self.instance.get("status") or "")

    @property
    def started_at(self) -> datetime | None:
        """When the instance started (or was registered, if it never started)."""
        return parse_stored(self.instance.get("started_at")) or parse_stored(
            self.instance.get("inserted_at")
        )

    @property
    def finished_at(self) -> datetime | None:
        """When the instance finished; None while running."""
        return parse_stored(self.instance.get("finished_at"))

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to finish; None while running."""
        return _millis(self.started_at, self.finished_at)

    @property
    def span_count(self) -> int:
        """Number of spans in the tree."""
        return sum(1 for _ in self.walk())

    def walk(self) -> Iterator[SpanNode]:
        """Every span, depth first in tree order."""
        for root in self.roots:
            yield from root.walk()

    @cached_property
    def origin(self) -> datetime | None:
        """The earliest start of the instance or any of its spans (time zero of a waterfall)."""
        starts = [self.started_at, *(node.started_at for node in self.walk())]
        present = [moment for moment in starts if moment is not None]
        return min(present) if present else None

    def offset_ms(self, node: SpanNode) -> float | None:
        """How long after `origin` the span started (for waterfall views)."""
        return _millis(self.origin, node.started_at)

    def to_dict(self) -> dict[str, Any]:
        """The instance JSON plus `duration_ms` and the nested `spans` tree."""
        data = dict(self.instance)
        data["duration_ms"] = self.duration_ms
        data["spans"] = [root.to_dict() for root in self.roots]
        return data

    def _repr_html_(self) -> str:
        """The waterfall picture a notebook shows for a trace."""
        from prefactor_local.waterfall import render_trace_html

        return render_trace_html(self)


class Traces(list[Trace]):
    """A plain list of traces that a notebook shows as waterfalls."""

    def _repr_html_(self) -> str:
        """Every trace's waterfall, in order."""
        from prefactor_local.waterfall import render_traces_html

        return render_traces_html(self)


def load_traces(
    store: TraceStore, *, agent_id: str | None = None, limit: int | None = None
) -> Traces:
    """Traces of the newest instances first (optionally of one agent)."""
    instances = store.list_instances(agent_id, limit=limit)
    return Traces(Trace.build(instance, store.list_spans(instance["id"])) for instance in instances)


def span_label(span: Mapping[str, Any]) -> str:
    """The label shown after a span's type, "" when none: its LangGraph node, else its model
    (LLM and embedding spans), else its tool, else its run, method or agent name.

    The one rule for `prefactor-local show`, the HTML waterfall, the quickstart's printout and
    `prefactor_integrations.testing.outline`; `SpanNode.label` is the same.
    """
    return SpanNode(dict(span)).label


def _label(payload: Mapping[str, Any], highlights: Mapping[str, str]) -> str:
    node = payload.get("node")
    if isinstance(node, str) and node:
        return node
    for key in ("model", "tool"):
        if key in highlights:
            return highlights[key]
    metadata = payload.get("metadata")
    for source in (payload, metadata if isinstance(metadata, Mapping) else {}):
        for key in _NAME_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
    return ""


# -- payload search ---------------------------------------------------------------------------


def _find(data: Any, keys: tuple[str, ...], depth: int = _SEARCH_DEPTH) -> Any:
    """The value of the first of `keys` found breadth first within `depth` levels of dicts."""
    level = [data]
    for _ in range(depth):
        following: list[Any] = []
        for item in level:
            if not isinstance(item, dict):
                continue
            for key in keys:
                if item.get(key) not in (None, "", {}):
                    return item[key]
            following.extend(value for value in item.values() if isinstance(value, dict))
        level = following
    return None


def _find_string(data: Any, keys: tuple[str, ...]) -> str | None:
    value = _find(data, keys)
    return value if isinstance(value, str) else None


def _token_usage(data: Any) -> str | None:
    usage = _find(data, _USAGE_KEYS)
    if not isinstance(usage, dict):
        return None
    prompt = next((usage[key] for key in _INPUT_TOKEN_KEYS if key in usage), None)
    completion = next((usage[key] for key in _OUTPUT_TOKEN_KEYS if key in usage), None)
    total = usage.get("total_tokens")
    if total is None and isinstance(prompt, int) and isinstance(completion, int):
        total = prompt + completion
    if prompt is None and completion is None and total is None:
        return None
    text = f"{prompt if prompt is not None else '?'} in / "
    text += f"{completion if completion is not None else '?'} out"
    return f"{text} ({total} total)" if total is not None else text


def _token_counts(data: Any) -> TokenCounts | None:
    usage = _find(data, _USAGE_KEYS)
    if not isinstance(usage, dict):
        return None

    def count(keys: tuple[str, ...]) -> int | None:
        value = next((usage[key] for key in keys if key in usage), None)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    prompt = count(_INPUT_TOKEN_KEYS)
    completion = count(_OUTPUT_TOKEN_KEYS)
    total = count(("total_tokens",))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    if prompt is None and completion is None and total is None:
        return None
    return TokenCounts(prompt, completion, total)


def _error_message(data: Mapping[str, Any], status: str) -> str | None:
    error = data.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("error_type")
        if isinstance(message, str) and isinstance(kind, str):
            return f"{kind}: {message}"
        if isinstance(message, str):
            return message
        if isinstance(kind, str):
            return kind
    if isinstance(error, str) and error:
        return error
    if status == "failed":
        message = data.get("message") or data.get("error_message")
        kind = data.get("error_type")
        if isinstance(message, str):
            return f"{kind}: {message}" if isinstance(kind, str) else message
    return None
