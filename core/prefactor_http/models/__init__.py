"""Request and response models of the Prefactor API (lenient on responses).

The request models (``...ForRegister``, ``...ForCreate``, ``...Request``, `DataRisk`) and
`ApiResponse` keep the published ``prefactor-http`` 0.4 names for compatibility; the endpoint
clients themselves take plain mappings and keyword arguments.
"""

from __future__ import annotations

from prefactor_http.models.agent import (
    Agent,
    AgentAvailableActions,
    AgentForCreate,
    AgentForUpdate,
    AgentInstanceCounts,
    AgentSummary,
)
from prefactor_http.models.agent_instance import (
    ActionProfile,
    AgentInstance,
    AgentInstanceRecordQuality,
    AgentInstanceSpanCounts,
    AgentSchemaVersionForRegister,
    AgentVersionForRegister,
    DataCategories,
    DataRisk,
    FinishInstanceRequest,
    QualitySchemaDetails,
    QualitySchemaForCreate,
    RuntimeEnvironment,
    SpanTypeSchemaForCreate,
)
from prefactor_http.models.agent_span import AgentSpan
from prefactor_http.models.base import ApiResponse, ListResponse, Pagination, Sorting
from prefactor_http.models.bulk import BulkItem, BulkOutput, BulkRequest, BulkResponse
from prefactor_http.models.types import (
    AgentLifecycleStatus,
    AgentStatus,
    FinishStatus,
    InstancePurpose,
)

__all__ = [
    "ActionProfile",
    "Agent",
    "AgentAvailableActions",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstance",
    "AgentInstanceCounts",
    "AgentInstanceRecordQuality",
    "AgentInstanceSpanCounts",
    "AgentLifecycleStatus",
    "AgentSchemaVersionForRegister",
    "AgentSpan",
    "AgentStatus",
    "AgentSummary",
    "AgentVersionForRegister",
    "ApiResponse",
    "BulkItem",
    "BulkOutput",
    "BulkRequest",
    "BulkResponse",
    "DataCategories",
    "DataRisk",
    "FinishInstanceRequest",
    "FinishStatus",
    "InstancePurpose",
    "ListResponse",
    "Pagination",
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RuntimeEnvironment",
    "Sorting",
    "SpanTypeSchemaForCreate",
]
