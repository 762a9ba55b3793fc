"""`Tracer`: the synchronous, thread-safe, memory-only entry point to tracing.

Every call assigns ids on the client, records what it must remember (open spans and instances,
nothing once they are finished) and puts an `Operation` on the client's bounded buffer without
blocking. The export thread does the rest. Nothing here touches the network or waits, except
`flush` and `close`, which exist to wait.

The async API (`PrefactorCoreClient`, `AgentInstanceHandle`, `SpanContext`) is a thin layer over
one `Tracer` per client, so all data flows one way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.context_stack import _stack
from prefactor_core.exceptions import PrefactorTerminatedError, SpanNotFoundError
from prefactor_core.export.pipe import ClientExport
from prefactor_core.export.stats import ExportStats
from prefactor_core.export.thread import before_shutdown
from prefactor_core.ids import is_pfid, issued_here, new_pfid, random_partition_text, related_pfid
from prefactor_core.monitoring.registry import termination_registry
from prefactor_core.monitoring.termination_monitor import TerminationCallback, TerminationMonitor
from prefactor_core.operations import Operation, OperationType
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_core.utils import datetime_from_ns, ensure_utc, validate_idempotency_key
from prefactor_core.validation import (
    FINISH_STATUSES,
    PURPOSES,
    check_id,
    check_policy,
    check_status,
)
from prefactor_http.client import shared_tls_context

__all__ = ["FINISH_STATUSES", "Tracer", "current_instance_id"]

logger = logging.getLogger("prefactor_core")

# Times are kept as integer nanoseconds since the epoch (`time.time_ns`) until the export
# thread turns them into datetimes for the wire (`prefactor_core.export.ordering.wire_time`).
_time_ns = time.time_ns
_EPOCH = datetime_from_ns(0)
_MICROSECOND = timedelta(microseconds=1)
# An `Operation` is a tuple: made by the tuple constructor it costs next to nothing.
_operation = tuple.__new__

_REGISTER = OperationType.REGISTER_AGENT_INSTANCE
_START = OperationType.START_AGENT_INSTANCE
_FINISH_INSTANCE = OperationType.FINISH_AGENT_INSTANCE
_CREATE = OperationType.CREATE_SPAN
_FINISH_SPAN = OperationType.FINISH_SPAN


def _ns(value: datetime | None) -> int:
    """``value`` (naive: UTC) as nanoseconds since the epoch; now when None."""
    if value is None:
        return _time_ns()
    utc = ensure_utc(value)
    assert utc is not None
    return (utc - _EPOCH) // _MICROSECOND * 1000


def _is_id(value: object) -> bool:
    return type(value) is str and 0 < len(value) <= 64


class _Deferred:
    """A span whose create is held back until its payload is final."""

    __slots__ = ("payload", "started_at")

    def __init__(self, payload: dict[str, Any], started_at: int) -> None:
        self.payload = payload
        self.started_at = started_at


class _OpenInstance:
    __slots__ = ("dropped", "partition", "spans")

    def __init__(self, partition: str) -> None:
        self.partition = partition  # the 6 characters of its spans' partition
        self.spans: dict[str, None] = {}
        self.dropped = False  # refused whole: the buffer was near its bounds


class _OpenSpan:
    __slots__ = (
        "deferred",
        "dropped",
        "instance",
        "instance_id",
        "metadata",
        "parent_id",
        "policy",
        "schema_name",
    )

    def __init__(
        self,
        instance_id: str,
        instance: _OpenInstance | None,
        parent_id: str | None,
        schema_name: str,
        policy: PayloadPolicy | None,
    ) -> None:
        self.instance_id = instance_id
        self.instance = instance
        self.parent_id = parent_id
        self.schema_name = schema_name
        self.policy = policy
        # The operation metadata of the span's create and finish (the exporter only reads it).
        self.metadata: dict[str, Any] = {"policy": policy} if policy is not None else {}
        self.dropped = False
        self.deferred: _Deferred | None = None


def _partition_of(instance_id: str) -> str:
    """The partition characters of an instance's spans: its own when it is a PFID."""
    return instance_id[10:16] if is_pfid(instance_id) else random_partition_text()


class Tracer:
    """Thread-safe, synchronous tracing for one client (see the module docstring).

    Payload arguments may be any objects; they are serialised, capped and redacted later in the
    export thread, so callers should pass shallow copies of containers they keep mutating.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        *,
        sdk_header: str,
        buffer: InMemoryQueue[Any] | None = None,
    ) -> None:
        self._config = config
        self._export = ClientExport(config, sdk_header, buffer)
        # Queue an operation (non-blocking; whether the buffer took it). Called under the lock.
        self._put: Callable[[Operation], bool] = self._export.put
        self._lock = threading.Lock()
        self._spans: dict[str, _OpenSpan] = {}
        self._instances: dict[str, _OpenInstance] = {}
        # In a forked child: the parent's open instances, which only the parent may finish.
        self._forked_from: frozenset[str] = frozenset()
        with _registry_lock:
            _live_tracers.add(self)
        _warm_up()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def config(self) -> PrefactorCoreConfig:
        """The client configuration this tracer exports with."""
        return self._config

    @property
    def sdk_header(self) -> str:
        """The ``X-Prefactor-SDK`` value sent with every request."""
        return self._export.sdk_header

    @sdk_header.setter
    def sdk_header(self, value: str) -> None:
        self._export.sdk_header = value

    def connect(self) -> None:
        """Attach to the process's exporter now (otherwise done on first use)."""
        self._export.connect()

    def submit(self, operation: Operation) -> bool:
        """Queue a prepared operation as is; whether the buffer accepted it."""
        if not isinstance(operation, Operation):
            raise TypeError(f"expected an Operation, got {type(operation).__name__}")
        _check_key(operation.idempotency_key)
        with self._lock:
            return self._put(operation)

    # -- instances --------------------------------------------------------------------------

    def start_instance(
        self,
        *,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        instance_id: str | None = None,
        external_identifier: str | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Queue the register and start of a new agent instance; returns its id at once.

        The id is a PFID made here unless ``instance_id`` is given. ``agent_schema_version``
        defaults to the configured `SchemaRegistry`'s (content-hashed) version; ``agent_id`` and
        ``environment_id`` default to the configuration's.
        """
        return self._register(
            agent_version,
            agent_schema_version,
            agent_id,
            environment_id,
            purpose,
            instance_id,
            external_identifier,
            None,
            start=True,
            started_at=started_at,
        )

    def register_instance(
        self,
        *,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        instance_id: str | None = None,
        external_identifier: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue only the register of a new instance (start it with `mark_started`)."""
        return self._register(
            agent_version,
            agent_schema_version,
            agent_id,
            environment_id,
            purpose,
            instance_id,
            external_identifier,
            idempotency_key,
        )

    def _register(
        self,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None,
        agent_id: str | None,
        environment_id: str | None,
        purpose: str | None,
        instance_id: str | None,
        external_identifier: str | None,
        idempotency_key: str | None,
        *,
        start: bool = False,
        started_at: datetime | None = None,
    ) -> str:
        """Queue the register of a new instance, and with ``start`` its start (now, or at
        ``started_at``)."""
        if self._export.pipe is None:
            # First use: attach to the exporter before the run's first time is taken, so the
            # run starts when it starts, not with this set-up.
            self._export.connect()
        registered = _time_ns()
        started = _ns(started_at) if start else None
        if not isinstance(agent_version, Mapping):
            raise TypeError("agent_version must be a mapping (name, external_identifier, ...)")
        if agent_schema_version is not None and not isinstance(agent_schema_version, Mapping):
            raise TypeError("agent_schema_version must be a mapping")
        if purpose is not None and purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {', '.join(PURPOSES)}; got {purpose!r}")
        if instance_id is not None and not _is_id(instance_id):
            check_id("instance_id", instance_id)
        if agent_id is not None and not _is_id(agent_id):
            check_id("agent_id", agent_id)
        if environment_id is not None and not _is_id(environment_id):
            check_id("environment_id", environment_id)
        if external_identifier is not None and not isinstance(external_identifier, str):
            raise TypeError("external_identifier must be a string")
        if idempotency_key is not None:
            validate_idempotency_key(idempotency_key)
        config = self._config
        schema = dict(agent_schema_version or self.default_schema_version())
        if instance_id:
            new_id = instance_id
            partition = _partition_of(instance_id)
        else:
            new_id = new_pfid()
            partition = new_id[10:16]
        payload = {
            "instance_id": new_id,
            "agent_version": dict(agent_version),
            "agent_schema_version": schema,
            "agent_id": agent_id if agent_id is not None else config.agent_id,
            "environment_id": environment_id
            if environment_id is not None
            else config.environment_id,
            "purpose": purpose,
            "external_identifier": external_identifier,
        }
        operation = _operation(Operation, (_REGISTER, payload, registered, idempotency_key, {}))
        instance = _OpenInstance(partition)
        with self._lock:
            self._instances[new_id] = instance
            instance.dropped = dropped = not self._put(operation)
            if started is not None:
                if dropped:
                    self._export.note_dropped()
                else:
                    fields: tuple[Any, ...] = (_START, {"instance_id": new_id}, started, None, {})
                    self._put(_operation(Operation, fields))
        return new_id

    def _refused(self, instance_id: str) -> bool:
        """Under the lock: whether ``instance_id``'s run was refused (its operation is then
        counted as dropped and not queued)."""
        instance = self._instances.get(instance_id)
        if instance is not None and instance.dropped:
            self._export.note_dropped()
            return True
        return False

    def default_schema_version(self) -> dict[str, Any]:
        """The configured registry's schema version (content-hashed id), or an empty one."""
        registry = self._config.schema_registry
        if not isinstance(registry, SchemaRegistry):
            registry = SchemaRegistry()
        return registry.to_agent_schema_version()

    def mark_started(
        self,
        instance_id: str,
        *,
        started_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Queue the start of an instance."""
        check_id("instance_id", instance_id)
        _check_key(idempotency_key)
        data = {"instance_id": instance_id}
        operation = Operation(_START, data, _ns(started_at), idempotency_key)
        with self._lock:
            if not self._refused(instance_id):
                self._put(operation)

    def finish_instance(
        self,
        instance_id: str,
        *,
        status: str = "complete",
        finished_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Queue the finish of an instance.

        Spans of it that are still open are finished first as ``cancelled``, so the instance
        never ends before its spans.
        """
        if not _is_id(instance_id):
            check_id("instance_id", instance_id)
        if status not in FINISH_STATUSES:
            check_status(status)
        if idempotency_key is not None:
            validate_idempotency_key(idempotency_key)
        finished = _ns(finished_at)
        if instance_id in self._forked_from:
            logger.debug("instance %s is the parent process's; not finished here", instance_id)
            return
        with self._lock:
            refused = self._refused(instance_id)
            instance = self._instances.pop(instance_id, None)
            if instance is not None:
                for span_id in reversed(list(instance.spans)):
                    self._finish_locked(span_id, "cancelled", None, finished)
            if not refused:
                data = {"instance_id": instance_id, "status": status}
                self._put(
                    _operation(Operation, (_FINISH_INSTANCE, data, finished, idempotency_key, {}))
                )
        termination_registry.release(instance_id)

    def record_quality(
        self,
        instance_id: str,
        name: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Queue a quality payload for an instance under ``name`` (None removes it)."""
        check_id("instance_id", instance_id)
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty string")
        _check_key(idempotency_key)
        operation = Operation(
            OperationType.RECORD_QUALITY,
            {"instance_id": instance_id, "name": name, "payload": payload},
            _time_ns(),
            idempotency_key,
        )
        with self._lock:
            if not self._refused(instance_id):
                self._put(operation)

    # -- spans ------------------------------------------------------------------------------

    def create_span(
        self,
        instance_id: str,
        schema_name: str,
        *,
        parent_span_id: str | None = None,
        payload: Any = None,
        started_at: datetime | None = None,
        policy: PayloadPolicy | None = None,
    ) -> str:
        """Queue the create of a span; returns its id at once.

        The parent is ``parent_span_id`` when given, otherwise the innermost open span of the
        same instance in the current context (`SpanContextStack`).
        """
        return self._open_span(
            instance_id, schema_name, parent_span_id, payload, started_at, policy, defer=False
        )

    def reserve_span(
        self,
        instance_id: str,
        schema_name: str,
        *,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
        policy: PayloadPolicy | None = None,
    ) -> str:
        """Like `create_span`, but hold the create back so `set_span_payload` can still add to
        the payload. It is queued by `send_span`, by the first child, or with its finish (then
        as one call)."""
        return self._open_span(
            instance_id, schema_name, parent_span_id, payload, started_at, policy, defer=True
        )

    def _open_span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None,
        payload: Any,
        started_at: datetime | None,
        policy: PayloadPolicy | None,
        *,
        defer: bool,
    ) -> str:
        started = _time_ns() if started_at is None else _ns(started_at)
        if not _is_id(instance_id):
            check_id("instance_id", instance_id)
        if type(schema_name) is not str or not schema_name.strip():
            raise ValueError("schema_name must be a non-empty string")
        if policy is not None:
            check_policy(policy)
        spans = self._spans
        if parent_span_id is None or parent_span_id not in spans:
            if parent_span_id is not None:
                check_id("parent_span_id", parent_span_id)
            candidate, foreign = self._pick_parent(instance_id, parent_span_id)
        else:
            candidate, foreign = parent_span_id, False
        with self._lock:
            instance = self._instances.get(instance_id)
            if instance is not None:
                span_id = related_pfid(instance.partition)
            else:
                span_id = related_pfid(_partition_of(instance_id))
            if foreign or candidate is None:
                parent = candidate
            else:
                known = spans.get(candidate)
                if (
                    known is not None
                    and known.instance_id == instance_id
                    and known.deferred is None
                    and not known.dropped
                ):
                    parent = candidate  # the usual case: an open parent, already sent
                else:
                    parent = self._resolve_parent(instance_id, candidate)
            record = _OpenSpan(instance_id, instance, parent, schema_name, policy)
            spans[span_id] = record
            if instance is not None:
                instance.spans[span_id] = None
            if defer:
                record.deferred = _Deferred(dict(payload or {}), started)
            else:
                self._queue_create(span_id, record, payload, started)
        return span_id

    def _queue_create(
        self,
        span_id: str,
        record: _OpenSpan,
        payload: Any,
        started: int,
        finish: tuple[str, Any, int] | None = None,
    ) -> None:
        instance = record.instance
        if instance is not None and instance.dropped:
            record.dropped = True
            self._export.note_dropped()
            return
        data: dict[str, Any] = {
            "span_id": span_id,
            "instance_id": record.instance_id,
            "schema_name": record.schema_name,
            "parent_span_id": record.parent_id,
            "payload": payload,
        }
        if finish is not None:
            data["status"], data["result_payload"], data["finished_at"] = finish
        operation = _operation(Operation, (_CREATE, data, started, None, record.metadata))
        if not self._put(operation):
            record.dropped = True

    def _pick_parent(self, instance_id: str, parent_span_id: str | None) -> tuple[str | None, bool]:
        """The parent candidate, and whether another client (tracer) owns it.

        The explicit parent wins; otherwise the innermost open span of the same instance in
        the current context. A parent owned by another tracer has its create queued first
        (outside this tracer's lock, so two tracers never wait for each other).
        """
        if parent_span_id is not None:
            if parent_span_id in self._spans:
                return parent_span_id, False
            other = _owner_of(parent_span_id, self)
            if other is None:
                return parent_span_id, False  # finished already, or made elsewhere: trust it
            if other.instance_of(parent_span_id) != instance_id:
                logger.debug("parent %s belongs to another instance; ignored", parent_span_id)
                return None, True
            other.send_span(parent_span_id)
            return parent_span_id, True
        for candidate in reversed(_stack.get()):
            record = self._spans.get(candidate)
            if record is not None:
                if record.instance_id == instance_id:
                    return candidate, False
                continue
            other = _owner_of(candidate, self)
            if other is not None and other.instance_of(candidate) == instance_id:
                other.send_span(candidate)
                return candidate, True
        return None, False

    def _resolve_parent(self, instance_id: str, candidate: str | None) -> str | None:
        """Under the lock: the parent to send for an own ``candidate``."""
        if candidate is None:
            return None
        record = self._spans.get(candidate)
        if record is None:
            return candidate
        if record.instance_id != instance_id:
            logger.debug("parent %s belongs to another instance; ignored", candidate)
            return None
        return self._usable_parent(candidate)

    def _usable_parent(self, span_id: str | None) -> str | None:
        """``span_id``, or its nearest ancestor whose create was not dropped; sends a held-back
        create first so the parent exists before its child."""
        while span_id is not None:
            record = self._spans.get(span_id)
            if record is None:
                return span_id
            if record.deferred is not None:
                self._send_deferred(span_id, record)
            if not record.dropped:
                return span_id
            span_id = record.parent_id
        return None

    def _send_deferred(self, span_id: str, record: _OpenSpan) -> None:
        deferred, record.deferred = record.deferred, None
        if deferred is not None:
            self._queue_create(span_id, record, deferred.payload, deferred.started_at)

    def set_span_payload(self, span_id: str, payload: Mapping[str, Any]) -> bool:
        """Merge ``payload`` into a held-back span's payload; False once it was queued."""
        with self._lock:
            record = self._spans.get(span_id)
            if record is None or record.deferred is None:
                return False
            record.deferred.payload.update(payload)
            return True

    def send_span(self, span_id: str) -> None:
        """Queue a held-back span's create now (no-op otherwise)."""
        with self._lock:
            record = self._spans.get(span_id)
            if record is not None:
                self._send_deferred(span_id, record)

    def finish_span(
        self,
        span_id: str,
        *,
        status: str = "complete",
        result_payload: Any = None,
        finished_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Queue the finish of a span.

        `ValueError` for an unknown status and `SpanNotFoundError` for an id this process never
        issued. Finishing a span that is already finished does nothing.
        """
        finished = _time_ns() if finished_at is None else _ns(finished_at)
        if status not in FINISH_STATUSES:
            check_status(status)
        if idempotency_key is not None:
            validate_idempotency_key(idempotency_key)
        with self._lock:
            record = self._spans.get(span_id)
            if record is not None and record.deferred is None and not record.dropped:
                # The usual case, in short: an open span whose create was queued.
                del self._spans[span_id]
                instance = record.instance
                if instance is not None:
                    instance.spans.pop(span_id, None)
                data = {
                    "span_id": span_id,
                    "instance_id": record.instance_id,
                    "status": status,
                    "result_payload": result_payload,
                }
                operation = (_FINISH_SPAN, data, finished, idempotency_key, record.metadata)
                self._put(_operation(Operation, operation))
            elif not self._finish_locked(
                span_id, status, result_payload, finished, idempotency_key
            ):
                if not (isinstance(span_id, str) and issued_here(span_id)):
                    raise SpanNotFoundError(str(span_id))
                logger.debug("span %s was already finished", span_id)

    def _finish_locked(
        self,
        span_id: str,
        status: str,
        result_payload: Any,
        finished: int,
        idempotency_key: str | None = None,
    ) -> bool:
        record = self._spans.pop(span_id, None)
        if record is None:
            return False
        instance = record.instance
        if instance is not None:
            instance.spans.pop(span_id, None)
        deferred = record.deferred
        if deferred is not None:
            # Never sent: one create that already carries the finish.
            record.deferred = None
            self._queue_create(
                span_id,
                record,
                deferred.payload,
                deferred.started_at,
                (status, result_payload, finished),
            )
            if not record.dropped:
                self._export.counters.source_coalesced += 1
        elif record.dropped:
            self._export.counters.dropped += 1
        else:
            data = {
                "span_id": span_id,
                "instance_id": record.instance_id,
                "status": status,
                "result_payload": result_payload,
            }
            self._put(
                _operation(
                    Operation, (_FINISH_SPAN, data, finished, idempotency_key, record.metadata)
                )
            )
        return True

    def instance_of(self, span_id: str) -> str | None:
        """The instance of an open span of any client in this process (None once it finished
        or if unknown)."""
        record = self._spans.get(span_id)
        if record is None:
            other = _owner_of(span_id, self)
            record = None if other is None else other._spans.get(span_id)
        return None if record is None else record.instance_id

    def parent_of(self, span_id: str) -> str | None:
        """The parent id an open span was created with."""
        record = self._spans.get(span_id)
        return None if record is None else record.parent_id

    def schema_of(self, span_id: str) -> str | None:
        """The schema name of an open span."""
        record = self._spans.get(span_id)
        return None if record is None else record.schema_name

    def is_open(self, span_id: str) -> bool:
        """Whether ``span_id`` is an open span of this tracer."""
        return span_id in self._spans

    @property
    def open_span_count(self) -> int:
        """How many spans are open (created, not finished)."""
        return len(self._spans)

    @property
    def open_instance_count(self) -> int:
        """How many instances were started here and not finished."""
        return len(self._instances)

    # -- termination ------------------------------------------------------------------------

    def is_terminated(self, instance_id: str) -> bool:
        """Whether the platform terminated ``instance_id``."""
        return termination_registry.is_terminated(instance_id)

    def termination_reason(self, instance_id: str) -> str | None:
        """The reason given when ``instance_id`` was terminated."""
        return termination_registry.reason(instance_id)

    def termination_monitor(self, instance_id: str) -> TerminationMonitor:
        """The `TerminationMonitor` of ``instance_id``."""
        return termination_registry.monitor(instance_id)

    def on_termination(self, instance_id: str, callback: TerminationCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` when ``instance_id`` is terminated; returns unsubscribe."""
        return termination_registry.monitor(instance_id).subscribe(callback)

    def raise_if_terminated(self, instance_id: str) -> None:
        """Raise `PrefactorTerminatedError` if ``instance_id`` was terminated."""
        if termination_registry.is_terminated(instance_id):
            raise PrefactorTerminatedError(
                termination_registry.reason(instance_id), instance_id=instance_id
            )

    # -- draining and state -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued was sent; False if something failed or timed out.

        Clients sending to the same destination share one ordered pipe, so this also waits
        for theirs. Returns False at once when called from the export thread.
        """
        return self._export.flush(timeout)

    async def aflush(self, timeout: float | None = None) -> bool:
        """`flush` without blocking the event loop."""
        return await self._export.aflush(timeout)

    def stats(self) -> ExportStats:
        """Counters and health of this client's export."""
        return self._export.stats()

    def _sweep(self, timeout: float | None) -> float:
        """Finish what is open (``cancelled``); how long `close` may then wait."""
        with self._lock:
            instance_ids = list(self._instances)
            orphans = [
                sid for sid, rec in self._spans.items() if rec.instance_id not in self._instances
            ]
        for instance_id in instance_ids:
            self.finish_instance(instance_id, status="cancelled")
        now = _time_ns()
        with self._lock:
            for span_id in reversed(orphans):
                self._finish_locked(span_id, "cancelled", None, now)
        return self._config.queue_config.shutdown_timeout if timeout is None else timeout

    def close(self, timeout: float | None = None) -> int:
        """Finish open spans and instances (``cancelled``), wait for delivery up to ``timeout``
        (default ``shutdown_timeout``), then stop exporting. Returns how many operations were
        not delivered (also logged). The tracer may be used again afterwards."""
        return self._export.close(self._sweep(timeout))

    async def aclose(self, timeout: float | None = None) -> int:
        """`close` without blocking the event loop."""
        return await self._export.aclose(self._sweep(timeout))

    def _after_fork_in_child(self) -> None:
        # What was open belongs to the parent, which sends its creates and finishes; the
        # child forgets it, so nothing it does (nor its exit) repeats or cuts the parent's work.
        self._lock = threading.Lock()
        self._forked_from = self._forked_from | frozenset(self._instances)
        self._spans = {}
        self._instances = {}
        self._export.after_fork_in_child()


_live_tracers: weakref.WeakSet[Tracer] = weakref.WeakSet()
_registry_lock = threading.Lock()


def _tracers() -> list[Tracer]:
    with _registry_lock:
        return list(_live_tracers)


def _owner_of(span_id: str, exclude: Tracer) -> Tracer | None:
    """The other tracer (another client in this process) that has ``span_id`` open."""
    for tracer in _tracers():
        if tracer is not exclude and span_id in tracer._spans:
            return tracer
    return None


def _warm_up() -> None:
    """Do now what the first traced run would otherwise do on the agent's thread: build the
    process's TLS context (tens of milliseconds, once per process; on this thread, as the
    exporter wants it, see `shared_tls_context`)."""
    try:
        shared_tls_context()
    except Exception:  # e.g. a bad SSL_CERT_FILE: the I/O threads meet and report it
        pass


def _check_key(idempotency_key: str | None) -> None:
    if idempotency_key is not None:
        validate_idempotency_key(idempotency_key)


def current_instance_id() -> str | None:
    """The agent instance of the innermost open span in the current context, or None.

    Inside a traced tool, node or ``span()`` block this is the run's instance id, whichever
    framework adapter or client opened it.
    """
    for span_id in reversed(_stack.get()):
        for tracer in _tracers():
            record = tracer._spans.get(span_id)
            if record is not None:
                return record.instance_id
    return None


def _cancel_open_runs() -> None:
    """At exit: every run still open is finished ``cancelled`` before the last drain."""
    for tracer in _tracers():
        # A signal handler may run while this thread holds the lock: never wait for ever.
        if not tracer._lock.acquire(timeout=0.5):
            continue
        tracer._lock.release()
        tracer._sweep(None)


before_shutdown(_cancel_open_runs)


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for tracer in list(_live_tracers):
        tracer._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
