"""`LookupExecutor`: where the export loop runs its blocking calls (host name lookups).

asyncio resolves the host name of every new connection in its loop's default executor. The
stock thread pool would make three things go wrong for an exporter that must never hold up
its process:

- its worker threads are joined when the interpreter exits, so one slow or stuck lookup
  would delay the exit past the shutdown timeout;
- once the interpreter is exiting it refuses new work, so the exit-time drain could not open
  a single connection;
- a process forked while a lookup runs inherits the C library's resolver locks held by a
  thread it does not have, and every lookup in the child then waits for ever.

So each call runs in a daemon thread of its own (in the calling thread once no new thread
may start), and ``os.fork()`` first waits, briefly, for the lookups under way to end.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["LookupExecutor"]

_T = TypeVar("_T")

_FORK_WAIT = 1.0  # seconds os.fork() may wait for lookups under way

_calls = threading.Condition()
_running = 0
_forking = False


def _begin() -> None:
    global _running
    with _calls:
        while _forking:
            _calls.wait()
        _running += 1


def _end() -> None:
    global _running
    with _calls:
        _running -= 1
        _calls.notify_all()


def _before_fork() -> None:
    global _forking
    with _calls:
        _forking = True
        _calls.wait_for(lambda: _running == 0, timeout=_FORK_WAIT)


def _after_fork_in_parent() -> None:
    global _forking
    with _calls:
        _forking = False
        _calls.notify_all()


def _after_fork_in_child() -> None:
    global _calls, _running, _forking
    _calls = threading.Condition()
    _running = 0
    _forking = False


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class LookupExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool in name only (asyncio requires one): see the module docstring."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="prefactor-export-lookup")

    def submit(
        self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            _begin()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                _end()

        try:
            threading.Thread(target=run, name="prefactor-export-lookup", daemon=True).start()
        except RuntimeError:  # the interpreter is exiting: no new threads
            run()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop: every call has a thread of its own."""
