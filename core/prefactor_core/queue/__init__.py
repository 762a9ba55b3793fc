"""Queues: the abstract `Queue`, the bounded thread-safe `InMemoryQueue`, and `TaskExecutor`."""

from prefactor_core.queue.base import Queue, QueueClosedError
from prefactor_core.queue.executor import TaskExecutor
from prefactor_core.queue.memory import InMemoryQueue

__all__ = ["InMemoryQueue", "Queue", "QueueClosedError", "TaskExecutor"]
