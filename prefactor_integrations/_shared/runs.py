"""Run -> agent instance bookkeeping shared by the framework adapters.

A framework reports a tree of *runs* (LangChain runs, LlamaIndex spans), each with an id and the
id of its parent. One tree is one Prefactor agent instance; every run in it is one span (or, when
*folded*, borrows its nearest traced ancestor's span so framework plumbing stays invisible).

:class:`RunTracker` keeps the open runs of every open tree in memory:

* O(1) lookup of a run by id, thread-safe (one short lock, never held while calling out;
  :meth:`RunTracker.peek` reads without it);
* bounded: at most ``max_roots`` open trees and ``max_runs_per_root`` open runs per tree; the least
  recently active tree is evicted when full and handed to ``on_abandoned``;
* an idle sweep: trees with no activity for ``idle_timeout`` seconds (their end never came: an
  unconsumed generator, a cancelled task, a crashed worker) are handed to ``on_abandoned``, which
  normally calls :func:`cancel_abandoned` to finish their spans and instance ``cancelled``.
  The sweep runs opportunistically when a new tree opens (at most every ``sweep_interval``),
  so no thread is needed; :meth:`RunTracker.sweep` can also be called directly.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .bounded import BoundedMap

__all__ = [
    "RootState",
    "RunState",
    "RunTracker",
    "SpanFinisher",
    "cancel_abandoned",
]


@dataclass
class RunState:
    """One open run.

    ``span_id`` is the run's own span, or for a folded run the span of its nearest traced
    ancestor (``folded`` is then True and ``schema_name`` None). ``data`` is free for the
    adapter (captured inputs, streaming timings, events, ...).
    """

    run_id: Hashable
    root_id: Hashable
    parent_run_id: Hashable | None
    span_id: str
    instance_id: str
    schema_name: str | None
    folded: bool = False
    started_at: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class RootState:
    """One open tree (one agent instance, or one subtree nested in another framework's instance).

    ``owns_instance`` is False when the tree was nested under a span of another framework and so
    must not finish that instance. ``runs`` holds every run of the tree still open, root included.
    ``extra_spans`` lists spans opened for the tree besides its runs' own (for example a wrapper
    span around a root model call); they are finished after the runs, before the instance.
    """

    root_id: Hashable
    instance_id: str
    span_id: str
    owns_instance: bool
    last_activity: float
    runs: dict[Hashable, RunState] = field(default_factory=dict)
    extra_spans: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


class SpanFinisher(Protocol):
    """The part of ``prefactor_core.tracer.Tracer`` that :func:`cancel_abandoned` needs."""

    def finish_span(
        self, span_id: str, *, status: str = ..., result_payload: Any = ..., finished_at: Any = ...
    ) -> None: ...

    def finish_instance(
        self, instance_id: str, *, status: str = ..., finished_at: Any = ...
    ) -> None: ...


def cancel_abandoned(
    tracer: SpanFinisher, root: RootState, *, reason: str = "abandoned", status: str = "cancelled"
) -> None:
    """Finish every still-open span of ``root`` (children first) and, if owned, its instance.

    Spans get ``status`` (default ``cancelled``) and the result ``{"cancelled": True, "reason":
    reason}``. Errors from the tracer are left to the caller.
    """
    runs = [r for r in root.runs.values() if not r.folded]
    runs.sort(key=lambda r: r.started_at, reverse=True)
    result = {"cancelled": True, "reason": reason}
    for run in runs:
        tracer.finish_span(run.span_id, status=status, result_payload=dict(result))
    for span_id in reversed(root.extra_spans):
        tracer.finish_span(span_id, status=status, result_payload=dict(result))
    if root.owns_instance:
        tracer.finish_instance(root.instance_id, status=status)


class RunTracker:
    """Bounded, thread-safe map of open runs grouped by root run (see module docstring)."""

    def __init__(
        self,
        *,
        on_abandoned: Callable[[RootState], None] | None = None,
        max_roots: int = 4096,
        max_runs_per_root: int = 20_000,
        idle_timeout: float = 1800.0,
        sweep_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_abandoned = on_abandoned
        self.max_roots = max_roots
        self.max_runs_per_root = max_runs_per_root
        self.idle_timeout = idle_timeout
        self.sweep_interval = sweep_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._roots: OrderedDict[Hashable, RootState] = OrderedDict()
        self._runs: dict[Hashable, RunState] = {}
        self._last_sweep = clock()
        self._buried: BoundedMap[Hashable, bool] = BoundedMap(max(1024, max_roots * 16))
        self.abandoned = 0
        """How many trees were handed to ``on_abandoned`` (idle or evicted)."""
        self.rejected = 0
        """How many runs were not tracked because a bound was hit."""

    # -- opening -----------------------------------------------------------------------------

    def open_root(
        self,
        run_id: Hashable,
        *,
        instance_id: str,
        span_id: str,
        schema_name: str,
        owns_instance: bool = True,
        data: dict[str, Any] | None = None,
        extra_spans: Sequence[str] = (),
    ) -> RunState:
        """Start tracking a new tree whose root run is ``run_id``; returns the root's state.

        ``extra_spans`` become the tree's :attr:`RootState.extra_spans`.

        May first sweep idle trees and evict the least recently active one when full; those are
        handed to ``on_abandoned`` outside the lock.
        """
        now = self._clock()
        run = RunState(
            run_id=run_id,
            root_id=run_id,
            parent_run_id=None,
            span_id=span_id,
            instance_id=instance_id,
            schema_name=schema_name,
            started_at=now,
            data=data if data is not None else {},
        )
        root = RootState(
            root_id=run_id,
            instance_id=instance_id,
            span_id=span_id,
            owns_instance=owns_instance,
            last_activity=now,
            runs={run_id: run},
            extra_spans=list(extra_spans),
        )
        dropped: list[RootState] = []
        with self._lock:
            if now - self._last_sweep >= self.sweep_interval:
                self._last_sweep = now
                dropped.extend(self._take_idle(now))
            old = self._roots.pop(run_id, None)
            if old is not None:
                dropped.append(self._forget(old))
            while len(self._roots) >= self.max_roots:
                _, oldest = self._roots.popitem(last=False)
                dropped.append(self._forget(oldest, already_popped=True))
            self._roots[run_id] = root
            self._runs[run_id] = run
        self._abandon(dropped)
        return run

    def open_child(
        self,
        run_id: Hashable,
        parent_run_id: Hashable,
        *,
        span_id: str,
        schema_name: str,
        data: dict[str, Any] | None = None,
    ) -> RunState | None:
        """Track ``run_id`` as a traced child of ``parent_run_id``.

        Returns None (and tracks nothing) when the parent is unknown or the tree is full.
        The new run's instance is its parent's.
        """
        return self._open(run_id, parent_run_id, span_id, schema_name, False, data)

    def fold(
        self, run_id: Hashable, parent_run_id: Hashable, *, data: dict[str, Any] | None = None
    ) -> RunState | None:
        """Track ``run_id`` without a span of its own: it and its children use the parent's span.

        Returns None when the parent is unknown or the tree is full.
        """
        return self._open(run_id, parent_run_id, None, None, True, data)

    def _open(
        self,
        run_id: Hashable,
        parent_run_id: Hashable,
        span_id: str | None,
        schema_name: str | None,
        folded: bool,
        data: dict[str, Any] | None,
    ) -> RunState | None:
        now = self._clock()
        with self._lock:
            parent = self._runs.get(parent_run_id)
            if parent is None:
                return None
            root = self._roots.get(parent.root_id)
            if root is None:
                return None
            if len(root.runs) >= self.max_runs_per_root:
                self.rejected += 1
                return None
            run = RunState(
                run_id=run_id,
                root_id=parent.root_id,
                parent_run_id=parent_run_id,
                span_id=parent.span_id if span_id is None else span_id,
                instance_id=parent.instance_id,
                schema_name=schema_name,
                folded=folded,
                started_at=now,
                data=data if data is not None else {},
            )
            root.runs[run_id] = run
            self._runs[run_id] = run
            root.last_activity = now
            self._roots.move_to_end(root.root_id)
            return run

    # -- lookup ------------------------------------------------------------------------------

    def get(self, run_id: Hashable) -> RunState | None:
        """The open run ``run_id`` (marking its tree active), or None."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                root = self._roots.get(run.root_id)
                if root is not None:
                    root.last_activity = self._clock()
                    self._roots.move_to_end(run.root_id)
            return run

    def peek(self, run_id: Hashable) -> RunState | None:
        """The open run ``run_id``, or None: lock-free, for hot lookups.

        Unlike :meth:`get` it does not mark the tree active. A single dict read is atomic, so
        the answer is the run as it was at some instant during the call.
        """
        return self._runs.get(run_id)

    def owner(self, run_id: Hashable) -> RunState | None:
        """The run that owns ``run_id``'s span: itself, or for a folded run its nearest traced
        ancestor. None if unknown."""
        with self._lock:
            run = self._runs.get(run_id)
            while run is not None and run.folded and run.parent_run_id is not None:
                run = self._runs.get(run.parent_run_id)
            return run

    def root(self, root_id: Hashable) -> RootState | None:
        """The open tree whose root run is ``root_id``, or None."""
        with self._lock:
            return self._roots.get(root_id)

    def root_of(self, run_id: Hashable) -> RootState | None:
        """The open tree that run ``run_id`` belongs to, or None."""
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else self._roots.get(run.root_id)

    def is_abandoned(self, run_id: Hashable) -> bool:
        """True if ``run_id`` belonged to a tree handed to ``on_abandoned`` (idle or evicted).

        Late callbacks of such a run (and runs it starts later, see :meth:`mark_abandoned`)
        should be ignored rather than opening a new tree. Remembered for a bounded number of
        recent runs.
        """
        return self._buried.get(run_id) is not None

    def mark_abandoned(self, run_id: Hashable) -> None:
        """Remember ``run_id`` as part of an abandoned tree (a child started after the sweep)."""
        self._buried.set(run_id, True)

    def __len__(self) -> int:
        """Number of open trees."""
        return len(self._roots)

    @property
    def open_runs(self) -> int:
        """Number of open runs over all trees."""
        return len(self._runs)

    # -- closing -----------------------------------------------------------------------------

    def close(self, run_id: Hashable) -> RunState | None:
        """Stop tracking run ``run_id`` and return its state (None if unknown).

        Closing a root run does not drop its tree; use :meth:`close_root` for that.
        """
        with self._lock:
            run = self._runs.pop(run_id, None)
            if run is None:
                return None
            root = self._roots.get(run.root_id)
            if root is not None:
                root.runs.pop(run_id, None)
                root.last_activity = self._clock()
            return run

    def close_root(self, root_id: Hashable) -> RootState | None:
        """Drop the whole tree of ``root_id`` and return it.

        Its ``runs`` then holds every run that was still open (root included, unless it was
        closed with :meth:`close` first), so the adapter can finish their spans.
        """
        with self._lock:
            root = self._roots.pop(root_id, None)
            if root is None:
                return None
            return self._forget(root, already_popped=True)

    def sweep(self, now: float | None = None) -> list[RootState]:
        """Hand every tree idle for ``idle_timeout`` seconds to ``on_abandoned``; return them."""
        now = self._clock() if now is None else now
        with self._lock:
            self._last_sweep = now
            idle = self._take_idle(now)
        self._abandon(idle)
        return idle

    def drain(self) -> list[RootState]:
        """Drop and return every open tree (without calling ``on_abandoned``)."""
        with self._lock:
            roots = list(self._roots.values())
            self._roots.clear()
            self._runs.clear()
            return roots

    # -- internals (lock held) ---------------------------------------------------------------

    def _take_idle(self, now: float) -> list[RootState]:
        idle: list[RootState] = []
        while self._roots:
            root = next(iter(self._roots.values()))
            if now - root.last_activity < self.idle_timeout:
                break
            self._roots.popitem(last=False)
            idle.append(self._forget(root, already_popped=True))
        return idle

    def _forget(self, root: RootState, *, already_popped: bool = False) -> RootState:
        if not already_popped:
            self._roots.pop(root.root_id, None)
        for run_id in root.runs:
            self._runs.pop(run_id, None)
        return root

    def _abandon(self, roots: list[RootState]) -> None:
        if not roots:
            return
        self.abandoned += len(roots)
        for root in roots:
            for run_id in root.runs:
                self._buried.set(run_id, True)
        if self._on_abandoned is None:
            return
        for root in roots:
            try:
                self._on_abandoned(root)
            except Exception:  # the callback must never break the caller's run
                pass
