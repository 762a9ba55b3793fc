"""Instance and span managers (async layers over the `Tracer`)."""

from prefactor_core.managers.agent_instance import (
    AgentInstanceHandle,
    AgentInstanceManager,
    InstanceCreation,
)
from prefactor_core.managers.span import SpanManager

__all__ = ["AgentInstanceHandle", "AgentInstanceManager", "InstanceCreation", "SpanManager"]
