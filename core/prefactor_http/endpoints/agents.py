"""Agent endpoints: create, get, update, list, show, retire, reinstate, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import ValidationError

from prefactor_http._wire import key_for_call, parse_details, validate_idempotency_key
from prefactor_http.exceptions import PrefactorResponseContractError
from prefactor_http.models.agent import Agent, AgentForCreate, AgentForUpdate, AgentSummary
from prefactor_http.models.base import ListResponse

if TYPE_CHECKING:
    from prefactor_http.client import PrefactorHttpClient

__all__ = ["AgentClient"]


def _agent_path(agent_id: str, action: str | None = None) -> str:
    path = f"/api/v1/agent/{quote(agent_id, safe='')}"
    return f"{path}/{action}" if action else path


class AgentClient:
    """``client.agents``: create and manage agents."""

    def __init__(self, client: PrefactorHttpClient) -> None:
        self._client = client

    async def create(
        self,
        details: AgentForCreate | Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Agent:
        """Create an agent: ``POST /api/v1/agent`` (None fields left out)."""
        idempotency_key = key_for_call(idempotency_key)
        model = details if isinstance(details, AgentForCreate) else AgentForCreate(**details)
        body: dict[str, Any] = {"details": model.to_body(), "idempotency_key": idempotency_key}
        envelope = await self._client.request("POST", "/api/v1/agent", json=body)
        return parse_details(envelope, Agent, "agents.create")

    async def get(self, agent_id: str) -> Agent:
        """Fetch an agent: ``GET /api/v1/agent/{id}``."""
        envelope = await self._client.request("GET", _agent_path(agent_id))
        return parse_details(envelope, Agent, "agents.get")

    async def update(
        self,
        agent_id: str,
        details: AgentForUpdate | Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Agent:
        """Change an agent: ``PUT /api/v1/agent/{id}``.

        Only the fields set on ``details`` are sent; a field set to None is sent as null and
        clears it.
        """
        validate_idempotency_key(idempotency_key)
        model = details if isinstance(details, AgentForUpdate) else AgentForUpdate(**details)
        body: dict[str, Any] = {"details": model.to_body()}
        if idempotency_key is not None:  # a PUT replays harmlessly: no key is made for it
            body["idempotency_key"] = idempotency_key
        envelope = await self._client.request("PUT", _agent_path(agent_id), json=body)
        return parse_details(envelope, Agent, "agents.update")

    async def list_agents(
        self,
        risk_profile_id: str | None = None,
        team_id: str | None = None,
        owner_person_id: str | None = None,
        sorting: str | None = None,
        offset: int | None = None,
        page_size: int | None = None,
    ) -> ListResponse[AgentSummary]:
        """List agents: ``GET /api/v1/agent``; ``sorting`` like ``name`` or ``-id``.

        ``page_size`` is 1-100. The summaries are in ``.summaries``.
        """
        params: dict[str, str | int | None] = {
            "risk_profile_id": risk_profile_id,
            "team_id": team_id,
            "owner_person_id": owner_person_id,
            "sorting": sorting,
            "pagination[offset]": offset,
            "pagination[page_size]": page_size,
        }
        envelope = await self._client.request("GET", "/api/v1/agent", params=params)
        try:
            return ListResponse[AgentSummary].model_validate(envelope)
        except ValidationError as exc:
            raise PrefactorResponseContractError(
                "Invalid response for agents.list_agents", cause=exc
            ) from exc

    async def show(
        self,
        *,
        agent_id: str | None = None,
        external_identifier: str | None = None,
        environment_id: str | None = None,
        include_counts: bool = False,
        include_risk_rollup: bool = False,
    ) -> Agent:
        """Look an agent up by exactly one of ``agent_id`` / ``external_identifier``.

        ``GET /api/v1/agent/show``.
        """
        if (agent_id is None) == (external_identifier is None):
            raise ValueError("agents.show needs exactly one of agent_id or external_identifier")
        params: dict[str, str | None] = {
            "agent_id": agent_id,
            "external_identifier": external_identifier,
            "environment_id": environment_id,
            "include_counts": "true" if include_counts else None,
            "include_risk_rollup": "true" if include_risk_rollup else None,
        }
        envelope = await self._client.request("GET", "/api/v1/agent/show", params=params)
        return parse_details(envelope, Agent, "agents.show")

    async def retire(self, agent_id: str, idempotency_key: str | None = None) -> Agent:
        """Retire an agent: ``POST /api/v1/agent/{id}/retire``."""
        return await self._lifecycle(
            "POST", _agent_path(agent_id, "retire"), idempotency_key, "agents.retire"
        )

    async def reinstate(self, agent_id: str, idempotency_key: str | None = None) -> Agent:
        """Reinstate a retired agent: ``POST /api/v1/agent/{id}/reinstate``."""
        return await self._lifecycle(
            "POST", _agent_path(agent_id, "reinstate"), idempotency_key, "agents.reinstate"
        )

    async def delete(self, agent_id: str, idempotency_key: str | None = None) -> Agent:
        """Delete an agent: ``DELETE /api/v1/agent/{id}``."""
        return await self._lifecycle(
            "DELETE", _agent_path(agent_id), idempotency_key, "agents.delete"
        )

    async def _lifecycle(
        self, method: str, path: str, idempotency_key: str | None, operation: str
    ) -> Agent:
        if method == "POST":
            idempotency_key = key_for_call(idempotency_key)
        else:  # a DELETE replays harmlessly: no key is made for it
            validate_idempotency_key(idempotency_key)
        body = None if idempotency_key is None else {"idempotency_key": idempotency_key}
        envelope = await self._client.request(method, path, json=body)
        return parse_details(envelope, Agent, operation)
