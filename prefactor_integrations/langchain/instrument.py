"""Process-wide tracing of every LangChain run through langchain-core's configure hook."""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from typing import Any, cast

from langchain_core.tracers.context import register_configure_hook

from .._shared.config import env_flag
from .handler import PrefactorCallbackHandler

__all__ = ["ENV_TRACING", "instrument", "instrumented_handler", "uninstrument"]

ENV_TRACING = "PREFACTOR_TRACING"

logger = logging.getLogger("prefactor_integrations.langchain")


class _HandlerSlot:
    """What langchain-core's configure hook reads: ``get()`` -> the handler to add, or None.

    A real ``ContextVar`` would not do: a value set in one thread is invisible in threads the
    user starts later (a plain ``ThreadPoolExecutor``), so the slot is process-wide instead.
    ``get()`` runs on every callback-manager set-up of every run, traced or not, so
    ``PREFACTOR_TRACING`` is read once here (and again by :func:`instrument`), never per call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.handler: PrefactorCallbackHandler | None = None
        self.disabled = False
        self.env_enabled = _env_tracing()
        self.env_handler: PrefactorCallbackHandler | None = None
        self.env_failed = False

    def get(self) -> PrefactorCallbackHandler | None:
        handler = self.handler
        if handler is not None or self.disabled or not self.env_enabled:
            return handler
        return self._from_env()

    def _from_env(self) -> PrefactorCallbackHandler | None:
        with self._lock:
            if self.env_handler is None and not self.env_failed:
                try:
                    self.env_handler = PrefactorCallbackHandler()
                except Exception as exc:  # misconfigured: say so once, never break the agent
                    self.env_failed = True
                    logger.warning("%s is set but tracing cannot start: %s", ENV_TRACING, exc)
            return self.env_handler


def _env_tracing() -> bool:
    """``PREFACTOR_TRACING`` at import: a bad value is said once and leaves tracing off, since
    an import must not break the application."""
    try:
        return env_flag(ENV_TRACING)
    except ValueError as exc:
        logger.warning("%s; tracing stays off", exc)
        return False


_slot = _HandlerSlot()
register_configure_hook(
    cast("ContextVar[Any]", _slot),
    inheritable=True,
    handle_class=PrefactorCallbackHandler,
)


def instrument(
    handler: PrefactorCallbackHandler | None = None, **handler_kwargs: Any
) -> PrefactorCallbackHandler:
    """Trace every LangChain run in this process; returns the handler used.

    ``handler`` (or a new ``PrefactorCallbackHandler(**handler_kwargs)``) is added to each run's
    callbacks by langchain-core, in every thread and task. A run that already carries a
    ``PrefactorCallbackHandler`` explicitly keeps only that one, so nothing is traced twice.
    Calling it again replaces the handler.
    """
    if handler is None:
        handler = PrefactorCallbackHandler(**handler_kwargs)
    elif handler_kwargs:
        raise TypeError("pass either a handler or handler keyword arguments, not both")
    env_enabled = env_flag(ENV_TRACING)
    with _slot._lock:
        _slot.handler = handler
        _slot.disabled = False
        _slot.env_enabled = env_enabled
    return handler


def uninstrument() -> None:
    """Stop adding a handler to LangChain runs (including one enabled by ``PREFACTOR_TRACING``).

    Runs already under way keep their handler until they end.
    """
    with _slot._lock:
        _slot.handler = None
        _slot.disabled = True


def instrumented_handler() -> PrefactorCallbackHandler | None:
    """The handler that :func:`instrument` (or ``PREFACTOR_TRACING``) adds to runs, if any."""
    return _slot.get()
