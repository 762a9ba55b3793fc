"""`TerminationMonitor`: whether the platform terminated one agent instance.

There is one monitor per instance, never a single "current instance". The exporter marks a
monitor when a response carries ``control.terminate`` or a poll finds the instance
``terminated``; adapters read ``is_terminated`` or subscribe to be told. All methods are
thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["TerminationCallback", "TerminationMonitor"]

logger = logging.getLogger("prefactor_core.monitoring")

TerminationCallback = Callable[[str | None], object]
FetchInstance = Callable[[str], Awaitable[Any]]


def _set_event(event: asyncio.Event) -> None:
    event.set()


class TerminationMonitor:
    """Termination state of one agent instance.

    ``fetch_instance(id)`` (optional, async, returning an object with ``status`` and
    ``termination_reason``) lets the monitor poll on its own every ``poll_interval`` seconds
    once `sync` gives it an instance id inside a running event loop. Monitors made by the core
    are marked by its exporter and need no fetcher.
    """

    def __init__(
        self,
        fetch_instance: FetchInstance | None = None,
        poll_interval: float = 30.0,
        *,
        instance_id: str | None = None,
    ) -> None:
        if not poll_interval > 0:
            raise ValueError("poll_interval must be positive")
        self._fetch = fetch_instance
        self.poll_interval = poll_interval
        self._instance_id = instance_id
        self._lock = threading.Lock()
        self._terminated = threading.Event()
        self._reason: str | None = None
        self._callbacks: list[TerminationCallback] = []
        self._events: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._poll_task: asyncio.Task[None] | None = None
        self._destroyed = False

    @property
    def instance_id(self) -> str | None:
        """The instance this monitor watches."""
        return self._instance_id

    @property
    def is_terminated(self) -> bool:
        """Whether the instance was terminated."""
        return self._terminated.is_set()

    terminated = is_terminated

    @property
    def termination_reason(self) -> str | None:
        """The reason the platform gave, if any."""
        return self._reason

    def detect_termination(self, reason: str | None = None) -> bool:
        """Mark the instance terminated and notify subscribers; False if already marked."""
        with self._lock:
            if self._destroyed or self._terminated.is_set():
                return False
            self._reason = reason
            self._terminated.set()
            callbacks = list(self._callbacks)
            events, self._events = self._events, []
        self._stop_polling()
        for loop, event in events:
            try:
                loop.call_soon_threadsafe(_set_event, event)
            except RuntimeError:
                pass  # that loop has closed
        for callback in callbacks:
            self._call(callback, reason)
        return True

    def _call(self, callback: TerminationCallback, reason: str | None) -> None:
        try:
            callback(reason)
        except Exception:
            logger.warning("termination callback raised", exc_info=True)

    def subscribe(self, callback: TerminationCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` on termination (at once if already terminated).

        Returns a function that unsubscribes. Callbacks may run on the export thread, so they
        should be quick and must not block.
        """
        with self._lock:
            already = self._terminated.is_set()
            if not already and not self._destroyed:
                self._callbacks.append(callback)
        if already:
            self._call(callback, self._reason)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    def wait(self, timeout: float | None = None) -> bool:
        """Block until terminated; False if ``timeout`` passed first."""
        return self._terminated.wait(timeout)

    def get_termination_event(self) -> asyncio.Event:
        """An `asyncio.Event` of the running loop, set when the instance is terminated."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            if self._terminated.is_set():
                event.set()
            else:
                self._events.append((loop, event))
        return event

    # -- optional self-polling --------------------------------------------------------------

    def sync(self, instance_id: str | None) -> None:
        """Watch ``instance_id``; a different id than before resets the state.

        With a ``fetch_instance`` and a running event loop, polling starts for the new id.
        """
        if instance_id == self._instance_id and (self._poll_task or not self._fetch):
            return
        if instance_id != self._instance_id:
            self.reset()
            self._instance_id = instance_id
        if instance_id is None or self._fetch is None or self._destroyed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._poll_task = loop.create_task(self._poll(), name="prefactor-termination-poll")

    async def poll_once(self) -> bool:
        """Fetch the instance once; whether it is terminated. Errors count as "not yet"."""
        instance_id, fetch = self._instance_id, self._fetch
        if instance_id is None or fetch is None:
            return self.is_terminated
        try:
            instance = await fetch(instance_id)
        except Exception as exc:
            logger.debug("termination poll of %s failed: %s", instance_id, exc)
            return self.is_terminated
        if instance_id == self._instance_id and getattr(instance, "status", None) == "terminated":
            self.detect_termination(getattr(instance, "termination_reason", None))
        return self.is_terminated

    async def _poll(self) -> None:
        while not self.is_terminated and not self._destroyed:
            await asyncio.sleep(self.poll_interval)
            await self.poll_once()

    def _stop_polling(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is not None and not task.done():
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass

    def reset(self) -> None:
        """Forget the termination state (subscribers are kept) and stop polling."""
        self._stop_polling()
        with self._lock:
            self._terminated = threading.Event()
            self._reason = None
            self._events = []

    def destroy(self) -> None:
        """Stop polling and drop subscribers; no further notifications."""
        self._stop_polling()
        with self._lock:
            self._destroyed = True
            self._callbacks.clear()
            self._events = []

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._poll_task = None
        self._events = []
