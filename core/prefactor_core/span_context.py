"""`SpanContext`: what ``span()`` yields, and the ``async with`` scope that manages it."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prefactor_core.context_stack import SpanContextStack
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.status import exception_status

if TYPE_CHECKING:
    from prefactor_core.managers.span import SpanManager

__all__ = ["SpanContext", "SpanScope", "error_info"]

logger = logging.getLogger("prefactor_core")


def error_info(exc: BaseException) -> dict[str, str]:
    """``{error_type, message, stacktrace}`` of an exception."""
    return {
        "error_type": type(exc).__name__,
        "message": str(exc),
        "stacktrace": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


class SpanContext:
    """An open span: set its payload and result, then complete, fail or cancel it.

    Its create is held back until the payload is final (the first child span, `start`, or the
    finish), so `set_payload` works until then; a span that ends before anything else happens
    goes out as one call.
    """

    def __init__(
        self,
        span_id: str,
        span_manager: SpanManager,
        default_payload: Mapping[str, Any] | None = None,
    ) -> None:
        self._id = span_id
        self._manager = span_manager
        self._result: dict[str, Any] = {}
        self._status = "complete"
        self._finished = False
        if default_payload:
            self.set_payload(default_payload)

    @property
    def id(self) -> str:
        """The span id (final from the start: made on the client)."""
        return self._id

    @property
    def status(self) -> str:
        """The status the span finishes (or finished) with."""
        return self._status

    @property
    def is_finished(self) -> bool:
        """Whether the span was finished."""
        return self._finished

    def set_payload(self, payload: Mapping[str, Any]) -> None:
        """Merge ``payload`` into the span's params (before its create was sent)."""
        if not isinstance(payload, Mapping):
            raise TypeError("payload must be a mapping")
        if not self._manager.set_payload(self._id, dict(payload)):
            logger.warning(
                "span %s was already sent; set_payload() after its first child, start() or "
                "finish has no effect",
                self._id,
            )

    def set_result(self, result: Mapping[str, Any]) -> None:
        """Merge ``result`` into the result sent when the span finishes."""
        if not isinstance(result, Mapping):
            raise TypeError("result must be a mapping")
        self._result.update(result)

    async def start(
        self, payload: Mapping[str, Any] | None = None, started_at: datetime | None = None
    ) -> None:
        """Send the span's create now (it is otherwise sent when needed)."""
        if payload:
            self.set_payload(payload)
        self._manager.send(self._id)

    async def complete(
        self, result: Mapping[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish as ``complete`` (merging ``result``)."""
        self._finish_now("complete", result, timestamp)

    async def fail(
        self, result: Mapping[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish as ``failed`` (merging ``result``)."""
        self._finish_now("failed", result, timestamp)

    async def cancel(self, timestamp: datetime | None = None) -> None:
        """Finish as ``cancelled``."""
        self._finish_now("cancelled", None, timestamp)

    async def finish(self, timestamp: datetime | None = None) -> None:
        """Finish with the last status set (``complete`` by default); later calls do nothing."""
        self._finish_now(self._status, None, timestamp)

    def _finish_now(
        self,
        status: str,
        result: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        if self._finished:
            return
        if result:
            self.set_result(result)
        self._manager.finish_now(self._id, self._result or None, status, timestamp)
        self._status = status
        self._finished = True

    def _record_exception(self, exc: BaseException) -> None:
        self._finish_now(exception_status(exc), error_info(exc))


class SpanScope:
    """``async with`` scope of a span: it is the current span inside, and it is finished on
    exit - ``failed`` with ``{error_type, message, stacktrace}`` when the body raised
    (``cancelled`` for cancellation); the exception propagates unchanged."""

    def __init__(
        self,
        manager: SpanManager,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None,
        payload: Mapping[str, Any] | None,
        started_at: datetime | None,
        policy: PayloadPolicy | None,
    ) -> None:
        self._manager = manager
        self._args = (instance_id, schema_name, parent_span_id, payload, started_at, policy)
        self._context: SpanContext | None = None

    async def __aenter__(self) -> SpanContext:
        instance_id, schema_name, parent, payload, started_at, policy = self._args
        span_id = self._manager.prepare(
            instance_id, schema_name, parent, payload, started_at=started_at, policy=policy
        )
        self._context = SpanContext(span_id, self._manager)
        return self._context

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context = self._context
        if context is None:
            return
        SpanContextStack.remove(context.id)
        if exc is not None:
            context._record_exception(exc)
        else:
            context._finish_now(context.status)
