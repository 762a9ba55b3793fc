"""`ExportChannel` (one per client) and `ExportPipe` (one per destination).

Clients that send to the same API with the same token share one pipe: one bounded buffer and
one ordering scheduler, so a span made through one client may be the parent of a span made
through another (two framework adapters in one agent) and still reach the server after it.
Each client keeps its own counters, SDK header, payload policy and retry settings.
"""

from __future__ import annotations

from typing import Any

from prefactor_core.config import QueueConfig
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.export.stats import Counters, ExportHealth, ExportStats
from prefactor_core.operations import Operation
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_http.config import HttpClientConfig
from prefactor_http.retry import RetryPolicy

__all__ = ["BufferItem", "ExportChannel", "ExportPipe"]

_MIN_RESERVE = 64

BufferItem = tuple[Operation, "ExportChannel"]


class ExportPipe:
    """The shared path to one destination: a bounded buffer of (operation, client) pairs.

    Its bounds and pacing (buffer size, drop policy, concurrency, workers, polling) come from
    the first client that opened it.
    """

    def __init__(
        self,
        key: Any,
        http_config: HttpClientConfig,
        queue_config: QueueConfig,
        poll_interval: float | None,
        buffer: InMemoryQueue[BufferItem] | None = None,
    ) -> None:
        self.key = key
        self.http_config = http_config
        self.queue_config = queue_config
        self.poll_interval = poll_interval
        maxsize = queue_config.max_buffered_operations
        reserve = 0
        if queue_config.drop_policy == "drop_spans_first":
            reserve = max(_MIN_RESERVE, maxsize // 100)
        if buffer is None:
            buffer = InMemoryQueue(maxsize, reserve=reserve)
        else:
            buffer.reserve = reserve
        self.buffer = buffer
        self.owners: set[ExportChannel] = set()
        self.stopped_error: PrefactorTelemetryFailureError | None = None
        self.closed = False


class ExportChannel:
    """One client's side of export: its settings, counters and status."""

    def __init__(
        self,
        http_config: HttpClientConfig,
        queue_config: QueueConfig,
        payload_policy: PayloadPolicy,
        *,
        counters: Counters,
        sdk_header: str,
        poll_interval: float | None,
    ) -> None:
        self.http_config = http_config
        self.queue_config = queue_config
        self.payload_policy = payload_policy
        self.counters = counters
        self.sdk_header = sdk_header
        self.poll_interval = poll_interval
        self.retry_policy = RetryPolicy(http_config)
        self.pipe: ExportPipe | None = None
        self.closed = False
        self.last_error: str | None = None
        self.last_attempt_failed = False

    @property
    def stopped_error(self) -> PrefactorTelemetryFailureError | None:
        """Why export stopped for good, if it did."""
        return None if self.pipe is None else self.pipe.stopped_error

    @property
    def accepting(self) -> bool:
        """Whether new operations are taken (attached, not closed, export not stopped)."""
        pipe = self.pipe
        return pipe is not None and not self.closed and pipe.stopped_error is None

    def put(self, operation: Operation, *, essential: bool) -> bool:
        """Non-blocking put; counts the operation as queued or dropped."""
        pipe = self.pipe
        if (
            pipe is not None
            and not self.closed
            and pipe.stopped_error is None
            and pipe.buffer.put_nowait((operation, self), essential=essential)
        ):
            self.counters.queued += 1
            return True
        self.counters.dropped += 1
        return False

    def health(self) -> ExportHealth:
        """The client's export health."""
        if self.stopped_error is not None:
            return "stopped"
        if self.closed:
            return "closed"
        return "degraded" if self.last_attempt_failed else "healthy"

    def stats(self) -> ExportStats:
        """A snapshot of the counters."""
        stopped = self.stopped_error
        return self.counters.snapshot(
            self.health(),
            export_stopped=stopped is not None,
            last_error=stopped.message if stopped is not None else self.last_error,
        )
