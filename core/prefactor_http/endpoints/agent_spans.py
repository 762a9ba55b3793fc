"""Agent span endpoints: create and finish."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from prefactor_http._wire import (
    ControlSignalCallback,
    fire_control_signal,
    iso_timestamp,
    key_for_call,
    parse_details,
    without_none,
)
from prefactor_http.models.agent_span import AgentSpan
from prefactor_http.models.types import AgentStatus, FinishStatus

if TYPE_CHECKING:
    from prefactor_http.client import PrefactorHttpClient

__all__ = ["AgentSpanClient"]


class AgentSpanClient:
    """``client.agent_spans``: spans of an agent instance."""

    def __init__(self, client: PrefactorHttpClient) -> None:
        self._client = client

    async def create(
        self,
        agent_instance_id: str,
        schema_name: str,
        status: AgentStatus = "active",
        payload: Mapping[str, Any] | None = None,
        result_payload: Mapping[str, Any] | None = None,
        id: str | None = None,
        parent_span_id: str | None = None,
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        idempotency_key: str | None = None,
        control_signal_callback: ControlSignalCallback | None = None,
    ) -> AgentSpan:
        """Create a span: ``POST /api/v1/agent_spans`` with the fields under ``details``.

        A span already finished may be created in one call with a terminal ``status``,
        ``finished_at`` and ``result_payload``. The idempotency key is sent inside
        ``details`` and at the top level. ``control_signal_callback(reason)`` runs when the
        response asks to terminate the instance.
        """
        idempotency_key = key_for_call(idempotency_key)
        details = without_none(
            {
                "agent_instance_id": agent_instance_id,
                "schema_name": schema_name,
                "status": status,
                "payload": {} if payload is None else dict(payload),
                "result_payload": None if result_payload is None else dict(result_payload),
                "id": id,
                "parent_span_id": parent_span_id,
                "started_at": iso_timestamp(started_at),
                "finished_at": iso_timestamp(finished_at),
                "idempotency_key": idempotency_key,
            }
        )
        body: dict[str, Any] = {"details": details, "idempotency_key": idempotency_key}
        envelope = await self._client.request("POST", "/api/v1/agent_spans", json=body)
        span = parse_details(envelope, AgentSpan, "agent_spans.create")
        await fire_control_signal(envelope, control_signal_callback)
        return span

    async def finish(
        self,
        agent_span_id: str,
        status: FinishStatus | None = None,
        result_payload: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
        control_signal_callback: ControlSignalCallback | None = None,
    ) -> AgentSpan:
        """Finish a span: ``POST /api/v1/agent_spans/{id}/finish`` (None values left out)."""
        idempotency_key = key_for_call(idempotency_key)
        body = without_none(
            {
                "status": status,
                "result_payload": None if result_payload is None else dict(result_payload),
                "timestamp": iso_timestamp(timestamp),
                "idempotency_key": idempotency_key,
            }
        )
        envelope = await self._client.request(
            "POST", f"/api/v1/agent_spans/{quote(agent_span_id, safe='')}/finish", json=body
        )
        span = parse_details(envelope, AgentSpan, "agent_spans.finish")
        await fire_control_signal(envelope, control_signal_callback)
        return span
