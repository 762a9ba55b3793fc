"""The process-wide table of per-instance `TerminationMonitor` objects."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from prefactor_core.monitoring.termination_monitor import TerminationMonitor

__all__ = ["TerminationRegistry", "termination_registry"]

_MAX_REMEMBERED = 10_000


class TerminationRegistry:
    """Monitors of open instances, plus the most recent terminated ones (bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._monitors: OrderedDict[str, TerminationMonitor] = OrderedDict()

    def monitor(self, instance_id: str) -> TerminationMonitor:
        """The monitor of ``instance_id``, created on first use."""
        with self._lock:
            monitor = self._monitors.get(instance_id)
            if monitor is None:
                monitor = TerminationMonitor(instance_id=instance_id)
                self._monitors[instance_id] = monitor
                self._trim()
            return monitor

    def get(self, instance_id: str) -> TerminationMonitor | None:
        """The monitor of ``instance_id`` if one exists."""
        return self._monitors.get(instance_id)

    def mark(self, instance_id: str, reason: str | None) -> bool:
        """Mark ``instance_id`` terminated; False if it already was."""
        return self.monitor(instance_id).detect_termination(reason)

    def is_terminated(self, instance_id: str) -> bool:
        """Whether ``instance_id`` was terminated."""
        monitor = self._monitors.get(instance_id)
        return monitor is not None and monitor.is_terminated

    def reason(self, instance_id: str) -> str | None:
        """The termination reason of ``instance_id``."""
        monitor = self._monitors.get(instance_id)
        return None if monitor is None else monitor.termination_reason

    def release(self, instance_id: str) -> None:
        """The instance ended: forget it, unless it was terminated (that is still reported)."""
        with self._lock:
            monitor = self._monitors.get(instance_id)
            if monitor is not None and not monitor.is_terminated:
                del self._monitors[instance_id]

    def _trim(self) -> None:
        while len(self._monitors) > _MAX_REMEMBERED:
            self._monitors.popitem(last=False)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        for monitor in self._monitors.values():
            monitor._after_fork()


termination_registry = TerminationRegistry()
os.register_at_fork(after_in_child=termination_registry._after_fork)
