"""`TaskExecutor`: a pool of asyncio workers draining a `Queue` through a handler, with retries.

Compatibility with the published ``prefactor-core`` 0.5: the positional ``num_workers`` and
``max_retries`` keep their order and are also readable as ``_num_workers`` / ``_max_retries``
(with ``_queue`` and ``_handler``), and a queue whose ``close`` is ``async`` is awaited.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from prefactor_core.queue.base import Queue, QueueClosedError
from prefactor_core.queue.memory import InMemoryQueue

__all__ = ["TaskExecutor"]

logger = logging.getLogger("prefactor_core.queue.executor")

T = TypeVar("T")


class TaskExecutor(Generic[T]):
    """Runs ``num_workers`` tasks that take items from ``queue`` and await ``handler(item)``.

    A failing item is tried up to ``max_retries`` more times, waiting ``retry_delay_base *
    2**attempt`` seconds (with jitter) in between, unless ``is_retryable(exc)`` says no. Items
    that still fail are counted in ``failed`` and logged. `stop` lets the workers finish what
    is queued and in progress before closing the queue.
    """

    def __init__(
        self,
        queue: Queue[T],
        handler: Callable[[T], Awaitable[None]],
        num_workers: int = 3,
        max_retries: int = 3,
        *,
        is_retryable: Callable[[BaseException], bool] | None = None,
        retry_delay_base: float = 1.0,
    ) -> None:
        if num_workers < 1:
            raise ValueError("num_workers must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if not retry_delay_base > 0:
            raise ValueError("retry_delay_base must be positive")
        self.queue = queue
        self.handler = handler
        self.num_workers = num_workers
        self.max_retries = max_retries
        self.retry_delay_base = retry_delay_base
        self.is_retryable = is_retryable
        self.processed = 0
        self.failed = 0
        self.retried = 0
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0

    # The published SDK's attribute names, read by code written against it.
    @property
    def _num_workers(self) -> int:
        return self.num_workers

    @property
    def _max_retries(self) -> int:
        return self.max_retries

    @property
    def _queue(self) -> Queue[T]:
        return self.queue

    @property
    def _handler(self) -> Callable[[T], Awaitable[None]]:
        return self.handler

    @property
    def running(self) -> bool:
        """Whether workers are running."""
        return any(not worker.done() for worker in self._workers)

    def start(self) -> None:
        """Start the workers on the running event loop (a no-op when already running)."""
        if self.running:
            return
        self._workers = [
            asyncio.create_task(self._work(), name=f"prefactor-core-worker-{index}")
            for index in range(self.num_workers)
        ]

    async def _work(self) -> None:
        while True:
            try:
                item = await self.queue.get()
            except QueueClosedError:
                return
            self._busy += 1
            try:
                await self._handle(item)
            finally:
                self._busy -= 1
                if isinstance(self.queue, InMemoryQueue):
                    self.queue.task_done()

    async def _handle(self, item: T) -> None:
        attempt = 0
        while True:
            try:
                await self.handler(item)
            except Exception as exc:
                retryable = self.is_retryable is None or self.is_retryable(exc)
                if not retryable or attempt >= self.max_retries:
                    self.failed += 1
                    logger.warning(
                        "failed to process item after %d attempt(s): %s: %s",
                        attempt + 1,
                        type(exc).__name__,
                        exc,
                    )
                    return
                delay = self.retry_delay_base * 2**attempt * random.uniform(0.75, 1.25)
                attempt += 1
                self.retried += 1
                await asyncio.sleep(delay)
            else:
                self.processed += 1
                return

    async def stop(self, timeout: float = 10.0) -> bool:
        """Finish queued and in-progress items (up to ``timeout`` s), then stop the workers.

        Returns True when everything was handled; otherwise the remaining workers are cancelled
        and the items they held are counted in ``failed``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        drained = True
        if isinstance(self.queue, InMemoryQueue):
            drained = await self.queue.wait_idle(timeout)
        else:
            while self.queue.size() or self._busy:
                if loop.time() >= deadline:
                    drained = False
                    break
                await asyncio.sleep(0.01)
        closing = self.queue.close(self.num_workers)
        if inspect.isawaitable(closing):
            await closing
        workers, self._workers = self._workers, []
        if workers:
            remaining = max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(workers, timeout=remaining)
            for worker in pending:
                worker.cancel()
            if pending:
                drained = False
                self.failed += self._busy
                await asyncio.gather(*pending, return_exceptions=True)
        return drained
