"""Typed async client for the Prefactor REST API.

```python
from prefactor_http import HttpClientConfig, PrefactorHttpClient

async with PrefactorHttpClient(HttpClientConfig.from_env()) as client:
    await client.validate_token()
    instance = await client.agent_instances.register(agent_version, agent_schema_version)
```
"""

from prefactor_http._version import __version__
from prefactor_http.client import DEFAULT_SDK_HEADER, PrefactorHttpClient
from prefactor_http.config import HttpClientConfig
from prefactor_http.endpoints import (
    AgentClient,
    AgentInstanceClient,
    AgentSpanClient,
    BulkClient,
)
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorHttpError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorValidationError,
    is_transient_error,
)
from prefactor_http.models import (
    Agent,
    AgentAvailableActions,
    AgentForCreate,
    AgentForUpdate,
    AgentInstance,
    AgentInstanceCounts,
    AgentInstanceSpanCounts,
    AgentLifecycleStatus,
    AgentSpan,
    AgentStatus,
    AgentSummary,
    BulkItem,
    BulkOutput,
    BulkResponse,
    FinishStatus,
    InstancePurpose,
    ListResponse,
    Pagination,
    Sorting,
)
from prefactor_http.retry import RetryAttempt, RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_SDK_HEADER",
    "Agent",
    "AgentAvailableActions",
    "AgentClient",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstance",
    "AgentInstanceClient",
    "AgentInstanceCounts",
    "AgentInstanceSpanCounts",
    "AgentLifecycleStatus",
    "AgentSpan",
    "AgentSpanClient",
    "AgentStatus",
    "AgentSummary",
    "BulkClient",
    "BulkItem",
    "BulkOutput",
    "BulkResponse",
    "FinishStatus",
    "HttpClientConfig",
    "InstancePurpose",
    "ListResponse",
    "Pagination",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorHttpClient",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorValidationError",
    "RetryAttempt",
    "RetryPolicy",
    "Sorting",
    "__version__",
    "is_transient_error",
    "parse_retry_after",
]
