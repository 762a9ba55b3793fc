"""`InMemoryQueue`: the bounded, thread-safe buffer operations wait in before export.

Compatibility with the published ``prefactor-core`` 0.5, whose queue is closed with
``await queue.close()``: ``close()`` acts at once and returns an awaitable, so it may be
awaited or not. Its refusals carry the published messages.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future
from typing import TypeVar

from prefactor_core.queue.base import Queue, QueueClosedError

__all__ = ["InMemoryQueue"]

T = TypeVar("T")

DEFAULT_MAXSIZE = 10_000


class _Closed:
    """What ``close()`` returns: awaiting it does nothing (the queue is already closed)."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # makes this a generator that finishes at once


_CLOSED = _Closed()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class InMemoryQueue(Queue[T]):
    """A bounded FIFO that any thread may put into without blocking.

    The bound counts *unfinished* items: those waiting here plus those taken but not yet
    reported done with `task_done`. So it bounds everything a consumer holds too, and
    `join` (or `wait_idle`) waits until every item was handled. An item put while the queue
    is full is dropped and counted in ``dropped``; ``reserve`` extra places are kept for
    items put with ``essential=True``.
    """

    def __init__(self, maxsize: int = DEFAULT_MAXSIZE, *, reserve: int = 0) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if reserve < 0:
            raise ValueError("reserve must not be negative")
        self.maxsize = maxsize
        self.reserve = reserve
        self._items: deque[T] = deque()
        self._unfinished = 0
        self._accepted = 0
        self._dropped = 0
        self._closed = False
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._getters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._idle_waiters: list[Future[None]] = []
        self._listener: Callable[[], None] | None = None

    # -- putting ----------------------------------------------------------------------------

    def put_nowait(self, item: T, *, essential: bool = False) -> bool:
        """Add ``item`` unless full (or closed); never blocks. Whether it was accepted."""
        with self._lock:
            limit = self.maxsize + (self.reserve if essential else 0)
            if self._closed or self._unfinished >= limit:
                self._dropped += 1
                return False
            was_empty = not self._items
            self._items.append(item)
            self._unfinished += 1
            self._accepted += 1
            getter = self._getters.popleft() if self._getters else None
            listener = self._listener if was_empty else None
        if getter is not None:
            loop, future = getter
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:
                pass  # that loop is closed; its getter is gone
        if listener is not None:
            listener()
        return True

    async def put(self, item: T) -> None:
        """Add ``item``; `QueueClosedError` after close. When full it is dropped and counted."""
        if self._closed:
            raise QueueClosedError("Cannot put to closed queue")
        self.put_nowait(item)

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` (in the putting thread) whenever an item lands in an empty queue."""
        with self._lock:
            self._listener = listener

    # -- taking -----------------------------------------------------------------------------

    def get_nowait(self) -> T:
        """Take the next item; `asyncio.QueueEmpty` when there is none."""
        with self._lock:
            if not self._items:
                raise asyncio.QueueEmpty
            return self._items.popleft()

    async def get(self) -> T:
        """Take the next item, waiting for one; `QueueClosedError` when closed and empty."""
        while True:
            with self._lock:
                if self._items:
                    return self._items.popleft()
                if self._closed:
                    raise QueueClosedError("Queue is closed and empty")
                loop = asyncio.get_running_loop()
                future: asyncio.Future[None] = loop.create_future()
                self._getters.append((loop, future))
            try:
                await future
            except asyncio.CancelledError:
                with self._lock:
                    if (loop, future) in self._getters:
                        self._getters.remove((loop, future))
                raise

    def drain(self, max_items: int | None = None) -> list[T]:
        """Take up to ``max_items`` waiting items (all by default) without waiting."""
        with self._lock:
            if max_items is None or max_items >= len(self._items):
                items = list(self._items)
                self._items.clear()
            else:
                items = [self._items.popleft() for _ in range(max_items)]
            return items

    # -- completion -------------------------------------------------------------------------

    def task_done(self, count: int = 1) -> None:
        """Report ``count`` taken items as handled (sent, failed or given up)."""
        with self._lock:
            self._unfinished = max(0, self._unfinished - count)
            if self._unfinished == 0:
                self._notify_idle()

    def _notify_idle(self) -> None:
        self._idle.notify_all()
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def join(self, timeout: float | None = None) -> bool:
        """Block until every item was handled; False if ``timeout`` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unfinished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Like `join`, without blocking the event loop."""
        with self._lock:
            if not self._unfinished:
                return True
            waiter: Future[None] = Future()
            self._idle_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.wrap_future(waiter), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def clear(self) -> int:
        """Discard every waiting item and forget unfinished ones; how many were outstanding."""
        with self._lock:
            outstanding = self._unfinished
            self._items.clear()
            self._unfinished = 0
            self._notify_idle()
            return outstanding

    # -- state ------------------------------------------------------------------------------

    def size(self) -> int:
        """Items waiting to be taken."""
        return len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def unfinished(self) -> int:
        """Items put but not yet reported done (waiting or being handled)."""
        return self._unfinished

    @property
    def accepted(self) -> int:
        """Items accepted since creation."""
        return self._accepted

    @property
    def dropped(self) -> int:
        """Items refused because the queue was full or closed."""
        return self._dropped

    def full(self) -> bool:
        """Whether a normal put would be refused now."""
        return self._unfinished >= self.maxsize

    def close(self, num_waiters: int = 1) -> _Closed:
        """Refuse further items and wake every waiting ``get()``; items already queued can
        still be taken. Takes effect at once; ``await queue.close()`` also works.

        ``num_waiters`` is accepted for compatibility; all waiters are woken, whatever its value.
        """
        with self._lock:
            self._closed = True
            getters, self._getters = list(self._getters), deque()
        for loop, future in getters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:
                pass
        return _CLOSED

    def reopen(self) -> None:
        """Accept items again after ``close()``."""
        with self._lock:
            self._closed = False

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed
