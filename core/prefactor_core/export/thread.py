"""The process's exporter: one plain background thread driving every destination's `Pipe`.

Clients sending to the same API with the same token share one pipe. The thread starts on
first use and sleeps until a producer's first put after a drain, an answer from an I/O
thread, or a due time (linger, retry, termination poll). It is stopped and drained (bounded
by the clients' ``shutdown_timeout``) at interpreter exit and on SIGTERM; runs still open
then are finished ``cancelled`` first. A forked child gets a fresh exporter of its own and
never sends the parent's pending work.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prefactor_core.export.pipe import BufferItem, Pipe
from prefactor_core.export.sender import never_reached
from prefactor_core.fields import env_bool
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_http.client import shared_tls_context

if TYPE_CHECKING:
    from prefactor_core.export.pipe import ClientExport

__all__ = ["Exporter", "before_shutdown", "flush_all", "get_exporter"]

logger = logging.getLogger("prefactor_core.export")

_ENV_SIGTERM = "PREFACTOR_SIGTERM_HANDLER"
_CLOSE_WAIT = 5.0  # seconds a detach waits for the export thread to close a pipe
_DRAIN_SLICE = 0.1  # seconds between looks at whether the APIs were ever reached
UNREACHED_SHUTDOWN_TIMEOUT = 2.0
"""Seconds exit and SIGTERM wait at most (instead of ``shutdown_timeout``) when no API this
process sends to was ever reached: every attempt so far failed without an answer."""

_shutdown_hooks: list[Callable[[], None]] = []


def before_shutdown(hook: Callable[[], None]) -> None:
    """Run ``hook`` (finish what is open) before the exporter drains at exit or SIGTERM."""
    _shutdown_hooks.append(hook)


class Exporter:
    """Owns the export thread and the pipes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pipes: dict[Any, Pipe] = {}
        self._closing: list[tuple[Pipe, threading.Event, list[int]]] = []
        self._shut_down = False
        self._stop = False

    def in_export_thread(self) -> bool:
        """Whether the caller runs on the export thread."""
        return threading.current_thread() is self._thread

    @property
    def running(self) -> bool:
        """Whether the export thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Have the export thread look at its pipes now."""
        self._wake.set()

    # -- attaching --------------------------------------------------------------------------

    def attach(
        self, client: ClientExport, buffer: InMemoryQueue[BufferItem] | None = None
    ) -> Pipe | None:
        """The pipe of ``client``'s destination (or one of its own around ``buffer``); None
        once the exporter has shut down (the client then drops what it gets)."""
        config = client.config
        http = config.http_config
        key: Any = ("buffer", id(buffer)) if buffer is not None else (http.api_url, http.api_token)
        with self._lock:
            if self._shut_down:
                return None
            self._ensure_thread()
            pipe = self._pipes.get(key)
            if pipe is None:
                pipe = Pipe(
                    key,
                    http,
                    config.queue_config,
                    config.termination_poll_interval,
                    wake=self.wake,
                    buffer=buffer,
                )
                self._pipes[key] = pipe
            pipe.owners.add(client)
        _install_sigterm_handler()
        return pipe

    def _ensure_thread(self) -> None:
        # Called with self._lock held.
        if self.running:
            return
        try:
            shared_tls_context()  # built here, never in a background thread (see there)
        except Exception:  # e.g. a bad SSL_CERT_FILE: the I/O threads meet and report it
            pass
        self._stop = False
        thread = threading.Thread(target=self._run, name="prefactor-exporter", daemon=True)
        thread.start()
        self._thread = thread

    def detach(self, client: ClientExport, pipe: Pipe) -> int:
        """Stop exporting for ``client``; how many of its pipe's operations were given up.
        A pipe is closed with its last client; until then, what the client left in it may
        still be delivered."""
        with self._lock:
            pipe.owners.discard(client)
            if pipe.owners:
                return 0
            if self._pipes.get(pipe.key) is pipe:
                del self._pipes[pipe.key]
            if not self.running:
                return pipe.close()
            done = threading.Event()
            result = [0]
            self._closing.append((pipe, done, result))
        self.wake()
        if self.in_export_thread() or not done.wait(_CLOSE_WAIT):
            return client.counters.pending
        return result[0]

    def pipes(self) -> list[Pipe]:
        """The open pipes."""
        with self._lock:
            return list(self._pipes.values())

    # -- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        wake = self._wake
        timeout: float | None = None
        while not self._stop:
            wake.wait(timeout)
            wake.clear()
            now = time.monotonic()
            with self._lock:
                pipes = list(self._pipes.values())
                closing, self._closing = self._closing, []
            next_at: float | None = None
            for pipe in pipes:
                try:
                    due = pipe.step(now)
                except Exception:  # a defect of ours: keep the thread alive
                    logger.exception("Prefactor export step failed")
                    due = now + 1.0
                if due is not None and (next_at is None or due < next_at):
                    next_at = due
            for pipe, done, result in closing:
                try:
                    result[0] = pipe.close()
                except Exception:
                    logger.exception("Prefactor export could not close a pipe")
                done.set()
            timeout = None if next_at is None else max(0.0, next_at - time.monotonic())

    # -- draining ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until no pipe has anything pending; False on timeout or from the export
        thread."""
        if self.in_export_thread():
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        for pipe in self.pipes():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            pipe.urgent(True)
            try:
                if not pipe.buffer.join(remaining):
                    return False
            finally:
                pipe.urgent(False)
        return True

    def _drain(self, pipes: list[Pipe], timeout: float) -> list[str]:
        """`flush` up to ``timeout``, or `UNREACHED_SHUTDOWN_TIMEOUT` once every API has
        failed without ever answering; what was never reached."""
        started = time.monotonic()
        while not self.in_export_thread():
            unreached = [why for why in map(never_reached, (p.sender for p in pipes)) if why]
            limit = timeout
            if unreached and len(unreached) == len(pipes):
                limit = min(timeout, UNREACHED_SHUTDOWN_TIMEOUT)
            left = started + limit - time.monotonic()
            if self.flush(max(0.0, min(left, _DRAIN_SLICE))) or left <= _DRAIN_SLICE:
                return unreached
        return []

    def shutdown(self, timeout: float | None = None) -> int:
        """Finish open runs, drain (up to ``timeout``, default the largest
        ``shutdown_timeout``), then stop. Logs and returns how many operations could not be
        delivered."""
        for hook in list(_shutdown_hooks):
            try:
                hook()
            except Exception:
                logger.debug("a shutdown hook failed", exc_info=True)
        with self._lock:
            self._shut_down = True
        pipes = self.pipes()
        owners = [owner for pipe in pipes for owner in pipe.owners]
        if timeout is None:
            timeout = max(
                (owner.config.queue_config.shutdown_timeout for owner in owners), default=0.0
            )
        unreached = self._drain(pipes, timeout)
        undelivered = 0
        for pipe in pipes:
            for owner in list(pipe.owners):
                undelivered += self.detach(owner, pipe)
                owner.closed = True
        if undelivered:
            counters = [owner.counters for owner in owners]
            errors = [e for e in (owner.stats().last_error for owner in owners) if e]
            logger.warning(
                "Prefactor: %d operation(s) could not be delivered before shutdown "
                "(sent=%d, failed=%d, dropped=%d)%s",
                undelivered,
                sum(c.sent for c in counters),
                sum(c.failed for c in counters),
                sum(c.dropped for c in counters),
                _causes(errors[-1:], unreached),
            )
        self._stop = True
        self.wake()
        thread = self._thread
        if thread is not None and thread.is_alive() and not self.in_export_thread():
            thread.join(timeout=2.0)
        return undelivered


def _causes(last_error: list[str], unreached: list[str]) -> str:
    """Why delivery failed, for the exit line: the APIs never reached (with their cause), else
    the last error; "" when neither is known."""
    if unreached:
        waited = f", so exit waited at most {UNREACHED_SHUTDOWN_TIMEOUT:g} s"
        return "".join(f"; {why}{waited}" for why in unreached)
    return "".join(f"; last error: {error.rstrip('.')}" for error in last_error)


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


# -- SIGTERM ------------------------------------------------------------------------------------

_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """Drain on SIGTERM (docker stop, Kubernetes, systemd) as at a normal exit.

    Installed only in the main thread, only when SIGTERM still has its default action (a
    handler of the application's own is left alone), and not when
    ``PREFACTOR_SIGTERM_HANDLER=0``. After the drain the default action is restored and the
    signal raised again, so the process ends by SIGTERM as it would have without us.
    """
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        if not env_bool(_ENV_SIGTERM, True):
            return
    except ValueError as exc:  # the exporter is starting on the agent's behalf: say, not raise
        logger.warning("%s; installing the SIGTERM handler", exc)
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or no signals here
        return
    _sigterm_installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    global _sigterm_installed
    try:
        _shutdown_at_exit()
    finally:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _sigterm_installed = False
        os.kill(os.getpid(), signal.SIGTERM)


def _after_fork_in_child() -> None:
    # The parent's export thread does not exist here; its pending work stays the parent's.
    global _exporter, _exporter_lock
    _exporter = None
    _exporter_lock = threading.Lock()


atexit.register(_shutdown_at_exit)
os.register_at_fork(after_in_child=_after_fork_in_child)
