"""The published ``prefactor-http`` 0.4 module path of `AgentSpanClient` (kept for
compatibility; the client lives in `prefactor_http.endpoints.agent_spans`)."""

from __future__ import annotations

from prefactor_http.endpoints.agent_spans import AgentSpanClient

__all__ = ["AgentSpanClient"]
