"""`TerminationMonitor`: whether the platform terminated one agent instance.

There is one monitor per instance, never a single "current instance". The exporter marks a
monitor when a response carries ``control.terminate`` or a poll finds the instance
``terminated``; adapters read ``is_terminated`` or subscribe to be told. All methods are
thread-safe.

Compatibility with the published ``prefactor-core`` 0.5 monitor (one monitor re-used across
runs through `sync` and `reset`): `reset` sets a fence that ignores late termination signals
of the finished run until `sync` names an instance again; a poll stops at ``sync(None)``,
`reset`, `destroy` and once termination is detected; callbacks that take no argument (the
published form) are called without the reason.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, cast

__all__ = ["TerminationCallback", "TerminationMonitor"]

logger = logging.getLogger("prefactor_core.monitoring")

TerminationCallback = Callable[[str | None], object] | Callable[[], object]
"""Called with the termination reason, or with nothing (the published form)."""
FetchInstance = Callable[[str], Awaitable[Any]]


def _set_event(event: asyncio.Event) -> None:
    event.set()


def _takes_reason(callback: TerminationCallback) -> bool:
    """Whether ``callback`` accepts the reason (ours) or no argument (the published form)."""
    try:
        inspect.signature(callback).bind(None)
    except TypeError:
        return False
    except ValueError:  # no signature to read: pass the reason
        return True
    return True


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
        self._callbacks: list[tuple[TerminationCallback, bool]] = []
        self._events: list[tuple[asyncio.AbstractEventLoop | None, asyncio.Event]] = []
        self._poll_task: asyncio.Task[None] | None = None
        self._destroyed = False
        self._fenced = False
        self._generation = 0

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
        """Mark the instance terminated and notify subscribers in the order they subscribed;
        False (and nothing happens) if already marked, destroyed, or fenced by `reset`."""
        with self._lock:
            if self._destroyed or self._fenced or self._terminated.is_set():
                return False
            self._reason = reason
            self._terminated.set()
            callbacks = list(self._callbacks)
            events, self._events = self._events, []
        self._stop_polling()
        for loop, event in events:
            if loop is None:
                event.set()
                continue
            try:
                loop.call_soon_threadsafe(_set_event, event)
            except RuntimeError:
                pass  # that loop has closed
        for callback, takes_reason in callbacks:
            self._call(callback, takes_reason, reason)
        return True

    def _call(self, callback: TerminationCallback, takes_reason: bool, reason: str | None) -> None:
        try:
            if takes_reason:
                cast(Callable[[str | None], object], callback)(reason)
            else:
                cast(Callable[[], object], callback)()
        except Exception:
            logger.warning("termination callback raised", exc_info=True)

    def subscribe(self, callback: TerminationCallback) -> Callable[[], None]:
        """Call ``callback(reason)`` (or ``callback()``) on termination, at once if already
        terminated.

        Returns a function that unsubscribes. Callbacks may run on the export thread, so they
        should be quick and must not block.
        """
        takes_reason = _takes_reason(callback)
        with self._lock:
            already = self._terminated.is_set()
            if not already and not self._destroyed:
                self._callbacks.append((callback, takes_reason))
        if already:
            self._call(callback, takes_reason, self._reason)

        def unsubscribe() -> None:
            with self._lock:
                for index, (subscribed, _) in enumerate(self._callbacks):
                    if subscribed is callback:
                        del self._callbacks[index]
                        break

        return unsubscribe

    def wait(self, timeout: float | None = None) -> bool:
        """Block until terminated; False if ``timeout`` passed first."""
        return self._terminated.wait(timeout)

    def get_termination_event(self) -> asyncio.Event:
        """An `asyncio.Event` of the running loop (or of none), set when the instance is
        terminated."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        event = asyncio.Event()
        with self._lock:
            if self._terminated.is_set():
                event.set()
            else:
                self._events.append((loop, event))
        return event

    # -- optional self-polling --------------------------------------------------------------

    def sync(self, instance_id: str | None) -> None:
        """Watch ``instance_id``: any id lifts the fence of `reset`; the same id again changes
        nothing; another id stops the poll of the old one and, with a ``fetch_instance``, a
        running event loop and no termination yet, polls the new one. ``sync(None)`` only
        stops the poll."""
        if instance_id is not None:
            with self._lock:
                self._fenced = False
        if instance_id == self._instance_id and (
            instance_id is None or self._poll_task is not None or not self._fetch
        ):
            return
        self._stop_polling()
        self._instance_id = instance_id
        if instance_id is None or self._fetch is None or self._destroyed or self.is_terminated:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._poll_task = loop.create_task(
            self._poll(instance_id, self._generation), name="prefactor-termination-poll"
        )

    async def poll_once(self) -> bool:
        """Fetch the instance once; whether it is terminated. Errors count as "not yet"."""
        instance_id, fetch, generation = self._instance_id, self._fetch, self._generation
        if instance_id is None or fetch is None:
            return self.is_terminated
        try:
            instance = await fetch(instance_id)
        except Exception as exc:
            logger.debug("termination poll of %s failed: %s", instance_id, exc)
            return self.is_terminated
        current = instance_id == self._instance_id and generation == self._generation
        if current and getattr(instance, "status", None) == "terminated":
            self.detect_termination(getattr(instance, "termination_reason", None))
        return self.is_terminated

    async def _poll(self, instance_id: str, generation: int) -> None:
        def current() -> bool:
            return (
                instance_id == self._instance_id
                and generation == self._generation
                and not self.is_terminated
                and not self._destroyed
            )

        while current():
            await asyncio.sleep(self.poll_interval)
            if current():
                await self.poll_once()

    def _stop_polling(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is None or task.done():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if task.get_loop() is running:
            if task is not asyncio.current_task():  # a poll that detected ends by itself
                task.cancel()
            return
        try:
            task.get_loop().call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass  # that loop has closed, and the task with it

    def reset(self) -> None:
        """Prepare for the next run: stop polling, forget the termination state and the
        instance id (subscribers are kept), and fence off termination signals until `sync`
        names an instance again."""
        self._stop_polling()
        with self._lock:
            self._terminated = threading.Event()
            self._reason = None
            self._events = []
            self._instance_id = None
            self._generation += 1
            self._fenced = True

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
