"""Agent instance response model."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefactor_http.models.base import Lenient, ResponseModel

__all__ = ["AgentInstance", "AgentInstanceSpanCounts"]


class AgentInstanceSpanCounts(ResponseModel):
    """Span totals of an instance; missing counts read as 0."""

    total: int = 0
    pending: int = 0
    active: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    finished: int = 0


class AgentInstance(ResponseModel):
    """One run of an agent. Only ``id`` and ``status`` are required from the server."""

    id: str
    status: str
    type: Lenient[str] = None
    account_id: Lenient[str] = None
    agent_id: Lenient[str] = None
    agent_version_id: Lenient[str] = None
    environment_id: Lenient[str] = None
    agent_deployment_id: Lenient[str] = None
    purpose: Lenient[str] = None
    external_identifier: Lenient[str] = None
    termination_reason: Lenient[str] = None
    started_at: Lenient[datetime] = None
    finished_at: Lenient[datetime] = None
    inserted_at: Lenient[datetime] = None
    updated_at: Lenient[datetime] = None
    span_counts: Lenient[AgentInstanceSpanCounts] = None
    quality_payloads: Lenient[dict[str, Any]] = None
    quality_summaries: Lenient[dict[str, Any]] = None
