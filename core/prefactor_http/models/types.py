"""Literal types of the API's enumerations."""

from __future__ import annotations

from typing import Literal

__all__ = ["AgentLifecycleStatus", "AgentStatus", "FinishStatus", "InstancePurpose"]

AgentStatus = Literal["pending", "active", "complete", "failed", "cancelled", "terminated"]
"""Status of an agent instance or span."""

FinishStatus = Literal["complete", "failed", "cancelled"]
"""Statuses accepted by the finish endpoints."""

InstancePurpose = Literal["live", "smoke_test", "eval"]
"""Why an instance runs; the server defaults to ``live``."""

AgentLifecycleStatus = Literal["pending", "active", "dormant", "retired"]
"""Status of an agent (not of its instances)."""
