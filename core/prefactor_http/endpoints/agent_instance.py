"""Agent instance endpoints: register, start, finish, get, record_quality."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from prefactor_http._wire import (
    iso_timestamp,
    key_for_call,
    parse_details,
    without_none,
)
from prefactor_http.models.agent_instance import AgentInstance
from prefactor_http.models.types import FinishStatus, InstancePurpose

if TYPE_CHECKING:
    from prefactor_http.client import PrefactorHttpClient

__all__ = ["AgentInstanceClient"]


def _instance_path(agent_instance_id: str, action: str | None = None) -> str:
    path = f"/api/v1/agent_instance/{quote(agent_instance_id, safe='')}"
    return f"{path}/{action}" if action else path


class AgentInstanceClient:
    """``client.agent_instances``: the lifecycle of one agent run."""

    def __init__(self, client: PrefactorHttpClient) -> None:
        self._client = client

    async def register(
        self,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any],
        agent_id: str | None = None,
        environment_id: str | None = None,
        id: str | None = None,
        idempotency_key: str | None = None,
        update_current_version: bool = True,
        purpose: InstancePurpose | None = None,
        external_identifier: str | None = None,
    ) -> AgentInstance:
        """Register a new (pending) instance: ``POST /api/v1/agent_instance/register``.

        The version dicts are sent as given. Leave ``agent_id``/``environment_id`` out with a
        deployment-scoped token.
        """
        idempotency_key = key_for_call(idempotency_key)
        body: dict[str, Any] = {
            "agent_version": dict(agent_version),
            "agent_schema_version": dict(agent_schema_version),
            "update_current_version": update_current_version,
        }
        body.update(
            without_none(
                {
                    "agent_id": agent_id,
                    "environment_id": environment_id,
                    "id": id,
                    "idempotency_key": idempotency_key,
                    "purpose": purpose,
                    "external_identifier": external_identifier,
                }
            )
        )
        envelope = await self._client.request("POST", "/api/v1/agent_instance/register", json=body)
        return parse_details(envelope, AgentInstance, "agent_instances.register")

    async def start(
        self,
        agent_instance_id: str,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> AgentInstance:
        """Mark the instance started: ``POST /api/v1/agent_instance/{id}/start``."""
        idempotency_key = key_for_call(idempotency_key)
        body = without_none(
            {"timestamp": iso_timestamp(timestamp), "idempotency_key": idempotency_key}
        )
        envelope = await self._client.request(
            "POST", _instance_path(agent_instance_id, "start"), json=body
        )
        return parse_details(envelope, AgentInstance, "agent_instances.start")

    async def finish(
        self,
        agent_instance_id: str,
        status: FinishStatus | None = None,
        timestamp: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> AgentInstance:
        """Finish the instance: ``POST /api/v1/agent_instance/{id}/finish``.

        A finish on an instance that already ended is answered with HTTP 409
        (`PrefactorApiError` with ``status_code == 409``).
        """
        idempotency_key = key_for_call(idempotency_key)
        body = without_none(
            {
                "status": status,
                "timestamp": iso_timestamp(timestamp),
                "idempotency_key": idempotency_key,
            }
        )
        envelope = await self._client.request(
            "POST", _instance_path(agent_instance_id, "finish"), json=body
        )
        return parse_details(envelope, AgentInstance, "agent_instances.finish")

    async def get(self, agent_instance_id: str) -> AgentInstance:
        """Fetch the instance (with ``termination_reason``): ``GET /api/v1/agent_instance/{id}``."""
        envelope = await self._client.request("GET", _instance_path(agent_instance_id))
        return parse_details(envelope, AgentInstance, "agent_instances.get")

    async def record_quality(
        self,
        agent_instance_id: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> AgentInstance:
        """Store a quality payload under ``name`` (None removes it).

        ``POST /api/v1/agent_instance/{id}/record_quality``; ``payload`` is always sent.
        """
        idempotency_key = key_for_call(idempotency_key)
        body: dict[str, Any] = {
            "name": name,
            "payload": None if payload is None else dict(payload),
            "idempotency_key": idempotency_key,
        }
        envelope = await self._client.request(
            "POST", _instance_path(agent_instance_id, "record_quality"), json=body
        )
        return parse_details(envelope, AgentInstance, "agent_instances.record_quality")
