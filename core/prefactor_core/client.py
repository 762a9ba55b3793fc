"""`PrefactorCoreClient`: the async API over one `Tracer`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from prefactor_core._version import __version__
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.context_stack import SpanContextStack
from prefactor_core.exceptions import ClientAlreadyInitializedError, ClientNotInitializedError
from prefactor_core.export.stats import ExportStats
from prefactor_core.managers.agent_instance import (
    AgentInstanceHandle,
    AgentInstanceManager,
    InstanceCreation,
)
from prefactor_core.managers.span import SpanManager
from prefactor_core.operations import Operation, OperationType
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_core.span_context import SpanScope
from prefactor_core.tracer import Tracer
from prefactor_core.utils import datetime_from_ns
from prefactor_http.client import PrefactorHttpClient

__all__ = ["CORE_SDK_ENTRY", "PrefactorCoreClient"]

logger = logging.getLogger("prefactor_core.client")

CORE_SDK_ENTRY = f"prefactor-core@{__version__}"


class PrefactorCoreClient:
    """Traces agent instances and spans into Prefactor without ever waiting on the network.

    ``async with PrefactorCoreClient(config) as client:`` (or ``initialize()`` / ``close()``).
    Framework adapters use ``client.tracer`` (`Tracer`), which works from any thread and
    without ``initialize()``.

    ``queue``: an `InMemoryQueue` to use as this client's own export buffer (its ``maxsize``
    bounds it). By default clients that send to the same API with the same token share one
    buffer, sized by the first one's ``config.queue_config``, so their spans stay in order
    with each other. ``sdk_header_entry``: an adapter's
    ``name@version``, sent before core's own in ``X-Prefactor-SDK``.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        queue: InMemoryQueue[Any] | None = None,
        sdk_header_entry: str | None = None,
    ) -> None:
        if not isinstance(config, PrefactorCoreConfig):
            raise TypeError("config must be a PrefactorCoreConfig")
        if queue is not None and not isinstance(queue, InMemoryQueue):
            raise TypeError("queue must be an InMemoryQueue")
        self._config = config
        self._sdk_header_entry = (sdk_header_entry or "").strip() or None
        self._tracer = Tracer(config, sdk_header=self._build_http_sdk_header(), buffer=queue)
        self._spans = SpanManager(self._tracer)
        self._initialized = False
        self._http: PrefactorHttpClient | None = None
        self._instance_manager: AgentInstanceManager | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def config(self) -> PrefactorCoreConfig:
        """The configuration."""
        return self._config

    @property
    def tracer(self) -> Tracer:
        """The synchronous, thread-safe `Tracer` (no ``initialize()`` needed)."""
        return self._tracer

    @property
    def initialized(self) -> bool:
        """Whether ``initialize()`` was called and ``close()`` was not."""
        return self._initialized

    async def initialize(self) -> None:
        """Open the client. Nothing is sent here; a wrong token shows up in ``stats()``.

        `ClientAlreadyInitializedError` if already initialised. After ``close()`` the client
        may be initialised again.
        """
        if self._initialized:
            raise ClientAlreadyInitializedError("PrefactorCoreClient is already initialized")
        self._initialized = True
        http = PrefactorHttpClient(self._config.http_config, sdk_header=self._tracer.sdk_header)
        await http.open()
        self._http = http
        self._instance_manager = AgentInstanceManager(http, self._enqueue)
        self._tracer.connect()

    async def close(self) -> None:
        """Finish what is still open (``cancelled``), deliver what is queued within
        ``queue_config.shutdown_timeout``, and stop. What could not be delivered is logged
        and counted in ``stats()``. Never raises for telemetry problems."""
        await self._tracer.aclose()
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        self._instance_manager = None
        self._initialized = False

    async def __aenter__(self) -> PrefactorCoreClient:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require_initialized(self) -> None:
        if not self._initialized:
            raise ClientNotInitializedError(
                "PrefactorCoreClient is not initialized; use 'async with' or await initialize()"
            )

    @property
    def instance_manager(self) -> AgentInstanceManager:
        """The `AgentInstanceManager` (after ``initialize()``)."""
        self._require_initialized()
        assert self._instance_manager is not None
        return self._instance_manager

    async def _enqueue(self, operation: Operation) -> None:
        if operation.type is OperationType.FINISH_AGENT_INSTANCE:
            # Through the tracer, so the instance's open spans are finished first.
            stamp = operation.timestamp
            self._tracer.finish_instance(
                str(operation.payload["instance_id"]),
                status=str(operation.payload.get("status") or "complete"),
                finished_at=datetime_from_ns(stamp) if isinstance(stamp, int) else stamp,
                idempotency_key=operation.idempotency_key,
            )
        else:
            self._tracer.submit(operation)

    # -- SDK header -------------------------------------------------------------------------

    def _build_http_sdk_header(self) -> str:
        if self._sdk_header_entry:
            return f"{self._sdk_header_entry} {CORE_SDK_ENTRY}"
        return CORE_SDK_ENTRY

    def _set_sdk_header_entry(self, entry: str | None) -> None:
        """Set the adapter's header entry (applies to requests from now on)."""
        self._sdk_header_entry = (entry or "").strip() or None
        header = self._build_http_sdk_header()
        self._tracer.sdk_header = header
        if self._http is not None:
            self._http.sdk_header = header

    # -- instances --------------------------------------------------------------------------

    def create_agent_instance(
        self,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        instance_id: str | None = None,
        external_schema_version_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        external_identifier: str | None = None,
    ) -> InstanceCreation:
        """Register an agent instance (queued: nothing waits on the network).

        ``await`` the result for an `AgentInstanceHandle`, or use it with ``async with``: the
        instance is then finished on exit if the body did not finish it (``failed`` when the
        body raised). Start it with ``await instance.start()``.

        The schema version is ``agent_schema_version`` if given, else the configured
        `SchemaRegistry`'s with ``external_schema_version_id`` (default: a content hash, so the
        same schemas map to the same version on every run).
        """
        self._require_initialized()

        def create() -> AgentInstanceHandle:
            schema = agent_schema_version
            if schema is None:
                registry = self._config.schema_registry
                if registry is not None:
                    schema = registry.to_agent_schema_version(external_schema_version_id)
            new_id = self._tracer.register_instance(
                agent_version=agent_version,
                agent_schema_version=schema,
                agent_id=agent_id,
                environment_id=environment_id,
                purpose=purpose,
                instance_id=instance_id,
                external_identifier=external_identifier,
            )
            handle = AgentInstanceHandle(new_id, self)
            handle._registered_here = True
            return handle

        return InstanceCreation(create)

    # -- spans ------------------------------------------------------------------------------

    def span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        started_at: datetime | None = None,
        policy: PayloadPolicy | None = None,
    ) -> SpanScope:
        """``async with client.span(instance_id, name) as span:`` (see `SpanScope`)."""
        self._require_initialized()
        return SpanScope(
            self._spans, instance_id, schema_name, parent_span_id, payload, started_at, policy
        )

    async def create_span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Create a span and return its id at once; it becomes the current span of this
        context until `finish_span`. The parent defaults to the current span."""
        self._require_initialized()
        return await self._spans.create(
            instance_id, schema_name, parent_span_id, payload, started_at=started_at
        )

    async def finish_span(
        self,
        span_id: str,
        result_payload: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        status: str = "complete",
    ) -> None:
        """Finish a span with ``status`` (``complete``, ``failed`` or ``cancelled``).

        `ValueError` for another status; `SpanNotFoundError` for an id never issued here.
        """
        self._spans.finish_now(span_id, result_payload, status, timestamp)
        SpanContextStack.remove(span_id)

    async def record_quality(
        self, instance_id: str, name: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Record a quality payload for an instance (queued)."""
        self._tracer.record_quality(instance_id, name, payload)

    # -- export -----------------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait (without blocking the loop) until everything queued was sent.

        True when all of it was delivered; False on timeout or if something failed.
        """
        return await self._tracer.aflush(timeout)

    def stats(self) -> ExportStats:
        """Counters (queued, sent, retried, coalesced, dropped, truncated, failed, pending)
        and the export health."""
        return self._tracer.stats()
