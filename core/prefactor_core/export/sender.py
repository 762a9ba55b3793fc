"""Sending one job: the API call for its operation, with retries and the 409 rules."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from typing import Any

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
        retry_index = 0
        rounds = 0
        owner = job.owner
        policy = owner.retry_policy
        queue_config = owner.queue_config
        while True:
            job.attempts += 1
            try:
                await self._call(job)
            except Exception as raised:
                error = _unwrap(raised)
                if self._conflict_is_success(job, error):
                    owner.last_attempt_failed = False
                    return OK
                owner.last_attempt_failed = True
                owner.last_error = f"{type(error).__name__}: {error}"
                if isinstance(error, PrefactorAuthError):
                    return Outcome(False, error, auth=True)
                if not policy.should_retry(error) or self.stopping:
                    return Outcome(False, error)
                if retry_index < policy.max_retries:
                    delay = policy.delay_for(error, retry_index)
                    retry_index += 1
                elif rounds < queue_config.max_retries:
                    base = queue_config.retry_delay_base
                    delay = base * 2**rounds * self._rng.uniform(0.75, 1.25)
                    rounds += 1
                    retry_index = 0
                else:
                    return Outcome(False, error)
                owner.counters.retried += 1
                await asyncio.sleep(delay)
            else:
                owner.last_attempt_failed = False
                return OK

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
        op = job.op
        data = op.payload
        span_id = str(data["span_id"])
        parent = job.span.parent_id if job.span is not None else data.get("parent_span_id")
        status = job.terminal_status
        finished_at = None
        if job.finish_op is not None:
            finished_at = job.finish_op.timestamp
        elif status is not None:
            finished_at = data.get("finished_at") or op.timestamp
        span = await self.http.agent_spans.create(
            lane.server_id,
            str(data["schema_name"]),
            status=status or "active",  # type: ignore[arg-type]
            payload=job.payload or {},
            result_payload=job.result_payload if status is not None else None,
            id=span_id,
            parent_span_id=None if parent is None else lane.server_span_id(parent),
            started_at=data.get("started_at") or op.timestamp,
            finished_at=finished_at,
            idempotency_key=job.key,
            control_signal_callback=self._terminator(lane),
        )
        if span.id != span_id:
            lane.map_span(span_id, span.id)

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
