"""Per-run ordering: which prepared operations may go to the server now, and together.

Each agent instance (a *run*) keeps its operations in the order they were queued, which is
already causal: register → start → span creates (a parent before its children) → span
finishes → instance finish. Two ways to send them use that order:

- **batches** (`Ordering.batch`): the bulk endpoint executes items in order, so one request may
  carry a run's operations as they stand in its queue, and many runs at once. A run is in at
  most one request at a time, so its order holds across requests.
- **one request per operation** (`Ordering.take`): only causal order is kept. An operation
  is ready once what it depends on is stored (register before start, spans and quality; a
  parent's create before its children's; a create before its finish; every other operation
  of the run before the instance finish); siblings go out side by side.

A finish queued while its create still waits is merged into the create (*coalesced*). When an
operation fails for good, what depends on it follows the rules the API implies: a run whose
register failed loses everything; a span whose create failed loses its finish, and its
children hang from its parent instead.

This module does no I/O and keeps no time; the pipe feeds it operations and results.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prefactor_core.operations import Operation, OperationType
from prefactor_core.utils import datetime_from_ns
from prefactor_core.validation import FINISH_STATUSES

if TYPE_CHECKING:
    from prefactor_core.export.pipe import ClientExport

__all__ = ["Item", "Ordering", "Run"]

QUEUED, SENDING, DONE, FAILED = 0, 1, 2, 3

# Short names for the operation types: they are compared on every operation.
REGISTER = OperationType.REGISTER_AGENT_INSTANCE
START = OperationType.START_AGENT_INSTANCE
FINISH_INSTANCE = OperationType.FINISH_AGENT_INSTANCE
CREATE = OperationType.CREATE_SPAN
FINISH_SPAN = OperationType.FINISH_SPAN
_TERMINAL = FINISH_STATUSES
_RAW = ("payload", "result_payload", "agent_version", "agent_schema_version")
_MAX_LOST = 10_000
_MAX_ID_MAP = 10_000


def wire_time(value: Any) -> Any:
    """A time as the wire takes it: an aware datetime. The tracer keeps times as integer
    nanoseconds since the epoch (cheap on the agent's thread); they become datetimes here, on
    the export thread. Anything else is passed on as it is."""
    if type(value) is int:
        return datetime_from_ns(value)
    return value


class Item:
    """One operation ready to send (two when a span's finish was merged into its create).

    ``data`` is the operation's arguments without its raw payloads (those are prepared into
    the JSON bytes ``payload`` / ``result``; for a register: the agent version and the agent
    schema version), so nothing of the agent's objects is kept once an item exists. ``size``
    is what the item weighs in the byte budget.
    """

    __slots__ = (
        "attempts",
        "data",
        "dependents",
        "finished_at",
        "first_try",
        "key",
        "kind",
        "ops",
        "owner",
        "parent_id",
        "payload",
        "result",
        "retry_at",
        "run",
        "size",
        "span_id",
        "state",
        "status",
        "timestamp",
        "waiting",
    )

    def __init__(
        self,
        op: Operation,
        key: str,
        run: Run,
        owner: ClientExport,
        payload: bytes | None = None,
        result: bytes | None = None,
    ) -> None:
        self.kind = op.type
        self.timestamp = wire_time(op.timestamp)
        self.data = {name: value for name, value in op.payload.items() if name not in _RAW}
        self.key = key
        self.run = run
        self.owner = owner
        self.payload = payload
        self.result = result
        self.size = 256 + (len(payload) if payload else 0) + (len(result) if result else 0)
        self.ops = 1
        self.state = QUEUED
        self.waiting = 0
        self.dependents: list[Item] = []
        status = op.payload.get("status") if self.kind is CREATE else None
        # For a span create: the terminal status it is created with, once its end is known.
        self.status: str | None = status if status in _TERMINAL else None
        self.finished_at = (
            wire_time(op.payload.get("finished_at")) or self.timestamp if self.status else None
        )
        self.span_id: str | None = None
        self.parent_id: str | None = None
        self.attempts = 0
        self.first_try = 0.0
        self.retry_at = 0.0

    def __lt__(self, other: Item) -> bool:  # for the retry heap: ties broken arbitrarily
        return id(self) < id(other)

    def after(self, other: Item | None) -> None:
        """Make this item wait for ``other`` (when it is not settled yet)."""
        if other is not None and other.state < DONE:
            self.waiting += 1
            other.dependents.append(self)


class Run:
    """One agent instance's operations on their way to the server."""

    __slots__ = (
        "busy",
        "creates",
        "failed",
        "finish",
        "id_map",
        "instance_id",
        "lost",
        "open",
        "queue",
        "register",
        "registered",
        "server_id",
    )

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.server_id = instance_id
        self.queue: deque[Item] = deque()
        self.register: Item | None = None
        self.registered = False
        self.creates: dict[str, Item] = {}
        self.open = 0
        self.finish: Item | None = None
        self.failed = False
        self.busy = False
        self.lost: OrderedDict[str, str | None] = OrderedDict()
        self.id_map: dict[str, str] = {}

    @property
    def finishing(self) -> bool:
        """Whether its instance finish was queued."""
        return self.finish is not None

    def server_span_id(self, span_id: str | None) -> str | None:
        """The id the server knows ``span_id`` by."""
        return None if span_id is None else self.id_map.get(span_id, span_id)

    def map_span(self, local_id: str, server_id: str) -> None:
        """Remember that the server stored span ``local_id`` as ``server_id``."""
        if len(self.id_map) < _MAX_ID_MAP:
            self.id_map[local_id] = server_id

    def _live_parent(self, parent_id: str | None) -> str | None:
        hops = 0
        while parent_id is not None and parent_id in self.lost and hops < 1000:
            parent_id = self.lost[parent_id]
            hops += 1
        return parent_id


class Ordering:
    """The runs of one destination and what of them may be sent now."""

    def __init__(self, *, max_runs: int = 100_000) -> None:
        self.runs: dict[str, Run] = {}
        self.single = False
        self._max_runs = max_runs
        self._pending: OrderedDict[Run, None] = OrderedDict()  # runs with queued items
        self._ready: deque[Item] = deque()  # one request per operation: may go now
        self._later: list[tuple[float, Item]] = []  # ... and those waiting for a retry

    # -- taking operations in ---------------------------------------------------------------

    def run_of(self, instance_id: str) -> Run:
        """The run of ``instance_id`` (a new one when unknown)."""
        run = self.runs.get(instance_id)
        if run is None:
            if len(self.runs) >= self._max_runs:
                self._forget_idle()
            run = Run(instance_id)
            self.runs[instance_id] = run
        return run

    def coalesce(self, run: Run, op: Operation, result: bytes | None) -> Item | None:
        """Merge a span finish into its create when that still waits; the create, or None."""
        create = run.creates.get(str(op.payload.get("span_id")))
        if create is None or create.state != QUEUED or create.status is not None:
            return None
        create.status = str(op.payload.get("status") or "complete")
        create.finished_at = wire_time(op.timestamp)
        create.result = result
        create.ops += 1
        create.size += len(result) if result else 0
        return create

    def add(self, item: Item) -> list[Item]:
        """Queue ``item`` behind what its run already has; what failed at once because of
        an earlier failure of its run (``item`` itself, usually)."""
        run = item.run
        kind = item.kind
        if run.failed:
            item.state = FAILED
            return [item]
        data = item.data
        if kind is REGISTER:
            run.register = item
        elif kind is CREATE:
            item.span_id = str(data["span_id"])
            parent = data.get("parent_span_id")
            item.parent_id = run._live_parent(parent if isinstance(parent, str) else None)
            item.after(run.register)
            item.after(run.creates.get(item.parent_id or ""))
            run.creates[item.span_id] = item
        elif kind is FINISH_SPAN:
            item.span_id = str(data["span_id"])
            if item.span_id in run.lost:
                item.state = FAILED
                return [item]
            item.after(run.creates.get(item.span_id))
        elif kind is FINISH_INSTANCE:
            run.finish = item
        else:  # start, record_quality
            item.after(run.register)
        if kind is not FINISH_INSTANCE:
            run.open += 1
        if self.single:
            if kind is not FINISH_INSTANCE:
                if not item.waiting:
                    self._ready.append(item)
            elif not run.open:
                self._ready.append(item)
        else:
            run.queue.append(item)
            if run not in self._pending:
                self._pending[run] = None
        return []

    # -- handing out ------------------------------------------------------------------------

    def batch(self, max_items: int, max_bytes: int, header: str | None = None) -> list[Item]:
        """Up to ``max_items`` / ``max_bytes`` (at least one item) of queued operations, run
        after run in the order they first queued, each run's in its own order, all of one SDK
        header. Their runs are busy until `release`."""
        items: list[Item] = []
        size = 0
        for run in list(self._pending):
            if run.busy:
                continue
            queue = run.queue
            taken = False
            while queue and len(items) < max_items:
                item = queue[0]
                owner_header = item.owner.sdk_header
                if header is None:
                    header = owner_header
                elif owner_header != header:
                    break
                if items and size + item.size > max_bytes:
                    break
                queue.popleft()
                item.state = SENDING
                items.append(item)
                size += item.size
                taken = True
            if taken:
                run.busy = True
            if not queue:
                del self._pending[run]
            if len(items) >= max_items or size >= max_bytes:
                break
        return items

    def release(self, items: list[Item]) -> None:
        """A batch's request is over: its runs may go on."""
        for item in items:
            item.run.busy = False

    def take(self, now: float) -> Item | None:
        """One request per operation: the next operation that may go now."""
        later = self._later
        while later and later[0][0] <= now:
            self._ready.append(heapq.heappop(later)[1])
        while self._ready:
            item = self._ready.popleft()
            if item.state == QUEUED:
                item.state = SENDING
                return item
        return None

    def retry(self, items: list[Item], at: float) -> None:
        """Send ``items`` (handed out, not settled) again, no sooner than ``at``."""
        if self.single:
            for item in items:
                item.state = QUEUED
                item.retry_at = at
                if item.waiting or (item.kind is FINISH_INSTANCE and item.run.open):
                    continue  # made ready again when what it waits for settles
                heapq.heappush(self._later, (at, item))
            return
        by_run: dict[Run, list[Item]] = {}
        for item in items:
            item.state = QUEUED
            by_run.setdefault(item.run, []).append(item)
        for run, mine in by_run.items():
            run.queue.extendleft(reversed(mine))
            self._pending[run] = None
            self._pending.move_to_end(run, last=False)

    @property
    def next_retry(self) -> float | None:
        """When the earliest retry of one request per operation is due."""
        return self._later[0][0] if self._later else None

    @property
    def has_queued(self) -> bool:
        """Whether anything waits to be handed out (now or after a retry wait)."""
        return bool(self._pending or self._ready or self._later)

    def to_single(self) -> None:
        """Switch to one request per operation (the server has no bulk endpoint)."""
        self.single = True
        for run in list(self._pending):
            for item in run.queue:
                if item.kind is FINISH_INSTANCE:
                    if not run.open:
                        self._ready.append(item)
                elif not item.waiting:
                    self._ready.append(item)
            run.queue.clear()
        self._pending.clear()

    # -- results ----------------------------------------------------------------------------

    def done(self, item: Item) -> None:
        """``item`` was stored: what waited for it may go."""
        item.state = DONE
        run = item.run
        kind = item.kind
        if kind is FINISH_INSTANCE:
            self._forget(run)
            return
        if kind is REGISTER:
            run.registered = True
            run.register = None
        elif kind is CREATE and item.span_id is not None:
            run.creates.pop(item.span_id, None)
        run.open -= 1
        dependents, item.dependents = item.dependents, []
        for waiting in dependents:
            waiting.waiting -= 1
            self._maybe_ready(waiting)
        self._close(run)

    def fail(self, item: Item) -> list[Item]:
        """``item`` failed for good; returns the further items that fail because of it."""
        if item.state == FAILED:
            return []
        item.state = FAILED
        run = item.run
        if item.kind is FINISH_INSTANCE:
            self._forget(run)
            return []
        run.open = max(0, run.open - 1)
        failed: list[Item] = []
        if item.kind is REGISTER:
            run.failed = True
            run.register = None
            failed = self._fail_run(run, item)
        elif item.kind is CREATE and item.span_id is not None:
            run.creates.pop(item.span_id, None)
            run.lost[item.span_id] = item.parent_id
            while len(run.lost) > _MAX_LOST:
                run.lost.popitem(last=False)
        dependents, item.dependents = item.dependents, []
        for waiting in dependents:
            waiting.waiting -= 1
            if waiting.state >= DONE:
                continue
            if waiting.kind is FINISH_SPAN and item.kind is CREATE:
                waiting.state = FAILED
                run.open = max(0, run.open - 1)
                failed.append(waiting)
            elif waiting.kind is CREATE and item.kind is CREATE:
                # Hang the child from the nearest ancestor that exists (or will).
                waiting.parent_id = run._live_parent(item.parent_id)
                waiting.after(run.creates.get(waiting.parent_id or ""))
                self._maybe_ready(waiting)
            else:
                self._maybe_ready(waiting)
        if failed:
            self._drop_queued(run, failed)
        self._close(run)
        return failed

    def _forget(self, run: Run) -> None:
        if self.runs.get(run.instance_id) is run:
            del self.runs[run.instance_id]

    def _maybe_ready(self, item: Item) -> None:
        if self.single and not item.waiting and item.state == QUEUED:
            self._ready.append(item)

    def _close(self, run: Run) -> None:
        finish = run.finish
        if self.single and finish is not None and not run.open and finish.state == QUEUED:
            self._ready.append(finish)

    def _fail_run(self, run: Run, register: Item) -> list[Item]:
        """Everything of ``run`` not yet handed out fails with its ``register``."""
        failed = [item for item in run.queue if item.state == QUEUED]
        run.queue.clear()
        self._pending.pop(run, None)
        failed.extend(self._waiting_of(run, register))
        for item in failed:
            item.state = FAILED
        run.creates.clear()
        run.open = 0
        return failed

    def _waiting_of(self, run: Run, register: Item | None) -> Iterator[Item]:
        seen: set[int] = set()
        # What waits on the register alone (the start, quality records) is reached through it.
        stack = [*(register.dependents if register else ()), *run.creates.values()]
        if run.finish is not None and run.finish.state == QUEUED:
            stack.append(run.finish)
        for item in self._ready:
            if item.run is run and item.state == QUEUED:
                stack.append(item)
        for _, item in self._later:
            if item.run is run and item.state == QUEUED:
                stack.append(item)
        while stack:
            item = stack.pop()
            if id(item) in seen or item.state != QUEUED:
                continue
            seen.add(id(item))
            yield item
            stack.extend(item.dependents)

    def _drop_queued(self, run: Run, failed: list[Item]) -> None:
        if not run.queue:
            return
        gone = {id(item) for item in failed}
        kept = [item for item in run.queue if id(item) not in gone]
        run.queue.clear()
        run.queue.extend(kept)
        if not kept:
            self._pending.pop(run, None)

    def abandon(self) -> list[Item]:
        """Forget everything not handed out yet; returns it."""
        items: list[Item] = []
        for run in self.runs.values():
            items.extend(item for item in run.queue if item.state == QUEUED)
            items.extend(self._waiting_of(run, run.register))
        unique = {id(item): item for item in items}
        for item in self._ready:
            if item.state == QUEUED:
                unique[id(item)] = item
        for _, item in self._later:
            if item.state == QUEUED:
                unique[id(item)] = item
        for item in unique.values():
            item.state = FAILED
        self.runs.clear()
        self._pending.clear()
        self._ready.clear()
        self._later.clear()
        return list(unique.values())

    def open_runs(self) -> list[Run]:
        """Runs registered here and not finishing: worth asking whether they were terminated."""
        return [
            run
            for run in self.runs.values()
            if run.registered and not run.failed and run.finish is None
        ]

    def _forget_idle(self) -> None:
        target = self._max_runs * 9 // 10
        for instance_id in [key for key, run in self.runs.items() if _idle(run)]:
            if len(self.runs) <= target:
                break
            del self.runs[instance_id]


def _idle(run: Run) -> bool:
    if run.failed:
        return not run.busy
    return not run.queue and not run.open and not run.busy and run.finish is None
