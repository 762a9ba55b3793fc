"""The export-thread side of one pipe: intake, dispatch, results, termination polling."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.export.channel import BufferItem, ExportChannel, ExportPipe
from prefactor_core.export.scheduler import Job, Scheduler
from prefactor_core.export.sender import Outcome, Sender
from prefactor_core.monitoring.registry import termination_registry
from prefactor_core.payloads import PayloadPolicy, prepare_payload
from prefactor_http.exceptions import PrefactorApiError

__all__ = ["PipeRuntime"]

logger = logging.getLogger("prefactor_core.export")

_LINGER = 0.002  # a moment for finishes to catch up with their creates (coalescing)
_INTAKE_BATCH = 100
_POLL_BATCH = 8


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "cancelled at shutdown"
    if isinstance(error, PrefactorApiError):
        return f"HTTP {error.status_code} {error.code}"
    return type(error).__name__


class PipeRuntime:
    """Runs in the exporter's event loop for one pipe."""

    def __init__(self, pipe: ExportPipe) -> None:
        self.pipe = pipe
        config = pipe.queue_config
        # A bulk request carries operations of many instances at once.
        self.scheduler = Scheduler(
            num_workers=max(config.num_workers, config.bulk_max_items),
            prepare=self._prepare,
            on_fail=self._on_fail,
            on_coalesce=self._on_coalesce,
        )
        self.wake = asyncio.Event()
        self.inflight = 0
        self.closing = False
        self._lost_in_flight = 0
        self._senders: dict[str, Sender] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._logged: set[tuple[str, str]] = set()
        self._background: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        """Start intake (and polling when configured); pick up anything already queued."""
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self._pump(), name="prefactor-export-intake"))
        if self.pipe.poll_interval:
            self._background.append(
                loop.create_task(self._poll(self.pipe.poll_interval), name="prefactor-poll")
            )
        self.wake.set()

    def _sender(self, header: str) -> Sender:
        sender = self._senders.get(header)
        if sender is None:
            sender = Sender(self.pipe.http_config, header)
            self._senders[header] = sender
        return sender

    # -- intake -----------------------------------------------------------------------------

    def _prepare(
        self, value: Any, policy: PayloadPolicy | None, owner: ExportChannel
    ) -> dict[str, Any] | None:
        prepared = prepare_payload(value, policy or owner.payload_policy)
        owner.counters.truncated += prepared.truncated
        return prepared.data

    @staticmethod
    def _on_coalesce(owner: ExportChannel) -> None:
        owner.counters.coalesced += 1

    async def _pump(self) -> None:
        buffer = self.pipe.buffer
        while not self.closing:
            await self.wake.wait()
            self.wake.clear()
            await asyncio.sleep(_LINGER)
            while not self.closing:
                items = buffer.drain(_INTAKE_BATCH)
                if not items:
                    break
                for item in items:
                    self._route(item)
                self._dispatch()
                await asyncio.sleep(0)

    def _route(self, item: BufferItem) -> None:
        operation, owner = item
        if self.pipe.stopped_error is not None:
            self._give_up(owner, 1)
            return
        try:
            self.scheduler.route(operation, owner)
        except Exception:
            logger.exception("Prefactor export could not handle a %s", operation.type.name)
            self._give_up(owner, 1)

    def _give_up(self, owner: ExportChannel, operations: int) -> None:
        owner.counters.failed += operations
        owner.counters.done += operations
        self.pipe.buffer.task_done(operations)

    # -- sending ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        limit = self.pipe.queue_config.export_concurrency
        bulk = self.pipe.queue_config.bulk_max_items
        loop = asyncio.get_running_loop()
        while self.inflight < limit and not self.closing:
            job = self.scheduler.take()
            if job is None:
                return
            if bulk > 1:
                batches = self._batches(job, bulk)
                if len(batches) > 1 or len(batches[0]) > 1:
                    for batch in batches:
                        self._start(loop, self._run_batch(batch))
                    continue
            self._start(loop, self._run(job))

    def _batches(self, first: Job, size: int) -> list[list[Job]]:
        """``first`` and up to ``size - 1`` more jobs that may be sent now, split by owner
        (each owner has its own SDK header and retry settings)."""
        by_owner: dict[int, list[Job]] = {id(first.owner): [first]}
        for _ in range(size - 1):
            job = self.scheduler.take()
            if job is None:
                break
            by_owner.setdefault(id(job.owner), []).append(job)
        return list(by_owner.values())

    def _start(self, loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, None]) -> None:
        self.inflight += 1
        task = loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job) -> None:
        sender = self._sender(job.owner.sdk_header)
        outcome = await self._send(sender, job)
        self.inflight -= 1
        self._settle(job, outcome)
        self._dispatch()

    async def _send(self, sender: Sender, job: Job) -> Outcome:
        try:
            await sender.open()
            return await sender.send(job)
        except asyncio.CancelledError:
            return Outcome(False, None)
        except Exception as exc:  # a defect of ours: keep exporting everything else
            logger.exception("Prefactor export failed on a %s", job.type.name)
            return Outcome(False, exc)

    async def _run_batch(self, jobs: list[Job]) -> None:
        """One bulk request; what it did not settle is sent one job at a time."""
        sender = self._sender(jobs[0].owner.sdk_header)
        outcomes: list[Outcome | None]
        try:
            await sender.open()
            outcomes = await sender.send_bulk(jobs)
        except asyncio.CancelledError:
            outcomes = [Outcome(False, None)] * len(jobs)
        except Exception:  # a defect of ours: fall back to single requests
            logger.exception("Prefactor bulk export failed")
            outcomes = [None] * len(jobs)
        solo = [job for job, outcome in zip(jobs, outcomes, strict=True) if outcome is None]
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome is not None:
                self._settle(job, outcome)
        if solo and not self.closing:
            results = await asyncio.gather(*(self._send(sender, job) for job in solo))
            for job, outcome in zip(solo, results, strict=True):
                self._settle(job, outcome)
        elif solo:
            for job in solo:
                self._settle(job, Outcome(False, None))
        self.inflight -= 1
        self._dispatch()

    def _settle(self, job: Job, outcome: Outcome) -> None:
        counters = job.owner.counters
        if outcome.ok:
            counters.sent += 1
        else:
            counters.failed += job.ops
        counters.done += job.ops
        if self.closing:
            if not outcome.ok:
                self._lost_in_flight += job.ops
            self.pipe.buffer.task_done(job.ops)
            return
        if not outcome.ok:
            if outcome.auth:
                self._stop(job, outcome.error)
            else:
                self._log_once(job, f"failed after {job.attempts} attempt(s)", outcome.error)
        self.scheduler.done(job, outcome.ok)
        self.pipe.buffer.task_done(job.ops)

    def _on_fail(self, job: Job, reason: str) -> None:
        self._give_up(job.owner, job.ops)
        if self.pipe.stopped_error is None and not self.closing:
            self._log_once(job, f"not sent: {reason}", None)

    def _log_once(self, job: Job, what: str, error: BaseException | None) -> None:
        kind = (job.type.name, what if error is None else _describe(error))
        if kind in self._logged:
            return
        self._logged.add(kind)
        detail = "" if error is None else f" ({_describe(error)}: {error})"
        logger.warning(
            "Prefactor export: a %s operation %s%s; further failures of this kind are only "
            "counted in stats()",
            job.type.name,
            what,
            detail,
        )

    def _stop(self, job: Job, error: BaseException | None) -> None:
        """The token was refused: stop exporting to this destination, with one error line."""
        if self.pipe.stopped_error is not None:
            return
        message = (
            f"Prefactor export stopped: the API refused the token ({_describe(error)}); "
            "no more telemetry will be sent. Check PREFACTOR_API_TOKEN."
        )
        self.pipe.stopped_error = PrefactorTelemetryFailureError(
            message, cause=error, operation_type=job.type.name
        )
        logger.error(message)
        for abandoned in self.scheduler.abandon():
            self._give_up(abandoned.owner, abandoned.ops)
        for _, owner in self.pipe.buffer.drain():
            self._give_up(owner, 1)

    # -- termination polling ----------------------------------------------------------------

    async def _poll(self, interval: float) -> None:
        while not self.closing:
            await asyncio.sleep(interval)
            if self.pipe.stopped_error is not None or not self._senders:
                continue
            sender = next(iter(self._senders.values()))
            lanes = [
                lane
                for lane in self.scheduler.pollable_lanes()
                if not termination_registry.is_terminated(lane.instance_id)
            ]
            for start in range(0, len(lanes), _POLL_BATCH):
                batch = lanes[start : start + _POLL_BATCH]
                results = await asyncio.gather(
                    *(sender.fetch_status(lane) for lane in batch), return_exceptions=True
                )
                for result in results:
                    if isinstance(result, Exception):
                        logger.debug("termination poll failed: %s", result)

    # -- shutdown ---------------------------------------------------------------------------

    async def close(self) -> int:
        """Stop now: give up on whatever is not delivered; returns how many operations."""
        self.closing = True
        for sender in self._senders.values():
            sender.stopping = True
        undelivered = 0
        for job in self.scheduler.abandon():
            self._give_up(job.owner, job.ops)
            undelivered += job.ops
        in_flight = list(self._tasks)
        for task in (*self._background, *in_flight):
            task.cancel()
        await asyncio.gather(*self._background, *in_flight, return_exceptions=True)
        undelivered += self._lost_in_flight
        for _, owner in self.pipe.buffer.drain():
            self._give_up(owner, 1)
            undelivered += 1
        self.pipe.buffer.clear()
        for sender in self._senders.values():
            await sender.close()
        return undelivered
