"""The finish status of a span whose run ended with an exception, shared by the adapters."""

from __future__ import annotations

from collections.abc import Container

from prefactor_core.status import CANCELLATION, FinishStatus, exception_status

__all__ = ["CANCELLATION", "FinishStatus", "is_cancellation", "status_for"]


def is_cancellation(err: BaseException, cancel_names: Container[str] = ()) -> bool:
    """True if ``err`` stopped the run from outside: :data:`CANCELLATION`, a platform
    termination, or an exception class named in ``cancel_names``."""
    return exception_status(err) == "cancelled" or type(err).__name__ in cancel_names


def status_for(
    err: BaseException | None,
    *,
    control_flow: tuple[type[BaseException], ...] = (),
    control_flow_names: Container[str] = (),
    cancel_names: Container[str] = (),
) -> FinishStatus:
    """``complete`` for a framework's control-flow exception (by type or class name),
    ``cancelled`` for a cancellation (:func:`is_cancellation`), else ``failed``.

    ``None`` (a run dropped without an exception) is ``failed``.
    """
    if err is None:
        return "failed"
    if isinstance(err, control_flow) or type(err).__name__ in control_flow_names:
        return "complete"
    if is_cancellation(err, cancel_names):
        return "cancelled"
    return "failed"
