"""Errors of the tracing core.

Telemetry problems never raise into the caller: they are counted in ``stats()``. What does raise
is misuse at the API boundary (an unknown status, finishing a span id that was never issued,
using a client before ``initialize()``) and `PrefactorTerminatedError` where an adapter asks.
"""

from __future__ import annotations

__all__ = [
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "InstanceNotFoundError",
    "OperationError",
    "PrefactorCoreError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "SpanNotFoundError",
]


class PrefactorCoreError(Exception):
    """Base class of the core's errors."""


class ClientNotInitializedError(PrefactorCoreError):
    """The client was used before ``await client.initialize()``."""


class ClientAlreadyInitializedError(PrefactorCoreError):
    """``initialize()`` was called on a client that is already initialised."""


class OperationError(PrefactorCoreError):
    """An operation could not be carried out; ``operation_type`` names it."""

    def __init__(self, message: str, operation_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation_type = operation_type


class InstanceNotFoundError(PrefactorCoreError):
    """No agent instance with that id is known."""


class SpanNotFoundError(PrefactorCoreError, KeyError):
    """The span id was never issued by this process."""

    def __init__(self, span_id: str) -> None:
        super().__init__(span_id)
        self.span_id = span_id

    def __str__(self) -> str:
        return f"Unknown span id {self.span_id!r}: it was not created by this process"


class PrefactorTelemetryFailureError(PrefactorCoreError):
    """Export stopped for good (for example the API refused the token).

    It is reported through ``stats()`` (``error``), never raised into the agent.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: BaseException | None = None,
        operation_type: str | None = None,
        dropped_operations: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.operation_type = operation_type
        self.dropped_operations = dropped_operations


class PrefactorTerminatedError(PrefactorCoreError):
    """The platform terminated this agent instance; ``reason`` says why when it was given."""

    def __init__(self, reason: str | None = None, *, instance_id: str | None = None) -> None:
        message = "Agent instance terminated by Prefactor"
        if reason:
            message = f"{message}: {reason}"
        super().__init__(message)
        self.reason = reason
        self.instance_id = instance_id
