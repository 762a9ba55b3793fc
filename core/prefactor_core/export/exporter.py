"""The process-wide exporter: one daemon thread running its own asyncio loop.

Every client attaches to it; clients with the same destination share a pipe. It starts lazily
on first use, drains what it can at interpreter exit (bounded by the clients'
``shutdown_timeout``), and is replaced by a fresh one in a forked child, which never sends the
parent's pending operations.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
from typing import Any

from prefactor_core.export.channel import BufferItem, ExportChannel, ExportPipe
from prefactor_core.export.lookups import LookupExecutor
from prefactor_core.export.runtime import PipeRuntime
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_http.client import shared_tls_context

__all__ = ["Exporter", "flush_all", "get_exporter"]

logger = logging.getLogger("prefactor_core.export")


def _done_future(value: int) -> concurrent.futures.Future[int]:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    future.set_result(value)
    return future


class Exporter:
    """Owns the export thread, the pipes, and their runtimes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pipes: dict[Any, ExportPipe] = {}
        self._runtimes: dict[int, PipeRuntime] = {}  # touched only in the export thread
        self._shut_down = False

    # -- the thread -------------------------------------------------------------------------

    def in_export_thread(self) -> bool:
        """Whether the caller runs on the export thread."""
        return threading.current_thread() is self._thread

    @property
    def running(self) -> bool:
        """Whether the export thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        # Called with self._lock held.
        if self._loop is not None and self.running:
            return self._loop
        try:
            shared_tls_context()  # built here, never in the export thread (see there)
        except Exception:  # e.g. a bad SSL_CERT_FILE: the export thread meets and reports it
            pass
        loop = asyncio.new_event_loop()
        loop.set_default_executor(LookupExecutor())
        started = threading.Event()
        thread = threading.Thread(
            target=self._run_loop, args=(loop, started), name="prefactor-exporter", daemon=True
        )
        thread.start()
        started.wait()
        self._loop, self._thread = loop, thread
        return loop

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    # -- attaching --------------------------------------------------------------------------

    def attach(
        self, channel: ExportChannel, buffer: InMemoryQueue[BufferItem] | None = None
    ) -> None:
        """Start exporting ``channel``'s operations (through the pipe of its destination, or
        a pipe of its own around ``buffer``)."""
        http = channel.http_config
        key: Any = ("buffer", id(buffer)) if buffer is not None else (http.api_url, http.api_token)
        with self._lock:
            if self._shut_down:
                return  # interpreter exit: the channel stays detached and drops what it gets
            loop = self._ensure_loop()
            pipe = self._pipes.get(key)
            if pipe is None:
                pipe = ExportPipe(
                    key, http, channel.queue_config, channel.poll_interval, buffer=buffer
                )
                self._pipes[key] = pipe
                self._start_pipe(loop, pipe)
            pipe.owners.add(channel)
            channel.pipe = pipe

    def _start_pipe(self, loop: asyncio.AbstractEventLoop, pipe: ExportPipe) -> None:
        key = id(pipe)

        def notify() -> None:
            try:
                loop.call_soon_threadsafe(self._wake, key)
            except RuntimeError:
                pass  # the loop has stopped (interpreter exit)

        pipe.buffer.set_listener(notify)
        loop.call_soon_threadsafe(self._start_runtime, pipe)

    def _start_runtime(self, pipe: ExportPipe) -> None:
        runtime = PipeRuntime(pipe)
        self._runtimes[id(pipe)] = runtime
        runtime.start()

    def _wake(self, key: int) -> None:
        runtime = self._runtimes.get(key)
        if runtime is not None:
            runtime.wake.set()

    def detach(self, channel: ExportChannel) -> concurrent.futures.Future[int]:
        """Stop exporting for ``channel``; the future gives how many of its operations were
        not delivered. A pipe is closed with its last client; until then, what the client
        left in it may still be delivered."""
        pipe = channel.pipe
        with self._lock:
            if pipe is None:
                return _done_future(0)
            pipe.owners.discard(channel)
            if pipe.owners:
                return _done_future(channel.counters.pending)
            if self._pipes.get(pipe.key) is pipe:
                del self._pipes[pipe.key]
            pipe.closed = True
            loop = self._loop
        pipe.buffer.set_listener(None)
        if loop is None or not self.running or loop.is_closed():
            return _done_future(pipe.buffer.clear())
        return asyncio.run_coroutine_threadsafe(self._close_runtime(id(pipe)), loop)

    async def _close_runtime(self, key: int) -> int:
        runtime = self._runtimes.pop(key, None)
        return 0 if runtime is None else await runtime.close()

    def pipes(self) -> list[ExportPipe]:
        """The open pipes."""
        with self._lock:
            return list(self._pipes.values())

    # -- draining ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until no pipe has anything pending; False on timeout or from the export
        thread."""
        if self.in_export_thread():
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        for pipe in self.pipes():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not pipe.buffer.join(remaining):
                return False
        return True

    def shutdown(self, timeout: float | None = None) -> int:
        """Drain (up to ``timeout``, default the largest ``shutdown_timeout``), then stop.

        Logs and returns how many operations could not be delivered.
        """
        with self._lock:
            self._shut_down = True
        pipes = self.pipes()
        owners = [owner for pipe in pipes for owner in pipe.owners]
        if timeout is None:
            timeout = max((owner.queue_config.shutdown_timeout for owner in owners), default=0.0)
        self.flush(timeout)
        undelivered = 0
        for owner in owners:
            future = self.detach(owner)
            try:
                lost = future.result(timeout=2.0)
            except Exception:
                lost = owner.counters.pending
            owner.closed = True
            undelivered += lost
        if undelivered:
            counters = [owner.counters for owner in owners]
            logger.warning(
                "Prefactor: %d operation(s) could not be delivered before shutdown "
                "(sent=%d, failed=%d, dropped=%d)",
                undelivered,
                sum(c.sent for c in counters),
                sum(c.failed for c in counters),
                sum(c.dropped for c in counters),
            )
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=2.0)
        return undelivered


_exporter: Exporter | None = None
_exporter_lock = threading.Lock()


def get_exporter() -> Exporter:
    """The process's exporter, created on first use."""
    global _exporter
    exporter = _exporter
    if exporter is None:
        with _exporter_lock:
            if _exporter is None:
                _exporter = Exporter()
            exporter = _exporter
    return exporter


def flush_all(timeout: float | None = None) -> bool:
    """Block until every client's pending operations were sent or given up.

    Returns False when ``timeout`` (seconds) passed first, or when called from the export
    thread itself.
    """
    exporter = _exporter
    return True if exporter is None else exporter.flush(timeout)


def _shutdown_at_exit() -> None:
    exporter = _exporter
    if exporter is not None:
        exporter.shutdown()


def _after_fork_in_child() -> None:
    # The parent's export thread does not exist here; its pending work stays the parent's.
    global _exporter, _exporter_lock
    _exporter = None
    _exporter_lock = threading.Lock()


atexit.register(_shutdown_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
