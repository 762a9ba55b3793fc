"""``outline`` / ``assert_outline`` on stored-span shapes (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from prefactor_integrations.testing import OutlineMismatchError, assert_outline, outline


def span(
    span_id: str,
    parent: str | None,
    schema: str,
    start: int,
    status: str = "complete",
    **payload: Any,
) -> dict[str, Any]:
    return {
        "id": span_id,
        "parent_span_id": parent,
        "schema_name": schema,
        "status": status,
        "started_at": f"2025-01-01T00:00:{start:02d}Z",
        "payload": payload,
    }


# Parallel LangGraph branches of one step, stored in the order they happened to start.
GRAPH = [
    span("r", None, "langchain:agent", 0, name="LangGraph"),
    span("p", "r", "langchain:node", 1, node="plan", step=1),
    span("w", "r", "langchain:node", 3, node="web", step=2),
    span("d", "r", "langchain:node", 2, node="docs", step=2),
    span("s", "r", "langchain:node", 4, "failed", node="write", step=3),
    span("l", "s", "langchain:llm", 5, model_name="m1", name="ChatX"),
]


def test_outline_orders_same_step_nodes_by_name() -> None:
    assert outline(GRAPH, statuses=True) == (
        "langchain:agent LangGraph [complete]\n"
        "  langchain:node plan [complete]\n"
        "  langchain:node docs [complete]\n"
        "  langchain:node web [complete]\n"
        "  langchain:node write [failed]\n"
        "    langchain:llm m1 [complete]"
    )
    assert outline(list(reversed(GRAPH))) == outline(GRAPH)


def test_partial_lines_match() -> None:
    assert_outline(
        GRAPH,
        """
        langchain:agent
          langchain:node
          langchain:node docs
          langchain:node [complete]
          langchain:node write [failed]
            langchain:llm m1
        """,
    )


def test_ignore_lifts_children_and_accepts_patterns() -> None:
    assert (
        outline(GRAPH, ignore=["langchain:n*"]) == "langchain:agent LangGraph\n  langchain:llm m1"
    )


def test_unordered_siblings() -> None:
    shuffled = """
        langchain:agent
          langchain:node write
            langchain:llm
          langchain:node web
          langchain:node plan
          langchain:node docs
    """
    with pytest.raises(OutlineMismatchError):
        assert_outline(GRAPH, shuffled)
    assert_outline(GRAPH, shuffled, ordered=False)


def test_unordered_mismatch_diff_keeps_matching_lines_in_place() -> None:
    with pytest.raises(OutlineMismatchError) as caught:
        assert_outline(
            GRAPH,
            """
            langchain:agent
              langchain:node write [complete]
              langchain:node plan
              langchain:node docs
              langchain:node web
            """,
            ordered=False,
        )
    message = str(caught.value)
    assert "\n-  langchain:node write [complete]\n" in message
    assert "\n   langchain:node plan\n" in message
    assert "\n+    langchain:llm m1 [complete]" in message


def test_missing_and_extra_spans() -> None:
    with pytest.raises(OutlineMismatchError) as caught:
        assert_outline(GRAPH[:1], "langchain:agent\n  langchain:node plan")
    assert "\n-  langchain:node plan" in str(caught.value)
    with pytest.raises(OutlineMismatchError) as caught:
        assert_outline([], "langchain:agent")
    assert "the trace has no spans" in str(caught.value)


def test_bad_expected_outline() -> None:
    with pytest.raises(ValueError, match="tabs"):
        assert_outline(GRAPH, "langchain:agent\n\tlangchain:node")
    with pytest.raises(TypeError, match="Trace"):
        outline(42)
