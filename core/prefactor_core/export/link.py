"""`ClientExport`: one client's connection to the exporter (attach, put, flush, stats, close)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.export.channel import ExportChannel
from prefactor_core.export.exporter import get_exporter
from prefactor_core.export.stats import Counters, ExportStats
from prefactor_core.operations import LIFECYCLE_OPERATIONS, Operation
from prefactor_core.queue.memory import InMemoryQueue

__all__ = ["ClientExport"]

logger = logging.getLogger("prefactor_core")


class ClientExport:
    """Attaches a client to the process's exporter on first use, and again after ``close``.

    Counters survive re-attaching, so ``stats()`` keeps counting across ``close()`` and a new
    ``initialize()``.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        sdk_header: str,
        buffer: InMemoryQueue[Any] | None = None,
    ) -> None:
        self._config = config
        self._sdk_header = sdk_header
        self._buffer = buffer
        self._lock = threading.Lock()
        self._channel: ExportChannel | None = None
        self._last_channel: ExportChannel | None = None
        self.counters = Counters()

    @property
    def sdk_header(self) -> str:
        """The ``X-Prefactor-SDK`` value of this client."""
        return self._sdk_header

    @sdk_header.setter
    def sdk_header(self, value: str) -> None:
        self._sdk_header = value
        channel = self._channel
        if channel is not None:
            channel.sdk_header = value

    def channel(self) -> ExportChannel:
        """The attached channel (attaching now if needed)."""
        channel = self._channel
        if channel is None:
            with self._lock:
                channel = self._channel
                if channel is None:
                    config = self._config
                    channel = ExportChannel(
                        config.http_config,
                        config.queue_config,
                        config.payload_policy,
                        counters=self.counters,
                        sdk_header=self._sdk_header,
                        poll_interval=config.termination_poll_interval,
                    )
                    get_exporter().attach(channel, self._buffer)
                    self._channel = channel
                    self._last_channel = None
        return channel

    def put(self, operation: Operation) -> bool:
        """Non-blocking put; whether the buffer accepted it. Callers serialise their puts."""
        essential = operation.type in LIFECYCLE_OPERATIONS
        return self.channel().put(operation, essential=essential)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until the pipe is drained; False on timeout, failures, or the export thread."""
        channel = self._channel
        pipe = None if channel is None else channel.pipe
        if pipe is None:
            return True
        if get_exporter().in_export_thread():
            return False
        failed = self.counters.failed
        drained = pipe.buffer.join(timeout)
        return drained and self.counters.failed == failed

    async def aflush(self, timeout: float | None = None) -> bool:
        """`flush` without blocking the event loop."""
        channel = self._channel
        pipe = None if channel is None else channel.pipe
        if pipe is None:
            return True
        failed = self.counters.failed
        drained = await pipe.buffer.wait_idle(timeout)
        return drained and self.counters.failed == failed

    def stats(self) -> ExportStats:
        """Counters and health."""
        channel = self._channel or self._last_channel
        if channel is not None:
            return channel.stats()
        return self.counters.snapshot()

    def _detach(self) -> tuple[ExportChannel | None, Any]:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is None:
            return None, None
        self._last_channel = channel
        return channel, get_exporter().detach(channel)

    def close(self, timeout: float) -> int:
        """Wait up to ``timeout`` for delivery, then detach; how many operations were lost."""
        self.flush(timeout)
        channel, future = self._detach()
        if channel is None:
            return 0
        try:
            lost = int(future.result(timeout=timeout + 5.0))
        except Exception:
            lost = channel.counters.pending
        return self._closed(channel, lost)

    async def aclose(self, timeout: float) -> int:
        """`close` without blocking the event loop."""
        await self.aflush(timeout)
        channel, future = self._detach()
        if channel is None:
            return 0
        try:
            lost = int(await asyncio.wait_for(asyncio.wrap_future(future), timeout + 5.0))
        except Exception:
            lost = channel.counters.pending
        return self._closed(channel, lost)

    def _closed(self, channel: ExportChannel, lost: int) -> int:
        channel.closed = True
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
        self._channel = None
        self._last_channel = None
        self.counters = Counters()
        if self._buffer is not None:
            self._buffer = InMemoryQueue(self._buffer.maxsize)
