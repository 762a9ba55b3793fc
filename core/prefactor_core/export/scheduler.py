"""Per-instance ordering of operations: which may be sent now, which must wait for which.

Within one agent instance the order is: register → start → span creates (a parent before its
children) → span finishes (each after its create) → instance finish (after every span and
quality operation routed before it). Independent operations of one instance may be in flight
together; instances do not wait for each other, but at most ``num_workers`` instances have
requests in flight at once.

A finish that arrives while its create has not been sent yet is merged into the create
(coalesced). A create that fails makes its finish fail and moves its children to its parent.
A register that fails makes everything else of that instance fail.

This module does no I/O; the exporter feeds it operations and results.
"""

from __future__ import annotations

import json
import os
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefactor_core.operations import Operation, OperationType
from prefactor_core.payloads import EXACT_POLICY, PayloadPolicy

if TYPE_CHECKING:
    from prefactor_core.export.channel import ExportChannel

__all__ = ["Job", "Lane", "Scheduler", "SpanRecord"]

# States of a span create and of an instance's register/start.
WAITING, READY, SENDING, CREATED = "waiting", "ready", "sending", "created"
NONE, PENDING, DONE, FAILED = "none", "pending", "done", "failed"

_MAX_LOST = 10_000
_MAX_DECLARED = 16
_MAX_ID_MAP = 10_000
_FINISH_STATUSES = ("complete", "failed", "cancelled")

Prepare = Callable[[Any, PayloadPolicy | None, "ExportChannel"], dict[str, Any] | None]

# Idempotency keys of operations that came without one: random, shaped like a UUID4 string.
# A process-local generator (reseeded in a forked child) spares a system call per job.
_key_rng = random.Random(os.urandom(32))


def _reseed_keys_after_fork() -> None:
    _key_rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_keys_after_fork)


def _new_key() -> str:
    bits = _key_rng.getrandbits(128)
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(eq=False)
class Job:
    """One API call to make, for one operation (two when a finish was merged in)."""

    op: Operation
    key: str
    lane: Lane
    owner: ExportChannel
    ops: int = 1
    payload: dict[str, Any] | None = None
    result_payload: dict[str, Any] | None = None
    finish_op: Operation | None = None
    span: SpanRecord | None = None
    attempts: int = 0
    started: bool = False

    @property
    def type(self) -> OperationType:
        """The operation's type."""
        return self.op.type

    @property
    def terminal_status(self) -> str | None:
        """For a create: the status it is created with when its finish is already known."""
        if self.finish_op is not None:
            return str(self.finish_op.payload.get("status") or "complete")
        status = self.op.payload.get("status")
        return status if status in _FINISH_STATUSES else None


@dataclass(eq=False)
class SpanRecord:
    """A span of a lane whose create or finish is not yet done."""

    span_id: str
    parent_id: str | None
    create: Job | None
    state: str = WAITING
    finishes: list[Job] = field(default_factory=list)
    children: list[Job] = field(default_factory=list)


class Lane:
    """The ordering state of one agent instance."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.server_id = instance_id
        self.register = NONE
        self.start = NONE
        self.after_register: list[Job] = []
        self.gated: list[Job] = []
        self.spans: dict[str, SpanRecord] = {}
        self.lost: OrderedDict[str, str | None] = OrderedDict()
        self.id_map: OrderedDict[str, str] = OrderedDict()
        self.ready: deque[Job] = deque()
        self.finish_jobs: list[Job] = []
        self.inflight = 0
        self.pending = 0
        self.opened = False
        self.finishing = False
        self.failed = False
        self.scheduled = False

    @property
    def gate_closed(self) -> bool:
        """Whether span and quality operations must wait for register/start."""
        return self.register == PENDING or self.start == PENDING

    @property
    def idle(self) -> bool:
        """Nothing waiting, ready or in flight."""
        return (
            not self.ready
            and not self.inflight
            and not self.pending
            and not self.gate_closed
            and not self.finish_jobs
        )

    @property
    def pollable(self) -> bool:
        """Registered or started here, not finishing: worth asking the server whether it was
        terminated."""
        return (
            self.opened and self.register in (DONE, NONE) and not self.finishing and not self.failed
        )

    def server_span_id(self, span_id: str) -> str:
        """The id the server knows ``span_id`` by."""
        return self.id_map.get(span_id, span_id)

    def map_span(self, local_id: str, server_id: str) -> None:
        """Remember that the server stored ``local_id`` as ``server_id``."""
        self.id_map[local_id] = server_id
        while len(self.id_map) > _MAX_ID_MAP:
            self.id_map.popitem(last=False)


class Scheduler:
    """Routes operations into lanes and hands out jobs whose dependencies are met."""

    def __init__(
        self,
        *,
        num_workers: int,
        prepare: Prepare,
        on_fail: Callable[[Job, str], None],
        on_coalesce: Callable[[ExportChannel], None],
        max_lanes: int = 10_000,
    ) -> None:
        self.num_workers = num_workers
        self.lanes: dict[str, Lane] = {}
        self.waiting: set[Job] = set()
        self._prepare = prepare
        self._on_fail = on_fail
        self._on_coalesce = on_coalesce
        self._max_lanes = max_lanes
        self._ready_lanes: deque[Lane] = deque()
        self._active: set[Lane] = set()
        self._declared: OrderedDict[str, dict[str, Any] | None] = OrderedDict()

    def _prepare_declared(self, value: Any, owner: ExportChannel) -> dict[str, Any] | None:
        """A register's agent version or schema, prepared under `EXACT_POLICY`.

        Every instance of an agent registers the same ones, so the prepared form is kept,
        keyed by the value's JSON text (cheap to make, and it changes whenever the value does).
        """
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            return self._prepare(value, EXACT_POLICY, owner)
        if text in self._declared:
            self._declared.move_to_end(text)
            return self._declared[text]
        prepared = self._prepare(value, EXACT_POLICY, owner)
        self._declared[text] = prepared
        if len(self._declared) > _MAX_DECLARED:
            self._declared.popitem(last=False)
        return prepared

    # -- routing ----------------------------------------------------------------------------

    def route(self, op: Operation, owner: ExportChannel) -> None:
        """Take in one operation of ``owner`` (in the order they were queued)."""
        instance_id = op.instance_id
        if instance_id is None:
            lane = Lane("")
            self._fail(self._job(op, lane, owner), "operation without an instance id")
            return
        lane = self._lane(instance_id)
        if lane.failed:
            self._fail(self._job(op, lane, owner), "its agent instance could not be registered")
            if op.type is OperationType.FINISH_AGENT_INSTANCE:
                self.lanes.pop(instance_id, None)
            return
        kind = op.type
        if kind is OperationType.REGISTER_AGENT_INSTANCE:
            lane.register = PENDING
            lane.opened = True
            job = self._job(op, lane, owner)
            job.payload = {
                name: self._prepare_declared(op.payload.get(name) or {}, owner)
                for name in ("agent_version", "agent_schema_version")
            }
            self._ready(job)
        elif kind is OperationType.START_AGENT_INSTANCE:
            job = self._job(op, lane, owner)
            lane.start = PENDING
            lane.opened = True
            if lane.register == PENDING:
                lane.after_register.append(job)
            else:
                self._ready(job)
        elif kind is OperationType.CREATE_SPAN:
            self._route_create(op, lane, owner)
        elif kind is OperationType.FINISH_SPAN:
            self._route_finish(op, lane, owner)
        elif kind is OperationType.RECORD_QUALITY:
            job = self._job(op, lane, owner)
            job.payload = self._prepare(op.payload.get("payload"), _policy(op), owner)
            lane.pending += 1
            self._gate(job)
        elif kind is OperationType.FINISH_AGENT_INSTANCE:
            job = self._job(op, lane, owner)
            lane.finishing = True
            lane.finish_jobs.append(job)
            self._maybe_finish(lane)

    def _route_create(self, op: Operation, lane: Lane, owner: ExportChannel) -> None:
        span_id = str(op.payload["span_id"])
        policy = _policy(op)
        job = self._job(op, lane, owner)
        job.payload = self._prepare(op.payload.get("payload"), policy, owner) or {}
        if op.payload.get("status") in _FINISH_STATUSES:
            job.result_payload = self._prepare(op.payload.get("result_payload"), policy, owner)
        parent = op.payload.get("parent_span_id")
        record = SpanRecord(span_id, parent if isinstance(parent, str) else None, job)
        job.span = record
        lane.spans[span_id] = record
        lane.pending += 1
        self._gate(job)

    def _route_finish(self, op: Operation, lane: Lane, owner: ExportChannel) -> None:
        span_id = str(op.payload["span_id"])
        record = lane.spans.get(span_id)
        result = self._prepare(op.payload.get("result_payload"), _policy(op), owner)
        create = record.create if record is not None else None
        if (
            create is not None
            and not create.started
            and create.terminal_status is None
            and create.owner is owner
        ):
            create.finish_op = op
            create.result_payload = result
            create.ops += 1
            self._on_coalesce(owner)
            return
        job = self._job(op, lane, owner)
        job.result_payload = result
        if record is None and span_id in lane.lost:
            self._fail(job, "its span could not be created")
            return
        lane.pending += 1
        job.span = record
        if record is not None and record.state != CREATED:
            record.finishes.append(job)
        else:
            self._ready(job)

    def _job(self, op: Operation, lane: Lane, owner: ExportChannel) -> Job:
        job = Job(op, op.idempotency_key or _new_key(), lane, owner)
        self.waiting.add(job)
        return job

    def _lane(self, instance_id: str) -> Lane:
        lane = self.lanes.get(instance_id)
        if lane is None:
            if len(self.lanes) >= self._max_lanes:
                self._evict_idle()
            lane = Lane(instance_id)
            self.lanes[instance_id] = lane
        return lane

    def _evict_idle(self) -> None:
        target = self._max_lanes * 9 // 10
        for instance_id in [key for key, lane in self.lanes.items() if lane.idle]:
            if len(self.lanes) <= target:
                break
            del self.lanes[instance_id]

    def _gate(self, job: Job) -> None:
        lane = job.lane
        if lane.gate_closed:
            lane.gated.append(job)
        elif job.type is OperationType.CREATE_SPAN:
            self._place_create(job)
        else:
            self._ready(job)

    def _place_create(self, job: Job) -> None:
        lane = job.lane
        record = job.span
        assert record is not None
        parent = record.parent_id
        hops = 0
        while parent is not None and parent in lane.lost and hops < 1000:
            parent = lane.lost[parent]
            hops += 1
        record.parent_id = parent
        parent_record = lane.spans.get(parent) if parent is not None else None
        if parent_record is not None and parent_record.state != CREATED:
            record.state = WAITING
            parent_record.children.append(job)
        else:
            self._ready(job)

    def _ready(self, job: Job) -> None:
        lane = job.lane
        if job.span is not None and job is job.span.create:
            job.span.state = READY
        lane.ready.append(job)
        if not lane.scheduled:
            lane.scheduled = True
            self._ready_lanes.append(lane)

    def _release_gate(self, lane: Lane) -> None:
        if lane.gate_closed:
            return
        gated, lane.gated = lane.gated, []
        for job in gated:
            self._gate(job)
        self._maybe_finish(lane)

    def _maybe_finish(self, lane: Lane) -> None:
        if lane.pending or lane.gate_closed or not lane.finish_jobs:
            return
        jobs, lane.finish_jobs = lane.finish_jobs, []
        for job in jobs:
            self._ready(job)

    def _fail(self, job: Job, reason: str) -> None:
        self.waiting.discard(job)
        self._on_fail(job, reason)

    # -- dispatching ------------------------------------------------------------------------

    def take(self) -> Job | None:
        """The next job that may be sent now, or None."""
        if len(self._active) >= self.num_workers:
            # Only instances already in flight may go on: look at those, not at every lane
            # waiting behind them (there can be thousands while the API is slow).
            for lane in self._active:
                if lane.ready:
                    return self._hand_out(lane)
            return None
        for _ in range(len(self._ready_lanes)):
            lane = self._ready_lanes.popleft()
            if not lane.ready:
                lane.scheduled = False
                continue
            if len(lane.ready) > 1:
                self._ready_lanes.append(lane)
            else:
                lane.scheduled = False
            return self._hand_out(lane)
        return None

    def _hand_out(self, lane: Lane) -> Job:
        # A lane taken from while it stays in ``_ready_lanes`` keeps ``scheduled`` set; once
        # empty it is dropped from there when next looked at.
        job = lane.ready.popleft()
        job.started = True
        self.waiting.discard(job)
        lane.inflight += 1
        self._active.add(lane)
        if job.span is not None and job is job.span.create:
            job.span.state = SENDING
        return job

    def done(self, job: Job, ok: bool) -> None:
        """Record the result of a job handed out by `take`."""
        lane = job.lane
        lane.inflight -= 1
        if not lane.inflight:
            self._active.discard(lane)
        kind = job.type
        if kind is OperationType.REGISTER_AGENT_INSTANCE:
            if ok:
                lane.register = DONE
                after, lane.after_register = lane.after_register, []
                for waiting in after:
                    self._ready(waiting)
                self._release_gate(lane)
            else:
                lane.register = FAILED
                self._fail_lane(lane)
        elif kind is OperationType.START_AGENT_INSTANCE:
            # Spans are still sent after a failed start: the instance exists.
            lane.start = DONE if ok else FAILED
            self._release_gate(lane)
        elif kind is OperationType.CREATE_SPAN:
            lane.pending -= 1
            self._create_done(job, ok)
        elif kind is OperationType.FINISH_SPAN:
            lane.pending -= 1
            record = job.span
            if (
                record is not None
                and not record.finishes
                and record.create is None
                and lane.spans.get(record.span_id) is record
            ):
                del lane.spans[record.span_id]
        elif kind is OperationType.RECORD_QUALITY:
            lane.pending -= 1
        elif kind is OperationType.FINISH_AGENT_INSTANCE:
            if not lane.finish_jobs and self.lanes.get(lane.instance_id) is lane:
                del self.lanes[lane.instance_id]
            return
        self._maybe_finish(lane)

    def _create_done(self, job: Job, ok: bool) -> None:
        lane = job.lane
        record = job.span
        assert record is not None
        children, record.children = record.children, []
        record.create = None
        if ok:
            record.state = CREATED
            finishes, record.finishes = record.finishes, []
            for finish in finishes:
                self._ready(finish)
            if not finishes:
                lane.spans.pop(record.span_id, None)
        else:
            lane.spans.pop(record.span_id, None)
            lane.lost[record.span_id] = record.parent_id
            while len(lane.lost) > _MAX_LOST:
                lane.lost.popitem(last=False)
            finishes, record.finishes = record.finishes, []
            for finish in finishes:
                lane.pending -= 1
                self._fail(finish, "its span could not be created")
        for child in children:
            self._place_create(child)

    def _fail_lane(self, lane: Lane) -> None:
        lane.failed = True
        for job in [job for job in self.waiting if job.lane is lane]:
            self._fail(job, "its agent instance could not be registered")
        lane.after_register.clear()
        lane.gated.clear()
        lane.spans.clear()
        lane.ready.clear()
        lane.finish_jobs.clear()
        lane.pending = 0

    def abandon(self) -> list[Job]:
        """Forget everything not yet handed out and return those jobs."""
        jobs = list(self.waiting)
        self.waiting.clear()
        self.lanes.clear()
        self._ready_lanes.clear()
        return jobs

    def pollable_lanes(self) -> list[Lane]:
        """Lanes of open instances."""
        return [lane for lane in self.lanes.values() if lane.pollable]


def _policy(op: Operation) -> PayloadPolicy | None:
    policy = op.metadata.get("policy")
    return policy if isinstance(policy, PayloadPolicy) else None
