"""Agent instance handle and manager.

`AgentInstanceManager` handles instance lifecycle calls; `AgentInstanceHandle` is the
convenient interface to one instance: start, finish, spans, quality and termination.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prefactor_core.ids import new_pfid
from prefactor_core.monitoring.termination_monitor import TerminationCallback, TerminationMonitor
from prefactor_core.operations import Operation, OperationType
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.span_context import SpanScope
from prefactor_core.status import exception_status
from prefactor_core.utils import (
    ensure_utc,
    generate_idempotency_key,
    utc_now,
    validate_idempotency_key,
)
from prefactor_core.validation import check_status
from prefactor_http.client import PrefactorHttpClient
from prefactor_http.exceptions import is_transient_error
from prefactor_http.models.types import FinishStatus

if TYPE_CHECKING:
    from prefactor_core.client import PrefactorCoreClient

__all__ = ["AgentInstanceHandle", "AgentInstanceManager"]

logger = logging.getLogger("prefactor_core")

Enqueue = Callable[[Operation], Awaitable[None]]


class AgentInstanceManager:
    """Instance lifecycle operations.

    `register` calls the API and returns the id it answers with; start, finish and quality are
    queued through ``enqueue`` and never wait on the network.

    Example::

        manager = AgentInstanceManager(http_client, enqueue)
        instance_id = await manager.register(
            agent_id="my-agent",
            agent_version={"name": "1.0.0"},
            agent_schema_version={"version": "1.0.0"},
        )
        await manager.start(instance_id)
        await manager.finish(instance_id)
    """

    def __init__(self, http_client: PrefactorHttpClient, enqueue: Enqueue) -> None:
        self._http = http_client
        self._enqueue = enqueue

    async def register(
        self,
        agent_id: str,
        agent_version: dict[str, Any],
        agent_schema_version: dict[str, Any],
        instance_id: str | None = None,
        *,
        environment_id: str | None = None,
        purpose: str | None = None,
        external_identifier: str | None = None,
    ) -> str:
        """Register a new agent instance with the API and return its id.

        ``instance_id`` is forwarded to the API as ``id``; when omitted the API makes one. If
        the API cannot be reached (a transient failure after the HTTP retries), the register
        is queued for the exporter instead, with ``instance_id`` or a new client id, and that
        id is returned: the agent never fails because telemetry is unavailable. Errors the
        API answers with (invalid input, refused token) are raised.
        """
        key = generate_idempotency_key()
        try:
            instance = await self._http.agent_instances.register(
                agent_version=agent_version,
                agent_schema_version=agent_schema_version,
                agent_id=agent_id,
                environment_id=environment_id,
                id=instance_id,
                idempotency_key=key,
                purpose=purpose,  # type: ignore[arg-type]
                external_identifier=external_identifier,
            )
        except Exception as exc:
            if not is_transient_error(exc):
                raise
            new_id = instance_id or new_pfid()
            logger.warning(
                "Prefactor API unreachable while registering an agent instance (%s); "
                "queued the register of %s instead",
                type(exc).__name__,
                new_id,
            )
            payload = {
                "instance_id": new_id,
                "agent_version": dict(agent_version),
                "agent_schema_version": dict(agent_schema_version),
                "agent_id": agent_id,
                "environment_id": environment_id,
                "purpose": purpose,
                "external_identifier": external_identifier,
            }
            await self._queue(
                OperationType.REGISTER_AGENT_INSTANCE, payload, key if instance_id else None
            )
            return new_id
        return instance.id

    async def start(self, instance_id: str, timestamp: datetime | None = None) -> None:
        """Queue the start of an instance."""
        await self._queue_start(instance_id, None, timestamp)

    async def start_with_idempotency_key(
        self, instance_id: str, idempotency_key: str, timestamp: datetime | None = None
    ) -> None:
        """Queue a start operation using a stable idempotency key."""
        await self._queue_start(instance_id, validate_idempotency_key(idempotency_key), timestamp)

    async def _queue_start(
        self, instance_id: str, key: str | None, timestamp: datetime | None
    ) -> None:
        payload = {"instance_id": instance_id}
        await self._queue(OperationType.START_AGENT_INSTANCE, payload, key, timestamp)

    async def finish(
        self,
        instance_id: str,
        status: FinishStatus = "complete",
        timestamp: datetime | None = None,
    ) -> None:
        """Queue the finish of an instance (``complete``, ``failed`` or ``cancelled``)."""
        await self._queue_finish(instance_id, None, status, timestamp)

    async def finish_with_idempotency_key(
        self,
        instance_id: str,
        idempotency_key: str,
        status: FinishStatus = "complete",
        timestamp: datetime | None = None,
    ) -> None:
        """Queue a finish operation using a stable idempotency key."""
        key = validate_idempotency_key(idempotency_key)
        await self._queue_finish(instance_id, key, status, timestamp)

    async def _queue_finish(
        self, instance_id: str, key: str | None, status: str, timestamp: datetime | None
    ) -> None:
        payload = {"instance_id": instance_id, "status": check_status(status)}
        await self._queue(OperationType.FINISH_AGENT_INSTANCE, payload, key, timestamp)

    async def record_quality(
        self, instance_id: str, name: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Queue a quality payload for the instance (None removes ``name``)."""
        data = {"instance_id": instance_id, "name": name, "payload": payload}
        await self._queue(OperationType.RECORD_QUALITY, data)

    async def _queue(
        self,
        kind: OperationType,
        payload: dict[str, Any],
        key: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        await self._enqueue(Operation(kind, payload, ensure_utc(timestamp) or utc_now(), key))


class AgentInstanceHandle:
    """Handle to an agent instance with convenience methods.

    Example::

        async with client.create_agent_instance(agent_version={"name": "v1"}) as instance:
            await instance.start()
            async with instance.span("agent:llm") as span:
                span.set_payload({"model": "gpt-4"})
                # ... do work ...
            await instance.finish()

    Start and finish use stable idempotency keys made with the handle, so repeating them is
    harmless; a second call does nothing.
    """

    def __init__(self, instance_id: str, client: PrefactorCoreClient) -> None:
        self._id = instance_id
        self._client = client
        self._start_key = generate_idempotency_key()
        self._finish_key = generate_idempotency_key()
        self._started = False
        self._finished = False
        self._registered_here = False

    @property
    def id(self) -> str:
        """The unique identifier of this agent instance."""
        return self._id

    @property
    def finished(self) -> bool:
        """Whether ``finish()`` was called."""
        return self._finished

    async def start(self, timestamp: datetime | None = None) -> None:
        """Mark the instance as started (queued)."""
        if self._started:
            return
        self._client.tracer.mark_started(
            self._id, started_at=timestamp, idempotency_key=self._start_key
        )
        self._started = True

    async def finish(
        self, status: FinishStatus = "complete", timestamp: datetime | None = None
    ) -> None:
        """Mark the instance as finished (queued): ``complete``, ``failed`` or ``cancelled``.

        Spans still open are finished first as ``cancelled``. An instance registered by this
        handle's client and never started is started first, so it can be finished.
        """
        check_status(status)
        if self._finished:
            return
        if not self._started and self._registered_here:
            await self.start(timestamp)
        self._client.tracer.finish_instance(
            self._id, status=status, finished_at=timestamp, idempotency_key=self._finish_key
        )
        self._finished = True

    async def record_quality(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """Record a quality payload for this instance (queued)."""
        self._client.tracer.record_quality(self._id, name, payload)

    async def create_span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Create a span within this instance and return its id at once.

        The span stays open until `finish_span`. Nothing waits on the network.
        """
        return await self._client.create_span(
            self._id, schema_name, parent_span_id, payload, started_at
        )

    async def finish_span(
        self,
        span_id: str,
        result_payload: dict[str, Any] | None = None,
        status: FinishStatus = "complete",
        *,
        timestamp: datetime | None = None,
    ) -> None:
        """Finish a span created in this instance, with ``status`` and optional result data."""
        await self._client.finish_span(span_id, result_payload, timestamp, status=status)

    def span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
        *,
        started_at: datetime | None = None,
        policy: PayloadPolicy | None = None,
    ) -> SpanScope:
        """``async with instance.span(name) as span:`` - a span around the body.

        Yields a `SpanContext`. The span is finished on exit; if the body raises it is
        finished ``failed`` with ``{error_type, message, stacktrace}`` and the exception
        propagates unchanged.
        """
        return self._client.span(
            self._id, schema_name, parent_span_id, payload, started_at=started_at, policy=policy
        )

    # -- termination ------------------------------------------------------------------------

    @property
    def terminated(self) -> bool:
        """Whether the platform terminated this instance."""
        return self._client.tracer.is_terminated(self._id)

    @property
    def termination_reason(self) -> str | None:
        """The reason the platform gave for terminating this instance."""
        return self._client.tracer.termination_reason(self._id)

    @property
    def termination_monitor(self) -> TerminationMonitor:
        """This instance's `TerminationMonitor`."""
        return self._client.tracer.termination_monitor(self._id)

    def on_terminate(self, callback: TerminationCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` when the instance is terminated; returns unsubscribe."""
        return self._client.tracer.on_termination(self._id, callback)

    def raise_if_terminated(self) -> None:
        """Raise `PrefactorTerminatedError` if the platform terminated this instance."""
        self._client.tracer.raise_if_terminated(self._id)


class InstanceCreation:
    """What ``create_agent_instance`` returns: ``await`` it for the handle, or use it as
    ``async with`` - then the instance is finished on exit unless the body did (``failed``
    if the body raised, ``cancelled`` if it was cancelled)."""

    def __init__(self, create: Callable[[], AgentInstanceHandle]) -> None:
        self._create = create
        self._handle: AgentInstanceHandle | None = None

    def _get(self) -> AgentInstanceHandle:
        if self._handle is None:
            self._handle = self._create()
        return self._handle

    async def _await(self) -> AgentInstanceHandle:
        return self._get()

    def __await__(self) -> Any:
        return self._await().__await__()

    async def __aenter__(self) -> AgentInstanceHandle:
        return self._get()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._handle
        if handle is None or handle.finished:
            return
        await handle.finish(exception_status(exc))
