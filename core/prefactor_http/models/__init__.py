"""Request and response models of the Prefactor API (lenient on responses)."""

from __future__ import annotations

from prefactor_http.models.agent import (
    Agent,
    AgentAvailableActions,
    AgentForCreate,
    AgentForUpdate,
    AgentInstanceCounts,
    AgentSummary,
)
from prefactor_http.models.agent_instance import AgentInstance, AgentInstanceSpanCounts
from prefactor_http.models.agent_span import AgentSpan
from prefactor_http.models.base import ListResponse, Pagination, Sorting
from prefactor_http.models.bulk import BulkItem, BulkOutput, BulkResponse
from prefactor_http.models.types import (
    AgentLifecycleStatus,
    AgentStatus,
    FinishStatus,
    InstancePurpose,
)

__all__ = [
    "Agent",
    "AgentAvailableActions",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstance",
    "AgentInstanceCounts",
    "AgentInstanceSpanCounts",
    "AgentLifecycleStatus",
    "AgentSpan",
    "AgentStatus",
    "AgentSummary",
    "BulkItem",
    "BulkOutput",
    "BulkResponse",
    "FinishStatus",
    "InstancePurpose",
    "ListResponse",
    "Pagination",
    "Sorting",
]
