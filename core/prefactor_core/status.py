"""The finish status of work that ended with an exception, shared by the core and the adapters."""

from __future__ import annotations

import asyncio

from prefactor_http.models.types import FinishStatus

from .exceptions import PrefactorTerminatedError

__all__ = ["CANCELLATION", "FinishStatus", "exception_status"]

CANCELLATION: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    GeneratorExit,
    KeyboardInterrupt,
    SystemExit,
)
"""Exceptions that mean "stopped from outside", recorded as ``cancelled``: a clean shutdown
(``sys.exit`` from a signal handler, Ctrl-C) cancels the work in flight, it does not fail it."""


def exception_status(exc: BaseException | None) -> FinishStatus:
    """``complete`` without an exception, ``cancelled`` for :data:`CANCELLATION` (and a
    platform termination), else ``failed``."""
    if exc is None:
        return "complete"
    if isinstance(exc, (*CANCELLATION, PrefactorTerminatedError)):
        return "cancelled"
    return "failed"
