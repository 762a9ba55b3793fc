"""Test support: a client for the local server, and what it stored as outlines of span trees."""

from __future__ import annotations

from typing import Any

from _span_tree import tree_lines

import prefactor_integrations
from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_http.config import HttpClientConfig
from prefactor_local.server import LocalServer


def make_client(server: LocalServer) -> PrefactorCoreClient:
    """A core client pointed at ``server``."""
    http = HttpClientConfig(api_url=server.url, api_token=server.token, max_retries=1)
    return PrefactorCoreClient(PrefactorCoreConfig(http_config=http))


FINISHED = {"complete", "failed", "cancelled"}


def label(span: dict[str, Any]) -> str:
    """``"<schema_name> <name>"`` where name is the node, tool, model or run name."""
    payload = span.get("payload") or {}
    name = (
        payload.get("node")
        or payload.get("tool_name")
        or payload.get("model_name")
        or payload.get("name")
        or ""
    )
    return f"{span['schema_name']} {name}".rstrip()


def _sibling_order(parent: dict[str, Any] | None, siblings: list[dict[str, Any]]) -> list[Any]:
    """Chronological, except where order is up to a scheduler: LangGraph nodes of one step and
    the branches of a ``RunnableParallel`` are sorted by label."""
    if parent is not None and "RunnableParallel" in label(parent):
        return sorted(siblings, key=label)

    def key(span: dict[str, Any]) -> tuple[int, str, str]:
        step = (span.get("payload") or {}).get("step")
        if isinstance(step, int):
            return (step, "", label(span))
        return (0, span["started_at"] or "", label(span))

    return sorted(siblings, key=key)


def outline(spans: list[dict[str, Any]]) -> str:
    """The span tree as indented ``label`` lines (see ``_sibling_order`` for sibling order)."""
    return "\n".join(tree_lines(spans, label, _sibling_order))


def check_instance(
    server: LocalServer,
    instance: dict[str, Any],
    *,
    status: str = "complete",
    root: str = "langchain:agent",
) -> list[dict[str, Any]]:
    """Assert one instance's invariants; return its spans.

    Its status is ``status``; it has exactly one root span, of schema ``root``; every parent id
    resolves inside the instance; every span is finished.
    """
    assert instance["status"] == status, instance
    spans = server.store.list_spans(instance["id"])
    assert spans, f"instance {instance['id']} has no spans"
    ids = {s["id"] for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert [r["schema_name"] for r in roots] == [root], outline(spans)
    for span in spans:
        assert span["agent_instance_id"] == instance["id"]
        assert span["parent_span_id"] is None or span["parent_span_id"] in ids, span
        assert span["status"] in FINISHED, (label(span), span["status"])
        assert span["finished_at"] is not None, label(span)
    return spans


def instances(server: LocalServer) -> list[dict[str, Any]]:
    """Every stored instance, in the order the runs started (the client's start time)."""
    return sorted(
        server.store.list_instances(), key=lambda i: (i["started_at"] or "", i["inserted_at"])
    )


def traced(
    server: LocalServer, handler: Any, *, status: str = "complete", root: str = "langchain:agent"
) -> list[str]:
    """Flush, check every instance, and return their outlines (oldest first)."""
    assert handler.flush(timeout=20.0), "flush timed out"
    assert prefactor_integrations.flush(timeout=20.0), "flush_all timed out"
    return [
        outline(check_instance(server, inst, status=status, root=root))
        for inst in instances(server)
    ]


def no_open_ambient_span(tracer: Any) -> bool:
    """True when no span left in the current context's ambient stack is still open.

    langchain-core runs async end callbacks in a copy of the caller's context, so a finished
    async run can leave its own, closed, ids behind: they are ignored for parentage and pruned
    when the next run starts, so they never pile up (at most one run's worth remains).
    """
    from prefactor_core.context_stack import SpanContextStack

    stack = SpanContextStack.get_stack()
    return len(stack) <= 8 and all(tracer.instance_of(s) is None for s in stack)


def spans_of(server: LocalServer, schema_name: str) -> list[dict[str, Any]]:
    """All stored spans of one schema over every instance, in start order per instance."""
    return [
        s
        for inst in instances(server)
        for s in sorted(server.store.list_spans(inst["id"]), key=lambda s: s["started_at"])
        if s["schema_name"] == schema_name
    ]
