"""Agent models: responses (`Agent`, `AgentSummary`) and request details."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from prefactor_http.models.base import Lenient, ResponseModel

__all__ = [
    "Agent",
    "AgentAvailableActions",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstanceCounts",
    "AgentSummary",
]


class AgentInstanceCounts(ResponseModel):
    """Instance totals of an agent; missing counts read as 0."""

    total: int = 0
    pending: int = 0
    active: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    terminated: int = 0
    finished: int = 0


class AgentAvailableActions(ResponseModel):
    """Which lifecycle actions the agent currently allows."""

    update: bool = False
    retire: bool = False
    reinstate: bool = False
    delete: bool = False


class AgentSummary(ResponseModel):
    """An agent as listed. Only ``id`` and ``status`` are required from the server."""

    id: str
    status: str
    type: Lenient[str] = None
    name: Lenient[str] = None
    description: Lenient[str] = None
    external_identifier: Lenient[str] = None
    owner_person_id: Lenient[str] = None
    team_id: Lenient[str] = None
    available_actions: Lenient[AgentAvailableActions] = None
    inserted_at: Lenient[datetime] = None
    updated_at: Lenient[datetime] = None


class Agent(AgentSummary):
    """An agent in full."""

    risk_profile_id: Lenient[str] = None
    instance_counts: Lenient[AgentInstanceCounts] = None


class AgentForCreate(BaseModel):
    """Details of a new agent; None fields are left out of the request."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str | None = None
    external_identifier: str | None = None
    id: str | None = None
    owner_person_id: str | None = None
    risk_profile_id: str | None = None
    team_id: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON object sent as ``details``."""
        return self.model_dump(mode="json", exclude_none=True)


class AgentForUpdate(BaseModel):
    """Changes to an agent.

    Only the fields given when the model is built are sent. A field given as None is sent as
    ``null``, which clears it on the server; a field not given is left unchanged.
    """

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    description: str | None = None
    owner_person_id: str | None = None
    risk_profile_id: str | None = None
    team_id: str | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON object sent as ``details``: exactly the fields that were set."""
        return self.model_dump(mode="json", include=set(self.model_fields_set))
