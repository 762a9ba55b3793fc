"""The abstract queue interface.

``close`` may be a plain or an ``async`` method: the published SDK's queues declare it
``async``, and `TaskExecutor` awaits what it returns when that is awaitable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Generic, TypeVar

__all__ = ["Queue", "QueueClosedError"]

T = TypeVar("T")


class QueueClosedError(Exception):
    """The queue is closed: nothing more can be put, and it has nothing left to get."""


class Queue(ABC, Generic[T]):
    """A queue of work items."""

    @abstractmethod
    async def put(self, item: T) -> None:
        """Add an item; `QueueClosedError` after ``close()``."""

    @abstractmethod
    async def get(self) -> T:
        """Take the next item, waiting for one; `QueueClosedError` when closed and empty."""

    @abstractmethod
    def size(self) -> int:
        """Items waiting to be taken."""

    @abstractmethod
    def close(self, num_waiters: int = 1) -> Awaitable[None] | None:
        """Refuse further items and wake waiting ``get()`` calls."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
