"""The published ``prefactor-http`` 0.4 module path of `AgentClient` (kept for compatibility;
the client lives in `prefactor_http.endpoints.agents`)."""

from __future__ import annotations

from prefactor_http.endpoints.agents import AgentClient

__all__ = ["AgentClient"]
