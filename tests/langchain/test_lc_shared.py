"""The bookkeeping both adapters share (``prefactor_integrations._shared``)."""

from __future__ import annotations

from typing import Any

import pytest

from prefactor_integrations._shared import (
    BoundedMap,
    RootState,
    RunTracker,
    SpanTypeSpec,
    agent_version,
    build_agent_schema_version,
    cancel_abandoned,
    error_info,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FinishLog:
    """Records finish calls in order (stands in for the tracer's two finish methods)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def finish_span(self, span_id: str, *, status: str = "complete", **kw: Any) -> None:
        self.calls.append(("span", span_id, status))

    def finish_instance(self, instance_id: str, *, status: str = "complete", **kw: Any) -> None:
        self.calls.append(("instance", instance_id, status))


def test_idle_trees_are_swept_children_first_and_their_late_runs_ignored() -> None:
    clock, log = Clock(), FinishLog()
    tracker = RunTracker(
        on_abandoned=lambda root: cancel_abandoned(log, root),
        idle_timeout=10.0,
        clock=clock,
    )
    tracker.open_root("r1", instance_id="i1", span_id="s1", schema_name="agent")
    clock.now = 1.0
    tracker.open_child("c1", "r1", span_id="s2", schema_name="chain")
    tracker.fold("hidden", "c1")
    clock.now = 5.0
    tracker.open_root("r2", instance_id="i2", span_id="s3", schema_name="agent")

    clock.now = 12.0  # r1 idle for 11 s, r2 for 7 s
    swept = tracker.sweep()

    assert [r.root_id for r in swept] == ["r1"]
    assert log.calls == [("span", "s2", "cancelled"), ("span", "s1", "cancelled"),
                         ("instance", "i1", "cancelled")]  # fmt: skip
    assert tracker.is_abandoned("c1") and tracker.is_abandoned("hidden")
    assert tracker.get("c1") is None
    assert len(tracker) == 1 and tracker.abandoned == 1


def test_folded_runs_share_their_ancestors_span() -> None:
    tracker = RunTracker()
    tracker.open_root("r", instance_id="i", span_id="root-span", schema_name="agent")
    tracker.fold("plumbing", "r")
    child = tracker.open_child("leaf", "plumbing", span_id="leaf-span", schema_name="llm")

    assert child is not None and child.instance_id == "i"
    assert tracker.get("plumbing").span_id == "root-span"  # type: ignore[union-attr]
    assert tracker.owner("plumbing").run_id == "r"  # type: ignore[union-attr]
    assert tracker.open_child("orphan", "unknown", span_id="x", schema_name="llm") is None


def test_trees_are_bounded_and_the_least_recently_active_is_evicted() -> None:
    evicted: list[RootState] = []
    tracker = RunTracker(on_abandoned=evicted.append, max_roots=2, max_runs_per_root=2)
    tracker.open_root("a", instance_id="ia", span_id="sa", schema_name="agent")
    tracker.open_root("b", instance_id="ib", span_id="sb", schema_name="agent")
    tracker.get("a")  # a is now more recently active than b
    tracker.open_root("c", instance_id="ic", span_id="sc", schema_name="agent")

    assert [r.root_id for r in evicted] == ["b"]
    assert tracker.open_child("a1", "a", span_id="x", schema_name="chain") is not None
    assert tracker.open_child("a2", "a", span_id="y", schema_name="chain") is None  # full
    assert tracker.rejected == 1
    root = tracker.close_root("a")
    assert root is not None and set(root.runs) == {"a", "a1"}
    assert tracker.open_runs == 1


def test_bounded_map_drops_the_oldest() -> None:
    links: BoundedMap[str, int] = BoundedMap(2)
    links.set("t1", 1)
    links.set("t2", 2)
    links.set("t1", 3)
    links.set("t3", 4)
    assert (links.get("t1"), links.get("t2"), links.get("t3")) == (3, None, 4)
    with pytest.raises(ValueError):
        BoundedMap(0)


def test_error_info_shape() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        info = error_info(exc)
    assert info["error_type"] == "KeyError"
    assert info["message"] == "'missing'"
    assert "Traceback" in info["stacktrace"] and "raise KeyError" in info["stacktrace"]
    assert error_info(ValueError("never raised"))["stacktrace"].strip() == (
        "ValueError: never raised"
    )


def test_schema_and_version_ids_depend_only_on_content() -> None:
    spec = SpanTypeSpec(name="x:step", title="Step", description="A step", template="{{name}}")
    other = SpanTypeSpec(name="x:step", title="Step!", description="A step")
    first = build_agent_schema_version([spec], prefix="x")
    again = build_agent_schema_version([spec], prefix="x")
    changed = build_agent_schema_version([other], prefix="x")

    assert first == again
    assert first["external_identifier"].startswith("x-")
    assert first["external_identifier"] != changed["external_identifier"]
    (entry,) = first["span_type_schemas"]
    assert entry["title"] == "Step" and entry["template"] == "{{name}}"
    v1 = agent_version(name="bot", version="2.0", schema_version=first)
    assert v1 == agent_version(name="bot", version="2.0", schema_version=again)
    assert v1["external_identifier"].startswith("2.0+")
    assert v1 != agent_version(name="bot", version="2.0", schema_version=changed)
