"""Agent span models.

`AgentSpan` is what the endpoints return (lenient). Compatibility with the published
``prefactor-http`` 0.4: `CreateAgentSpanRequest` and `FinishSpanRequest` describe the request
bodies; the endpoint clients take keyword arguments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from prefactor_http.models.base import Lenient, ResponseModel
from prefactor_http.models.types import AgentStatus, FinishStatus

__all__ = ["AgentSpan", "CreateAgentSpanRequest", "FinishSpanRequest"]


class AgentSpan(ResponseModel):
    """One span of an instance. Only ``id`` and ``status`` are required from the server."""

    id: str
    status: str
    type: Lenient[str] = None
    agent_instance_id: Lenient[str] = None
    schema_name: Lenient[str] = None
    schema_title: Lenient[str] = None
    parent_span_id: Lenient[str] = None
    account_id: Lenient[str] = None
    agent_id: Lenient[str] = None
    payload: Lenient[dict[str, Any]] = None
    result_payload: Lenient[dict[str, Any]] = None
    summary: Lenient[str] = None
    started_at: Lenient[datetime] = None
    finished_at: Lenient[datetime] = None
    inserted_at: Lenient[datetime] = None
    updated_at: Lenient[datetime] = None


# -- request models kept for the published prefactor-http 0.4 -------------------------------


class CreateAgentSpanRequest(BaseModel):
    """``details`` of ``POST /api/v1/agent_spans``; times are ISO-8601 strings."""

    agent_instance_id: str
    schema_name: str
    status: AgentStatus
    payload: dict[str, Any] = Field(default_factory=dict)
    result_payload: dict[str, Any] | None = None
    id: str | None = None
    parent_span_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    idempotency_key: str | None = None


class FinishSpanRequest(BaseModel):
    """Body of ``POST /api/v1/agent_spans/{id}/finish``."""

    status: FinishStatus | None = None
    result_payload: dict[str, Any] | None = None
    timestamp: str | None = None
    idempotency_key: str | None = None
