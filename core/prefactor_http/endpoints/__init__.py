"""Endpoint groups of `PrefactorHttpClient`."""

from __future__ import annotations

from prefactor_http.endpoints.agent_instance import AgentInstanceClient
from prefactor_http.endpoints.agent_spans import AgentSpanClient
from prefactor_http.endpoints.agents import AgentClient
from prefactor_http.endpoints.bulk import BulkClient

__all__ = ["AgentClient", "AgentInstanceClient", "AgentSpanClient", "BulkClient"]
