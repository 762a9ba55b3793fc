"""Framework-agnostic tracing core for Prefactor.

```python
from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig

async with PrefactorCoreClient(PrefactorCoreConfig.from_env()) as client:
    async with client.create_agent_instance(agent_version={"name": "my-agent"}) as instance:
        await instance.start()
        async with instance.span("agent:llm") as span:
            span.set_payload({"model": "gpt-4"})
```

Nothing on the agent's path waits on the network: ids are made here, operations go into a
bounded buffer, and one background thread exports them in order.
"""

from prefactor_core._version import __version__
from prefactor_core.client import PrefactorCoreClient
from prefactor_core.config import DropPolicy, PrefactorCoreConfig, QueueConfig
from prefactor_core.context_stack import SpanContextStack
from prefactor_core.exceptions import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    InstanceNotFoundError,
    OperationError,
    PrefactorCoreError,
    PrefactorTelemetryFailureError,
    PrefactorTerminatedError,
    SpanNotFoundError,
)
from prefactor_core.export.stats import ExportStats
from prefactor_core.export.thread import flush_all
from prefactor_core.managers.agent_instance import AgentInstanceHandle
from prefactor_core.models import AgentInstance, Span
from prefactor_core.operations import Operation, OperationType
from prefactor_core.payloads import PayloadPolicy
from prefactor_core.queue import InMemoryQueue, Queue, QueueClosedError, TaskExecutor
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_core.span_context import SpanContext
from prefactor_core.tracer import Tracer, current_instance_id
from prefactor_core.utils import (
    build_runtime_environment,
    generate_idempotency_key,
    validate_idempotency_key,
    warn_missing_adaptor_config,
)

__all__ = [
    "AgentInstance",
    "AgentInstanceHandle",
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "DropPolicy",
    "ExportStats",
    "InMemoryQueue",
    "InstanceNotFoundError",
    "Operation",
    "OperationError",
    "OperationType",
    "PayloadPolicy",
    "PrefactorCoreClient",
    "PrefactorCoreConfig",
    "PrefactorCoreError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "Queue",
    "QueueClosedError",
    "QueueConfig",
    "SchemaRegistry",
    "Span",
    "SpanContext",
    "SpanContextStack",
    "SpanNotFoundError",
    "TaskExecutor",
    "Tracer",
    "__version__",
    "build_runtime_environment",
    "current_instance_id",
    "flush_all",
    "generate_idempotency_key",
    "validate_idempotency_key",
    "warn_missing_adaptor_config",
]
