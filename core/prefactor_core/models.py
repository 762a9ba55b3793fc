"""Plain records of instances and spans as the core knows them locally."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prefactor_core.utils import utc_now

__all__ = ["AgentInstance", "Span"]


@dataclass
class AgentInstance:
    """An agent instance (one run) as known locally."""

    id: str
    agent_id: str | None = None
    status: str = "pending"
    purpose: str | None = None
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    quality_payloads: dict[str, Any] = field(default_factory=dict)


@dataclass
class Span:
    """A span as known locally (only while it is open)."""

    id: str
    instance_id: str
    schema_name: str
    parent_span_id: str | None = None
    status: str = "pending"
    payload: Any = None
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
