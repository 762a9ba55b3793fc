"""Sending one job: the API call for its operation, with retries and the 409 rules."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from prefactor_core.export.bulk import apply_output, bulk_item, span_create_fields
from prefactor_core.export.scheduler import Job, Lane
from prefactor_core.monitoring.registry import termination_registry
from prefactor_core.operations import OperationType
from prefactor_http.client import PrefactorHttpClient
from prefactor_http.config import HttpClientConfig
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorRetryExhaustedError,
)

if TYPE_CHECKING:
    from prefactor_core.export.channel import ExportChannel

__all__ = ["Outcome", "Sender"]

_FINISHES = (OperationType.FINISH_SPAN, OperationType.FINISH_AGENT_INSTANCE)
_CREATES = (OperationType.CREATE_SPAN, OperationType.REGISTER_AGENT_INSTANCE)


@dataclass(frozen=True)
class Outcome:
    """How a job ended: ``ok``, or failed with ``error`` (``auth`` when the token was refused)."""

    ok: bool
    error: BaseException | None = None
    auth: bool = False


OK = Outcome(True)


def _unwrap(exc: BaseException) -> BaseException:
    if isinstance(exc, PrefactorRetryExhaustedError) and exc.last_error is not None:
        return exc.last_error
    return exc


class _Retry:
    """The retry schedule of one send: the HTTP policy's retries, then the queue's rounds."""

    def __init__(self, owner: ExportChannel, rng: random.Random) -> None:
        self.owner = owner
        self.rng = rng
        self.index = 0
        self.rounds = 0
        self.delay = 0.0

    def failed(self, error: BaseException, stopping: bool) -> Outcome | None:
        """Record a failed attempt; the final outcome, or None to retry after ``delay``."""
        owner = self.owner
        policy = owner.retry_policy
        owner.last_attempt_failed = True
        owner.last_error = f"{type(error).__name__}: {error}"
        if isinstance(error, PrefactorAuthError):
            return Outcome(False, error, auth=True)
        if not policy.should_retry(error) or stopping:
            return Outcome(False, error)
        if self.index < policy.max_retries:
            self.delay = policy.delay_for(error, self.index)
            self.index += 1
        elif self.rounds < owner.queue_config.max_retries:
            base = owner.queue_config.retry_delay_base
            self.delay = base * 2**self.rounds * self.rng.uniform(0.75, 1.25)
            self.rounds += 1
            self.index = 0
        else:
            return Outcome(False, error)
        return None


class Sender:
    """Makes API calls over one HTTP session (one per destination and SDK header).

    The HTTP client runs with its own retries turned off; the sender retries instead, so it
    knows every attempt: up to the owning client's `HttpClientConfig` ``max_retries`` with its
    backoff, then ``QueueConfig.max_retries`` further rounds of those, ``retry_delay_base *
    2**round`` apart. Every attempt reuses the job's idempotency key.
    """

    def __init__(self, http_config: HttpClientConfig, sdk_header: str) -> None:
        self.http = PrefactorHttpClient(replace(http_config, max_retries=0), sdk_header=sdk_header)
        self.stopping = False
        self._rng = random.Random()

    async def open(self) -> None:
        """Open the HTTP session (a no-op when open)."""
        if not self.http.is_open:
            await self.http.open()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()

    async def send(self, job: Job) -> Outcome:
        """Send ``job`` until it succeeds, fails for good, or retries run out."""
        retry = _Retry(job.owner, self._rng)
        while True:
            job.attempts += 1
            try:
                await self._call(job)
            except Exception as raised:
                error = _unwrap(raised)
                if self._conflict_is_success(job, error):
                    job.owner.last_attempt_failed = False
                    return OK
                outcome = retry.failed(error, self.stopping)
                if outcome is not None:
                    return outcome
                job.owner.counters.retried += 1
                await asyncio.sleep(retry.delay)
            else:
                job.owner.last_attempt_failed = False
                return OK

    async def send_bulk(self, jobs: list[Job]) -> list[Outcome | None]:
        """Send ``jobs`` (all of one owner) as one ``POST /api/v1/bulk``, retried as a whole.

        Returns an outcome per job, or None for a job the bulk request did not settle: an item
        the server refused or did not reach, or every item when the server refused the bulk
        request itself. Those are for `send` to retry one by one; their idempotency keys make
        a repeat of anything the server already stored a replay.
        """
        owner = jobs[0].owner
        retry = _Retry(owner, self._rng)
        body = {"items": [bulk_item(job) for job in jobs]}
        while True:
            for job in jobs:
                job.attempts += 1
            try:
                envelope = await self.http.request("POST", "/api/v1/bulk", json=body)
            except Exception as raised:
                error = _unwrap(raised)
                outcome = retry.failed(error, self.stopping)
                if outcome is None:
                    owner.counters.retried += len(jobs)
                    await asyncio.sleep(retry.delay)
                    continue
                if outcome.auth or self.stopping or owner.retry_policy.should_retry(error):
                    return [outcome] * len(jobs)  # refused token, shutdown, retries exhausted
                return [None] * len(jobs)  # the bulk request itself was refused
            owner.last_attempt_failed = False
            outputs = envelope.get("outputs")
            if not isinstance(outputs, dict):
                return [None] * len(jobs)
            results: list[Outcome | None] = []
            for job in jobs:
                output = outputs.get(job.key)
                if isinstance(output, dict) and output.get("status") == "success":
                    apply_output(job, output)
                    results.append(OK)
                else:
                    results.append(None)
            return results

    @staticmethod
    def _conflict_is_success(job: Job, error: BaseException) -> bool:
        """409 on a finish: already finished. 409 ``already_exists`` on a retried create:
        the earlier attempt succeeded but its response was lost."""
        if not isinstance(error, PrefactorApiError) or error.status_code != 409:
            return False
        if job.type in _FINISHES:
            return True
        if job.type in _CREATES:
            return error.code == "already_exists" and job.attempts > 1
        return job.type is OperationType.START_AGENT_INSTANCE and job.attempts > 1

    async def _call(self, job: Job) -> None:
        lane = job.lane
        op = job.op
        data = op.payload
        kind = op.type
        instances = self.http.agent_instances
        if kind is OperationType.REGISTER_AGENT_INSTANCE:
            versions = job.payload or {}
            instance = await instances.register(
                agent_version=versions.get("agent_version") or {},
                agent_schema_version=versions.get("agent_schema_version") or {},
                agent_id=data.get("agent_id"),
                environment_id=data.get("environment_id"),
                id=lane.instance_id,
                idempotency_key=job.key,
                purpose=data.get("purpose"),
                external_identifier=data.get("external_identifier"),
            )
            if instance.id != lane.instance_id:
                lane.server_id = instance.id
            self._check_instance(lane, instance)
        elif kind is OperationType.START_AGENT_INSTANCE:
            instance = await instances.start(
                lane.server_id, timestamp=op.timestamp, idempotency_key=job.key
            )
            self._check_instance(lane, instance)
        elif kind is OperationType.FINISH_AGENT_INSTANCE:
            instance = await instances.finish(
                lane.server_id,
                status=data.get("status") or "complete",
                timestamp=op.timestamp,
                idempotency_key=job.key,
            )
            self._check_instance(lane, instance)
        elif kind is OperationType.RECORD_QUALITY:
            instance = await instances.record_quality(
                lane.server_id,
                str(data.get("name")),
                payload=job.payload,
                idempotency_key=job.key,
            )
            self._check_instance(lane, instance)
        elif kind is OperationType.CREATE_SPAN:
            await self._create_span(job, lane)
        elif kind is OperationType.FINISH_SPAN:
            span_id = str(data["span_id"])
            await self.http.agent_spans.finish(
                lane.server_span_id(span_id),
                status=data.get("status") or "complete",
                result_payload=job.result_payload,
                timestamp=op.timestamp,
                idempotency_key=job.key,
                control_signal_callback=self._terminator(lane),
            )

    async def _create_span(self, job: Job, lane: Lane) -> None:
        fields = span_create_fields(job)
        span = await self.http.agent_spans.create(
            fields["agent_instance_id"],
            fields["schema_name"],
            status=fields["status"],
            payload=fields["payload"],
            result_payload=fields["result_payload"],
            id=fields["id"],
            parent_span_id=fields["parent_span_id"],
            started_at=fields["started_at"],
            finished_at=fields["finished_at"],
            idempotency_key=job.key,
            control_signal_callback=self._terminator(lane),
        )
        if span.id != fields["id"]:
            lane.map_span(fields["id"], span.id)

    @staticmethod
    def _terminator(lane: Lane) -> Any:
        def on_control(reason: str | None) -> None:
            termination_registry.mark(lane.instance_id, reason)

        return on_control

    @staticmethod
    def _check_instance(lane: Lane, instance: Any) -> None:
        if getattr(instance, "status", None) == "terminated":
            termination_registry.mark(
                lane.instance_id, getattr(instance, "termination_reason", None)
            )

    async def fetch_status(self, lane: Lane) -> None:
        """Poll one instance; mark it when the server says it was terminated."""
        instance = await self.http.agent_instances.get(lane.server_id)
        self._check_instance(lane, instance)
