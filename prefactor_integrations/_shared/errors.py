"""Error information in the shape the Prefactor UI reads, and counting of our own failures."""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

__all__ = ["InternalErrors", "error_info"]


def error_info(exc: BaseException) -> dict[str, str]:
    """Describe an exception as ``{"error_type", "message", "stacktrace"}``.

    ``error_type`` is the class name, ``message`` is ``str(exc)`` and ``stacktrace`` the
    formatted traceback (empty when the exception was never raised). Never raises.
    """
    try:
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        stack = ""
    try:
        message = str(exc)
    except Exception:
        message = repr(type(exc))
    return {"error_type": type(exc).__name__, "message": message, "stacktrace": stack}


class InternalErrors:
    """Thread-safe counter of errors an adapter swallowed so the agent never sees them.

    The first ``log_first`` errors of each (place, exception type) pair are logged at WARNING with
    their traceback, later ones at DEBUG, so a broken adapter is visible without flooding logs.
    """

    def __init__(self, logger: logging.Logger, *, log_first: int = 3) -> None:
        self._logger = logger
        self._log_first = log_first
        self._lock = threading.Lock()
        self._total = 0
        self._seen: dict[tuple[str, str], int] = {}

    @property
    def total(self) -> int:
        """How many errors were swallowed so far."""
        return self._total

    def by_place(self) -> dict[str, int]:
        """Counts per ``"place:ExceptionType"``."""
        with self._lock:
            return {f"{p}:{t}": n for (p, t), n in self._seen.items()}

    def record(self, place: str, exc: BaseException, **context: Any) -> None:
        """Count one swallowed error raised at ``place`` (e.g. ``"on_chain_start"``)."""
        key = (place, type(exc).__name__)
        with self._lock:
            self._total += 1
            n = self._seen.get(key, 0) + 1
            self._seen[key] = n
        level = logging.WARNING if n <= self._log_first else logging.DEBUG
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level,
                "Prefactor tracing error in %s (ignored, agent unaffected): %r %s",
                place,
                exc,
                context or "",
                exc_info=exc if n <= self._log_first else None,
            )
