"""`Pipe`: everything between the buffer and the sender for one destination; `ClientExport`:
one client's handle on it.

The data path, in the order a span takes it:

1. a producer (any thread) puts a plain `Operation` on the pipe's bounded buffer; near its
   bounds new runs are refused whole, so the runs under way still complete;
2. the export thread drains the buffer at most once per ``linger`` and *prepares* each
   operation at once (serialise, cap, redact into JSON bytes), so what waits holds capped
   bytes only, counted against the byte budget, even while the API is down;
3. `Ordering` keeps each run's operations in order and says what may go now;
4. the pipe builds requests (whole runs per bulk request, or one per operation for a server
   without bulk) and hands them to its I/O threads, which call the `ApiSender`;
5. the answers come back to the export thread, which settles each operation: stored, failed
   for good (logged once per kind), or retried under the one retry policy: a time budget per
   operation, jittered exponential backoff, ``Retry-After``, and the same idempotency key.

Everything but the producer's `put` and the I/O threads' `send` runs on the export thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from prefactor_core.config import PrefactorCoreConfig, QueueConfig
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.export.ordering import (
    CREATE,
    FAILED,
    FINISH_INSTANCE,
    FINISH_SPAN,
    REGISTER,
    SENDING,
    START,
    Item,
    Ordering,
    Run,
)
from prefactor_core.export.sender import ApiSender, HttpSender, Reply, is_certificate_error
from prefactor_core.export.stats import Counters, ExportStats
from prefactor_core.export.wire import (
    BULK_PATH,
    bulk_body,
    instance_path,
    read_json,
    single_request,
    take_details,
)
from prefactor_core.monitoring.registry import termination_registry
from prefactor_core.operations import LIFECYCLE_OPERATIONS, Operation, OperationType
from prefactor_core.payloads import EXACT_POLICY, PayloadPolicy, prepare_json
from prefactor_core.payloads.redact import scrub_token
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_core.validation import FINISH_STATUSES
from prefactor_http.config import HttpClientConfig
from prefactor_http.redirects import redirect_message
from prefactor_http.retry import RetryPolicy

__all__ = ["ClientExport", "Pipe"]

logger = logging.getLogger("prefactor_core.export")

_TERMINAL = FINISH_STATUSES

_ADMIT_SHARE = 0.9  # new runs are refused once the buffer is this full (count or bytes)
_MIN_RESERVE = 64
_DROP_LOG_EVERY = 10.0  # seconds between two warnings about drops
_POLL_AT_ONCE = 8
_SCHEMAS_KEPT = 16
_WITHHELD = b'{"\xe2\x80\xa6":"[withheld: the export byte budget is full]"}'

BufferItem = tuple[Operation, "ClientExport"]


@dataclass(eq=False)
class _Request:
    """A request handed to an I/O thread."""

    kind: str  # "bulk", "single" or "poll"
    method: str
    path: str
    body: bytes | None
    header: str
    items: list[Item]
    run: Run | None = None


class _DropLog:
    """Counts drops by cause and says so in at most one warning per ``_DROP_LOG_EVERY``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._next = 0.0

    def note(self, cause: str, count: int = 1) -> None:
        with self._lock:
            self._counts[cause] = self._counts.get(cause, 0) + count
            now = time.monotonic()
            if now < self._next:
                return
            counts, self._counts = self._counts, {}
            self._next = now + _DROP_LOG_EVERY
        logger.warning(
            "Prefactor export dropped telemetry: %s; see stats() for totals",
            ", ".join(f"{n} {cause}" for cause, n in sorted(counts.items())),
        )


class Pipe:
    """The path to one destination (API URL and token), shared by the clients using it."""

    def __init__(
        self,
        key: Any,
        http_config: HttpClientConfig,
        policy: QueueConfig,
        poll_interval: float | None,
        *,
        wake: Any,
        buffer: InMemoryQueue[BufferItem] | None = None,
        sender: ApiSender | None = None,
    ) -> None:
        self.key = key
        self.http_config = http_config
        self.policy = policy
        self.poll_interval = poll_interval
        maxsize = policy.max_buffered_operations
        reserve = max(_MIN_RESERVE, maxsize // 100)
        if policy.drop_policy == "drop_newest":
            reserve = 0
        if buffer is None:
            buffer = InMemoryQueue(maxsize, reserve=reserve)
        else:
            buffer.reserve = reserve
        self.buffer = buffer
        self.sender: ApiSender = sender if sender is not None else HttpSender(http_config)
        self.owners: set[ClientExport] = set()
        self.ordering = Ordering()
        if policy.bulk_max_items == 0:
            self.ordering.single = True
        self.stopped_error: PrefactorTelemetryFailureError | None = None
        self.bytes = 0  # prepared bytes held, against policy.max_buffered_bytes
        self.drops = _DropLog()
        self._wake = wake
        self._retry = RetryPolicy(http_config)
        # Agent data may echo the token (a tool printing its environment): never sent on.
        self._token = http_config.api_token.encode("utf-8")
        self._admit_ops = int(maxsize * _ADMIT_SHARE)
        self._admit_bytes = int(policy.max_buffered_bytes * _ADMIT_SHARE)
        self._first_put = 0.0
        self._settled = 0  # operations settled since the buffer was last told
        self._urgent = 0
        self._in_flight = 0
        self._arrived = 0
        self._oldest = 0.0
        self._pause_until = 0.0
        self._failures = 0
        self._batch_cap = policy.bulk_max_items
        self._bulk_verified = False
        self._replies: deque[tuple[_Request, Reply]] = deque()
        self._flying: set[_Request] = set()
        self._requests: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._logged: set[tuple[str, str]] = set()
        self._schemas: OrderedDict[str, bytes] = OrderedDict()
        self._next_poll = 0.0 if poll_interval is None else time.monotonic() + poll_interval
        self._polling = 0
        self.closing = False
        buffer.set_listener(self._on_first_put)

    # -- producers (any thread) -------------------------------------------------------------

    def _on_first_put(self) -> None:
        # Called when the buffer goes from empty to not empty: one wake-up per drain.
        self._first_put = time.monotonic()
        self._wake()

    def admits_runs(self) -> bool:
        """Whether a new run may start (the buffer is not near its bounds)."""
        return self.buffer.unfinished < self._admit_ops and self.bytes < self._admit_bytes

    def urgent(self, on: bool) -> None:
        """While some caller waits for delivery, nothing lingers."""
        self._urgent += 1 if on else -1
        if on:
            self._wake()

    # -- the export thread ------------------------------------------------------------------

    def step(self, now: float) -> float | None:
        """Do what is due; when to be called again at the latest (None: when woken)."""
        while self._replies:
            request, reply = self._replies.popleft()
            self._in_flight -= 1
            self._flying.discard(request)
            self._answered(request, reply, now)
        wake_at: float | None = None
        if len(self.buffer):
            due = self._first_put + self.policy.linger
            if self._urgent or now >= due or self.closing:
                self._intake(now)
            else:
                wake_at = due
        if self.stopped_error is None:
            if self.poll_interval is not None and now >= self._next_poll and not self._polling:
                self._poll()
                self._next_poll = now + self.poll_interval
            sent_until = self._dispatch(now)
            wake_at = _earliest(wake_at, sent_until)
            if self.poll_interval is not None:
                wake_at = _earliest(wake_at, self._next_poll)
        self._report_settled()
        return wake_at

    # -- intake: prepare at once ------------------------------------------------------------

    def _intake(self, now: float) -> None:
        for operation, owner in self.buffer.drain():
            try:
                self._take_in(operation, owner)
            except Exception:  # a defect of ours: keep exporting everything else
                logger.exception("Prefactor export could not take in a %s", operation.type.name)
                self._settle_failed_ops(owner, 1)

    def _take_in(self, op: Operation, owner: ClientExport) -> None:
        if self.stopped_error is not None:
            self._settle_failed_ops(owner, 1)
            return
        instance_id = op.instance_id
        if instance_id is None:
            self._settle_failed_ops(owner, 1)
            self._log_once(op.type.name, "has no instance id", None)
            return
        run = self.ordering.run_of(instance_id)
        kind = op.type
        data = op.payload
        policy = _policy_of(op) or owner.payload_policy
        if kind is FINISH_SPAN:
            result = self._prepared(data.get("result_payload"), policy, owner)
            merged = self.ordering.coalesce(run, op, result)
            if merged is not None:
                owner.counters.coalesced += 1
                self.bytes += len(result) if result else 0
                return
            item = Item(op, op.idempotency_key or _key(op), run, owner, result=result)
        elif kind is CREATE:
            payload = self._prepared(data.get("payload"), policy, owner)
            result = None
            if data.get("status") in _TERMINAL:
                result = self._prepared(data.get("result_payload"), policy, owner)
            item = Item(op, op.idempotency_key or _key(op), run, owner, payload, result)
        elif kind is REGISTER:
            item = Item(
                op,
                op.idempotency_key or _key(op),
                run,
                owner,
                self._declared(data.get("agent_version"), owner),
                self._declared(data.get("agent_schema_version"), owner),
            )
        elif kind is OperationType.RECORD_QUALITY:
            payload = self._prepared(data.get("payload"), policy, owner)
            item = Item(op, op.idempotency_key or _key(op), run, owner, payload)
        else:
            item = Item(op, op.idempotency_key or _key(op), run, owner)
        self.bytes += item.size
        failed = self.ordering.add(item)
        for lost in failed:  # its run's register failed before: a knock-on, not a refusal
            self._settle(lost, ok=False, skipped=True)
        if not failed:
            if not self._arrived:
                self._oldest = time.monotonic()
            self._arrived += 1

    def _prepared(self, value: Any, policy: PayloadPolicy, owner: ClientExport) -> bytes | None:
        """``value`` prepared; withheld (a note says so) while the byte budget is spent, so
        the operation still goes and the tree stays whole."""
        if value is None:
            return None
        if self.bytes >= self.policy.max_buffered_bytes:
            owner.counters.truncated += 1
            self.drops.note("payloads withheld by the byte budget")
            return _WITHHELD
        data, truncated = prepare_json(value, policy)
        if truncated:
            owner.counters.truncated += truncated
        return scrub_token(data, self._token)

    def _declared(self, value: Any, owner: ClientExport) -> bytes | None:
        """A register's agent version or schema version, exactly as declared. Every instance
        of an agent registers the same schema version, named by its content hash: it is
        prepared once."""
        token = self._token
        if not isinstance(value, dict):
            return scrub_token(prepare_json(value or {}, EXACT_POLICY)[0], token)
        name = value.get("external_identifier")
        if not isinstance(name, str) or len(value) < 2:
            return scrub_token(prepare_json(value, EXACT_POLICY)[0], token)
        known = self._schemas.get(name)
        if known is None:
            known = scrub_token(prepare_json(value, EXACT_POLICY)[0], token) or b"{}"
            self._schemas[name] = known
            if len(self._schemas) > _SCHEMAS_KEPT:
                self._schemas.popitem(last=False)
        return known

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, now: float) -> float | None:
        """Hand out what may go; when something held back is due (None: nothing is)."""
        ordering = self.ordering
        if not ordering.has_queued or (self.closing and not self._urgent):
            return None
        if now < self._pause_until:
            return self._pause_until
        policy = self.policy
        if ordering.single:
            limit = policy.export_concurrency
            lingering = not self._urgent and now < self._oldest + policy.linger
            if lingering and self._arrived:
                return self._oldest + policy.linger
            while self._in_flight < limit:
                item = ordering.take(now)
                if item is None:
                    break
                path, body = single_request(item)
                self._send(_Request("single", "POST", path, body, item.owner.sdk_header, [item]))
            self._arrived = 0
            return ordering.next_retry
        while self._in_flight < policy.max_requests_in_flight:
            full = self._arrived >= self._batch_cap
            if not full and not self._urgent and now < self._oldest + policy.linger:
                return self._oldest + policy.linger
            items = ordering.batch(self._batch_cap, policy.bulk_max_bytes)
            if not items:
                break
            self._arrived = max(0, self._arrived - len(items))
            self._oldest = now
            self._send(
                _Request(
                    "bulk", "POST", BULK_PATH, bulk_body(items), items[0].owner.sdk_header, items
                )
            )
        return None

    def _send(self, request: _Request) -> None:
        now = time.monotonic()
        for item in request.items:
            item.attempts += 1
            if not item.first_try:
                item.first_try = now
        self._in_flight += 1
        self._flying.add(request)
        if len(self._workers) < self._in_flight:
            worker = threading.Thread(target=self._work, name="prefactor-export-io", daemon=True)
            worker.start()
            self._workers.append(worker)
        self._requests.put(request)

    def _work(self) -> None:
        """An I/O thread: carries requests until told to stop."""
        while True:
            request = self._requests.get()
            if request is None:
                return
            try:
                reply = self.sender.send(request.method, request.path, request.body, request.header)
            except Exception as exc:  # a sender that broke its promise not to raise
                reply = Reply(0, error=exc)
            self._replies.append((request, reply))
            del request, reply  # hold nothing while waiting for the next request
            self._wake()

    def _poll(self) -> None:
        """Ask the server whether open runs were terminated (a few requests at a time)."""
        runs = [
            run
            for run in self.ordering.open_runs()
            if not termination_registry.is_terminated(run.instance_id)
        ]
        header = next(iter(self.owners)).sdk_header if self.owners else ""
        for run in runs[:_POLL_AT_ONCE]:
            self._polling += 1
            self._send(_Request("poll", "GET", instance_path(run.server_id), None, header, [], run))

    # -- answers ----------------------------------------------------------------------------

    def _answered(self, request: _Request, reply: Reply, now: float) -> None:
        for owner in {item.owner for item in request.items}:
            owner.counters.requests += 1
        try:
            if request.kind == "poll":
                self._polling -= 1
                self._poll_answered(request, reply)
            elif request.kind == "bulk":
                self._bulk_answered(request.items, reply, now)
            else:
                self._single_answered(request.items[0], reply, now)
        except Exception:  # a defect of ours: give these up, keep exporting the rest
            logger.exception("Prefactor export could not handle an answer")
            for item in request.items:
                if item.state == SENDING:
                    self._fail(item, None)
        if request.kind == "bulk":
            self.ordering.release(request.items)

    def _poll_answered(self, request: _Request, reply: Reply) -> None:
        if 200 <= reply.status < 300 and request.run is not None:
            envelope = read_json(reply.body) or {}
            details = envelope.get("details")
            if isinstance(details, dict) and details.get("status") == "terminated":
                reason = details.get("termination_reason")
                termination_registry.mark(
                    request.run.instance_id, reason if isinstance(reason, str) else None
                )
        elif reply.status in (401, 403):
            self._stop(reply, [])

    def _bulk_answered(self, items: list[Item], reply: Reply, now: float) -> None:
        status = reply.status
        if 200 <= status < 300:
            envelope = read_json(reply.body)
            outputs = envelope.get("outputs") if envelope is not None else None
            if isinstance(outputs, dict):
                self._bulk_verified = True
                self._succeeded()
                self._bulk_outputs(items, outputs, now)
                return
            if not self._bulk_verified:
                self._no_bulk(items, "answered without the bulk envelope")
                return
            self._transient(items, reply, now)  # garbled: the same keys make a repeat safe
        elif status in (404, 405) and not self._bulk_verified:
            self._no_bulk(items, f"answered HTTP {status}")
        elif status == 0 or self._retry.retries_status(status):
            if is_certificate_error(reply.error):
                self._permanent(items, reply)
            else:
                self._transient(items, reply, now)
        elif status in (401, 403):
            self._stop(reply, items)
        elif len(items) > 1 and status in (400, 413, 422):
            # Something in the request was refused: find it by sending fewer at a time.
            self._batch_cap = max(1, len(items) // 2)
            self.ordering.retry(items, now)
        else:
            self._permanent(items, reply)

    def _bulk_outputs(self, items: list[Item], outputs: dict[str, Any], now: float) -> None:
        unanswered: list[Item] = []
        for item in items:
            if item.state != SENDING:
                continue  # failed meanwhile with something it depends on
            output = outputs.get(item.key)
            if not isinstance(output, dict):
                unanswered.append(item)  # after the first error: not executed
            elif output.get("status") == "success":
                self._stored(item, output.get("details", output), output.get("control"))
            elif _conflict_is_success(item, output.get("code")):
                self._stored(item, None, None)
            else:
                self._fail(item, f"{output.get('code')}: {output.get('message')}")
        if self._batch_cap < self.policy.bulk_max_items:
            self._batch_cap = min(self.policy.bulk_max_items, self._batch_cap * 2)
        self._retry_items(unanswered, now)

    def _single_answered(self, item: Item, reply: Reply, now: float) -> None:
        status = reply.status
        if item.state != SENDING:
            return
        if 200 <= status < 300:
            envelope = read_json(reply.body)
            if envelope is None:
                self._transient([item], reply, now)  # garbled: the same key makes it safe
                return
            self._succeeded()
            self._stored(item, envelope.get("details"), envelope.get("control"))
        elif status == 409:
            envelope = read_json(reply.body) or {}
            if _conflict_is_success(item, envelope.get("code")):
                self._stored(item, None, None)
            else:
                self._permanent([item], reply)
        elif status == 0 or self._retry.retries_status(status):
            if is_certificate_error(reply.error):
                self._permanent([item], reply)
            else:
                self._transient([item], reply, now)
        elif status in (401, 403):
            self._stop(reply, [item])
        else:
            self._permanent([item], reply)

    def _stored(self, item: Item, details: Any, control: Any) -> None:
        reason = take_details(item, item.run, details, control)
        if reason is not None:
            termination_registry.mark(item.run.instance_id, reason or None)
        self._settle(item, ok=True)
        self.ordering.done(item)

    def _succeeded(self) -> None:
        self._failures = 0
        for owner in self.owners:
            owner.last_attempt_failed = False

    def _no_bulk(self, items: list[Item], how: str) -> None:
        """The server has no bulk endpoint: one request per operation from now on."""
        logger.warning(
            "Prefactor export: %s %s; sending one request per operation instead",
            self.http_config.api_url.rstrip("/") + BULK_PATH,
            how,
        )
        self.ordering.to_single()
        self.ordering.retry(items, 0.0)

    def _transient(self, items: list[Item], reply: Reply, now: float) -> None:
        """A failure worth retrying: the same keys again after a backoff, within budget."""
        self._failures += 1
        error = _describe(reply)
        for owner in {item.owner for item in items}:
            owner.last_attempt_failed = True
            owner.last_error = error
            owner.counters.retried += len(items)
        if reply.retry_after is not None:
            delay = min(reply.retry_after, self._retry.max_delay)
        else:
            attempts = self._failures if not self.ordering.single else items[0].attempts
            delay = self._retry.backoff(max(0, attempts - 1))
        if not self.ordering.single:
            self._pause_until = now + delay
        budget = self.policy.retry_budget
        expired = [item for item in items if now - item.first_try >= budget]
        if expired:
            self._log_once(
                expired[0].kind.name,
                f"given up after its retry budget of {budget:g} s",
                error,
            )
            for item in expired:
                self._fail(item, None)
        self._retry_items([item for item in items if item.state == SENDING], now + delay)

    def _retry_items(self, items: list[Item], at: float) -> None:
        retry: list[Item] = []
        for item in items:
            if item.run.failed:
                self._fail(item, None)
            elif item.state == SENDING:
                retry.append(item)
        if retry:
            self.ordering.retry(retry, at)

    def _permanent(self, items: list[Item], reply: Reply) -> None:
        """A failure no repeat can mend: give the items up, with one line per kind."""
        why = _describe(reply)
        if 300 <= reply.status < 400:
            why = redirect_message(reply.location, reply.status)
        for owner in {item.owner for item in items}:
            owner.last_error = why
        for item in items:
            if item.state == SENDING:
                self._fail(item, why)

    def _fail(self, item: Item, why: str | None) -> None:
        if why is not None:
            self._log_once(item.kind.name, "was refused", why)
        knock_on = self.ordering.fail(item) if item.state != FAILED else []
        self._settle(item, ok=False)
        for lost in knock_on:
            self._settle(lost, ok=False, skipped=True)

    def _settle(self, item: Item, *, ok: bool, skipped: bool = False) -> None:
        """Count ``item`` settled: sent, failed, or ``skipped`` (given up because an operation it
        depends on was lost)."""
        counters = item.owner.counters
        if ok:
            counters.sent += 1
        elif skipped:
            counters.skipped += item.ops
        else:
            counters.failed += item.ops
        counters.done += item.ops
        self.bytes -= item.size
        self._settled += item.ops

    def _settle_failed_ops(self, owner: ClientExport, ops: int) -> None:
        owner.counters.failed += ops
        owner.counters.done += ops
        self._settled += ops

    def _report_settled(self) -> None:
        """Tell the buffer (and whoever waits in `flush`) what was settled, once per step."""
        if self._settled:
            settled, self._settled = self._settled, 0
            self.buffer.task_done(settled)

    def _stop(self, reply: Reply, items: list[Item]) -> None:
        """The token was refused: stop exporting to this destination, with one error line."""
        first = self.stopped_error is None
        if first:
            message = (
                f"Prefactor export stopped: the API refused the token ({_describe(reply)}); "
                "no more telemetry will be sent. Check PREFACTOR_API_TOKEN."
            )
            # Set before anything is settled: a caller woken by the settling sees it.
            self.stopped_error = PrefactorTelemetryFailureError(message)
            logger.error(message)
        for item in items:
            if item.state == SENDING:
                item.state = FAILED
                self._settle(item, ok=False)
        if first:
            self._abandon()

    def _abandon(self) -> int:
        """Give up on everything not in flight; how many operations that was."""
        lost = 0
        for item in self.ordering.abandon():
            self._settle(item, ok=False)
            lost += item.ops
        for _, owner in self.buffer.drain():
            self._settle_failed_ops(owner, 1)
            lost += 1
        return lost

    def _log_once(self, kind: str, what: str, detail: str | None) -> None:
        key = (kind, what if detail is None else detail.split(":")[0])
        if key in self._logged:
            return
        self._logged.add(key)
        logger.warning(
            "Prefactor export: a %s operation %s%s; further ones are only counted in stats()",
            kind,
            what,
            "" if detail is None else f" ({detail})",
        )

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> int:
        """On the export thread, once the drain is over: give up the rest, stop the I/O
        threads. How many operations were not delivered."""
        self.closing = True
        lost = self._abandon()
        for request in self._flying:
            for item in request.items:
                if item.state == SENDING:
                    item.state = FAILED
                    self._settle(item, ok=False)
                    lost += item.ops
        self._flying.clear()
        self._replies.clear()
        for _ in self._workers:
            self._requests.put(None)
        self._report_settled()
        self.buffer.set_listener(None)
        self.sender.close()
        return lost


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _conflict_is_success(item: Item, code: Any) -> bool:
    """A 409 on a finish means already finished; ``already_exists`` on a repeated create,
    register or start means the earlier attempt was stored and its answer lost."""
    if item.kind is FINISH_SPAN or item.kind is FINISH_INSTANCE:
        return code in (None, "invalid_action", "conflict", "already_finished", "already_exists")
    if item.kind in (CREATE, REGISTER, START):
        return code == "already_exists" and item.attempts > 1
    return False


def _describe(reply: Reply) -> str:
    if reply.status == 0:
        error = reply.error
        return "no answer" if error is None else f"{type(error).__name__}: {error}"
    envelope = read_json(reply.body) if reply.body else None
    code = envelope.get("code") if envelope is not None else None
    return f"HTTP {reply.status}" + (f" {code}" if code else "")


def _policy_of(op: Operation) -> PayloadPolicy | None:
    policy = op.metadata.get("policy") if op.metadata else None
    return policy if isinstance(policy, PayloadPolicy) else None


# Idempotency keys of operations that came without one. Instances and spans have ids made
# here, unique PFIDs, and each of their operations happens once: the key is the id and what is
# done to it, stable across every attempt. A quality record may be repeated: a random UUID4,
# from a process-local generator (uuid.uuid4() asks the kernel each time), reseeded in a child.
_KEY_SUFFIXES = {
    OperationType.REGISTER_AGENT_INSTANCE: ":register",
    OperationType.START_AGENT_INSTANCE: ":start",
    OperationType.FINISH_AGENT_INSTANCE: ":finish",
    OperationType.CREATE_SPAN: ":create",
    OperationType.FINISH_SPAN: ":finish",
}
_random_keys = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random_keys.seed(os.urandom(32)))


def _key(op: Operation) -> str:
    suffix = _KEY_SUFFIXES.get(op.type)
    data = op.payload
    name = data.get("span_id") if "span_id" in data else data.get("instance_id")
    if suffix is not None and isinstance(name, str) and 8 <= len(name) + len(suffix) <= 64:
        return name + suffix
    return str(uuid.UUID(int=_random_keys.getrandbits(128), version=4))


class ClientExport:
    """One client's handle on the pipe of its destination: put, flush, stats, close.

    It attaches on first use, and again after ``close``; counters survive re-attaching, so
    ``stats()`` keeps counting across ``close()`` and a new ``initialize()``.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        sdk_header: str,
        buffer: InMemoryQueue[Any] | None = None,
    ) -> None:
        self.config = config
        self.payload_policy = config.payload_policy
        self.sdk_header = sdk_header
        self._buffer = buffer
        self._lock = threading.Lock()
        self.pipe: Pipe | None = None
        self.counters = Counters()
        self.closed = False
        self.last_error: str | None = None
        self.last_attempt_failed = False

    def _attached(self) -> Pipe | None:
        pipe = self.pipe
        if pipe is None:
            from prefactor_core.export.thread import get_exporter

            with self._lock:
                pipe = self.pipe
                if pipe is None:
                    pipe = get_exporter().attach(self, self._buffer)
                    self.pipe = pipe
                    self.closed = False
        return pipe

    def connect(self) -> None:
        """Attach to the exporter now (otherwise done on first use)."""
        self._attached()

    def put(self, operation: Operation) -> bool:
        """Non-blocking put; whether the buffer accepted it. Callers serialise their puts.

        A register is refused while the buffer is near its bounds (the whole run is then
        dropped by the caller), so that the runs already under way can complete."""
        pipe = self.pipe or self._attached()
        counters = self.counters
        if pipe is None or pipe.stopped_error is not None or self.closed:
            counters.dropped += 1
            return False
        kind = operation.type
        if kind is REGISTER and not pipe.admits_runs():
            counters.dropped += 1
            counters.dropped_runs += 1
            pipe.drops.note("runs refused while the buffer is full")
            return False
        if pipe.buffer.put_nowait((operation, self), essential=kind in LIFECYCLE_OPERATIONS):
            counters.queued += 1
            return True
        counters.dropped += 1
        pipe.drops.note("operations refused while the buffer is full")
        return False

    def note_dropped(self, operations: int = 1) -> None:
        """Count operations of a refused run that the caller did not even put."""
        self.counters.dropped += operations

    def flush(self, timeout: float | None = None) -> bool:
        """Block until the pipe is drained; False on timeout, failures, or the export thread."""
        from prefactor_core.export.thread import get_exporter

        pipe = self.pipe
        if pipe is None:
            return True
        if get_exporter().in_export_thread():
            return False
        failed = self.counters.lost
        pipe.urgent(True)
        try:
            drained = pipe.buffer.join(timeout)
        finally:
            pipe.urgent(False)
        return drained and self.counters.lost == failed

    async def aflush(self, timeout: float | None = None) -> bool:
        """`flush` without blocking the event loop."""
        pipe = self.pipe
        if pipe is None:
            return True
        failed = self.counters.lost
        pipe.urgent(True)
        try:
            drained = await pipe.buffer.wait_idle(timeout)
        finally:
            pipe.urgent(False)
        return drained and self.counters.lost == failed

    def stats(self) -> ExportStats:
        """Counters and health."""
        pipe = self.pipe
        stopped = pipe.stopped_error if pipe is not None else None
        if stopped is not None:
            health = "stopped"
        elif self.closed:
            health = "closed"
        else:
            health = "degraded" if self.last_attempt_failed else "healthy"
        return self.counters.snapshot(
            health,  # type: ignore[arg-type]
            export_stopped=stopped is not None,
            last_error=stopped.message if stopped is not None else self.last_error,
        )

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` for delivery, then detach; how many operations were lost."""
        from prefactor_core.export.thread import get_exporter

        self.flush(timeout)
        with self._lock:
            pipe, self.pipe = self.pipe, None
        if pipe is None:
            return 0
        lost = get_exporter().detach(self, pipe)
        return self._closed(lost)

    async def aclose(self, timeout: float) -> int:
        """`close` without blocking the event loop."""
        await self.aflush(timeout)
        return await asyncio.get_running_loop().run_in_executor(None, self.close, 0.0)

    def _closed(self, lost: int) -> int:
        self.closed = True
        if lost:
            counters = self.counters
            logger.warning(
                "Prefactor: %d operation(s) were not delivered before close() "
                "(sent=%d, failed=%d, dropped=%d)",
                lost,
                counters.sent,
                counters.failed,
                counters.dropped,
            )
        return lost

    def after_fork_in_child(self) -> None:
        """Forget the parent's exporter and pending work; start from scratch."""
        self._lock = threading.Lock()
        self.pipe = None
        self.counters = Counters()
        if self._buffer is not None:
            self._buffer = InMemoryQueue(self._buffer.maxsize)
