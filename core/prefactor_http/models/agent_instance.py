"""Agent instance models.

`AgentInstance` and `AgentInstanceSpanCounts` are what the endpoints return (lenient).

Compatibility with the published ``prefactor-http`` 0.4: the request models below
(`AgentVersionForRegister`, `AgentSchemaVersionForRegister`, `SpanTypeSchemaForCreate`,
`QualitySchemaForCreate`, `DataRisk`, `FinishInstanceRequest`, ...) keep code that builds
request bodies with them working. The endpoint clients take plain mappings; a model becomes
one with ``model.model_dump(by_alias=True, exclude_none=True)``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefactor_http.models.base import Lenient, ResponseModel
from prefactor_http.models.types import FinishStatus, InstancePurpose

__all__ = [
    "ActionProfile",
    "AgentInstance",
    "AgentInstanceRecordQuality",
    "AgentInstanceSpanCounts",
    "AgentSchemaVersionForRegister",
    "AgentVersionForRegister",
    "DataCategories",
    "DataRisk",
    "FinishInstanceRequest",
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RegisterAgentInstanceRequest",
    "RuntimeEnvironment",
    "SpanTypeSchemaForCreate",
    "TimestampRequest",
]


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


# -- request models kept for the published prefactor-http 0.4 -------------------------------

Permission = Literal["unknown", "allowed", "disallowed"]
Presence = Literal["unknown", "included", "excluded"]
Classification = Literal["unknown", "public", "internal", "confidential", "restricted", "secret"]


class ActionProfile(BaseModel):
    """Which kinds of action a span type performs; each ``unknown`` unless declared."""

    create_data: Permission = "unknown"
    read_data: Permission = "unknown"
    update_data: Permission = "unknown"
    destroy_data: Permission = "unknown"
    financial_transactions: Permission = "unknown"
    external_communication: Permission = "unknown"


class DataCategories(BaseModel):
    """Which categories of data a span's params or result hold; each ``unknown`` by default."""

    personal_identifiers: Presence = "unknown"
    contact_information: Presence = "unknown"
    financial_information: Presence = "unknown"
    health_and_medical: Presence = "unknown"
    criminal_justice: Presence = "unknown"
    authentication_and_secrets: Presence = "unknown"
    organisational_confidential: Presence = "unknown"
    minors_data: Presence = "unknown"
    location_and_tracking: Presence = "unknown"
    behavioural_and_inferred: Presence = "unknown"
    gdpr_racial_or_ethnic_origin: Presence = "unknown"
    gdpr_political_opinions: Presence = "unknown"
    gdpr_religious_or_philosophical_beliefs: Presence = "unknown"
    gdpr_trade_union_membership: Presence = "unknown"
    gdpr_genetic_data: Presence = "unknown"
    gdpr_biometric_for_identification: Presence = "unknown"
    gdpr_sex_life_or_sexual_orientation: Presence = "unknown"
    classification: Classification = "unknown"


class DataRisk(BaseModel):
    """The data risk declared for a span type or quality schema (extra keys kept)."""

    model_config = ConfigDict(extra="allow")

    action_profile: ActionProfile
    params_data_categories: DataCategories
    result_data_categories: DataCategories


class SpanTypeSchemaForCreate(BaseModel):
    """One entry of ``agent_schema_version.span_type_schemas``."""

    name: str
    params_schema: dict[str, Any]
    result_schema: dict[str, Any] | None = None
    title: str | None = None
    description: str | None = None
    template: str | None = None
    data_risk: DataRisk | None = None


class QualitySchemaForCreate(BaseModel):
    """One entry of ``agent_schema_version.quality_schemas`` (``schema`` in JSON)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    schema_: dict[str, Any] = Field(alias="schema")
    title: str | None = None
    description: str | None = None
    template: str | None = None
    data_risk: DataRisk | None = None


class QualitySchemaDetails(ResponseModel):
    """A quality schema as the API returns it inside a schema version."""

    name: str
    title: Lenient[str] = None
    description: Lenient[str] = None
    template: Lenient[str] = None
    data_risk: Lenient[DataRisk] = None
    schema_: Lenient[dict[str, Any]] = Field(default=None, alias="schema")
    schema_validation: Lenient[dict[str, Any]] = None


class AgentInstanceRecordQuality(BaseModel):
    """Body of ``record_quality``: a payload for ``name``, or None to remove it."""

    name: str
    payload: dict[str, Any] | None = None


class RuntimeEnvironment(BaseModel):
    """``agent_version.runtime_environment``: framework, SDK, OS and interpreter in use."""

    agent_sdk: list[str] | None = None
    os: str | None = None
    prefactor_sdk: list[str] | None = None
    runtime: str | None = None


class AgentVersionForRegister(BaseModel):
    """``agent_version`` of a registration."""

    name: str | None = None
    external_identifier: str | None = None
    description: str | None = None
    runtime_environment: RuntimeEnvironment | None = None


class AgentSchemaVersionForRegister(BaseModel):
    """``agent_schema_version`` of a registration."""

    external_identifier: str | None = None
    span_schemas: dict[str, dict[str, Any]] | None = None
    span_result_schemas: dict[str, dict[str, Any]] | None = None
    span_type_schemas: list[SpanTypeSchemaForCreate] | None = None
    quality_schemas: list[QualitySchemaForCreate] | None = None


class RegisterAgentInstanceRequest(BaseModel):
    """The whole body of ``POST /api/v1/agent_instance/register``."""

    agent_id: str | None = None
    environment_id: str | None = None
    agent_version: AgentVersionForRegister
    agent_schema_version: AgentSchemaVersionForRegister
    id: str | None = None
    external_identifier: str | None = None
    idempotency_key: str | None = None
    update_current_version: bool | None = None
    purpose: InstancePurpose | None = None


class TimestampRequest(BaseModel):
    """Body of ``start``: an optional ISO-8601 time and idempotency key."""

    timestamp: str | None = None
    idempotency_key: str | None = None


class FinishInstanceRequest(BaseModel):
    """Body of an instance ``finish``."""

    status: FinishStatus | None = None
    timestamp: str | None = None
    idempotency_key: str | None = None
