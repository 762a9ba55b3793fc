"""Agent span response model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefactor_http.models.base import Lenient, ResponseModel

__all__ = ["AgentSpan"]


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
