"""`SpanManager`: the async span operations, as a thin layer over the `Tracer`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prefactor_core.context_stack import SpanContextStack
from prefactor_core.models import Span
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.tracer import Tracer

__all__ = ["SpanManager"]


class SpanManager:
    """Creates and finishes spans through ``tracer`` and keeps the context stack in step.

    Nothing here waits on the network. Only open spans are remembered.
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def prepare(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        *,
        started_at: datetime | None = None,
        policy: PayloadPolicy | None = None,
    ) -> str:
        """Open a span whose create is held back (see `SpanContext`) and make it current."""
        span_id = self.tracer.reserve_span(
            instance_id,
            schema_name,
            parent_span_id=parent_span_id,
            payload=payload,
            started_at=started_at,
            policy=policy,
        )
        SpanContextStack.push(span_id)
        return span_id

    async def start(
        self,
        span_id: str,
        payload: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Send a prepared span's create now; returns its id."""
        if payload:
            self.tracer.set_span_payload(span_id, dict(payload))
        self.tracer.send_span(span_id)
        return span_id

    async def create(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Any = None,
        span_id: str | None = None,
        started_at: datetime | None = None,
        *,
        policy: PayloadPolicy | None = None,
    ) -> str:
        """Queue a span's create, make it the current span, and return its (new) id."""
        new_id = self.tracer.create_span(
            instance_id,
            schema_name,
            parent_span_id=parent_span_id,
            payload=payload,
            started_at=started_at,
            policy=policy,
        )
        SpanContextStack.push(new_id)
        return new_id

    async def finish(
        self,
        span_id: str,
        result_payload: Any = None,
        status: str = "complete",
        idempotency_key: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Queue a span's finish and drop it from the current context's stack."""
        self.finish_now(span_id, result_payload, status, timestamp, idempotency_key)

    def finish_now(
        self,
        span_id: str,
        result_payload: Any = None,
        status: str = "complete",
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """`finish`, callable without awaiting."""
        self.tracer.finish_span(
            span_id,
            status=status,
            result_payload=result_payload,
            finished_at=timestamp,
            idempotency_key=idempotency_key,
        )
        SpanContextStack.remove(span_id)

    async def cancel_unstarted(self, span_id: str, timestamp: datetime | None = None) -> None:
        """Finish a span as ``cancelled``."""
        self.finish_now(span_id, None, "cancelled", timestamp)

    def set_payload(self, span_id: str, payload: Mapping[str, Any]) -> bool:
        """Merge into a held-back span's payload; False once it was sent."""
        return self.tracer.set_span_payload(span_id, payload)

    def send(self, span_id: str) -> None:
        """Send a held-back span's create now."""
        self.tracer.send_span(span_id)

    def get_span(self, span_id: str) -> Span | None:
        """A record of an open span, or None."""
        instance_id = self.tracer.instance_of(span_id)
        if instance_id is None:
            return None
        return Span(
            id=span_id,
            instance_id=instance_id,
            schema_name=self.tracer.schema_of(span_id) or "",
            parent_span_id=self.tracer.parent_of(span_id),
            status="active",
        )
