"""Keep langchain-core from reporting a termination as a failing callback.

langchain-core logs ``Error in <Handler>.<event> callback: <exception>`` for every exception a
callback raises, before it re-raises the exception for handlers with ``raise_error`` set. A
`PrefactorTerminatedError` is no failure of the callback: it is the one exception tracing raises
on purpose, and it reaches the caller of ``invoke``. This filter drops exactly that line.
"""

from __future__ import annotations

import logging

__all__ = ["install"]

_MANAGER_LOGGER = "langchain_core.callbacks.manager"
_CALLBACK_ERROR = "Error in %s.%s callback: %s"
_TERMINATED = "PrefactorTerminatedError("


class _TerminationIsNotACallbackError(logging.Filter):
    """Drops langchain-core's callback-error line when the error is a termination."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            record.msg == _CALLBACK_ERROR
            and isinstance(args, tuple)
            and len(args) == 3
            and isinstance(args[2], str)
            and args[2].startswith(_TERMINATED)
        )


_FILTER = _TerminationIsNotACallbackError()


def install() -> None:
    """Add the filter to langchain-core's callback manager logger (once)."""
    logger = logging.getLogger(_MANAGER_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
