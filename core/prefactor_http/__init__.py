"""Typed async client for the Prefactor REST API.

```python
from prefactor_http import HttpClientConfig, PrefactorHttpClient

async with PrefactorHttpClient(HttpClientConfig.from_env()) as client:
    await client.validate_token()
    instance = await client.agent_instances.register(agent_version, agent_schema_version)
```

Every name the published ``prefactor-http`` 0.4 exported from here is exported too (the
request models among them are kept for compatibility).
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
    is_permanent_http_error,
    is_transient_error,
    is_transient_http_error,
)
from prefactor_http.models import (
    ActionProfile,
    Agent,
    AgentAvailableActions,
    AgentForCreate,
    AgentForUpdate,
    AgentInstance,
    AgentInstanceCounts,
    AgentInstanceRecordQuality,
    AgentInstanceSpanCounts,
    AgentLifecycleStatus,
    AgentSchemaVersionForRegister,
    AgentSpan,
    AgentStatus,
    AgentSummary,
    AgentVersionForRegister,
    ApiResponse,
    BulkItem,
    BulkOutput,
    BulkRequest,
    BulkResponse,
    DataCategories,
    DataRisk,
    FinishInstanceRequest,
    FinishStatus,
    InstancePurpose,
    ListResponse,
    Pagination,
    QualitySchemaDetails,
    QualitySchemaForCreate,
    RuntimeEnvironment,
    Sorting,
    SpanTypeSchemaForCreate,
)
from prefactor_http.retry import RetryAttempt, RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_SDK_HEADER",
    "ActionProfile",
    "Agent",
    "AgentAvailableActions",
    "AgentClient",
    "AgentForCreate",
    "AgentForUpdate",
    "AgentInstance",
    "AgentInstanceClient",
    "AgentInstanceCounts",
    "AgentInstanceRecordQuality",
    "AgentInstanceSpanCounts",
    "AgentLifecycleStatus",
    "AgentSchemaVersionForRegister",
    "AgentSpan",
    "AgentSpanClient",
    "AgentStatus",
    "AgentSummary",
    "AgentVersionForRegister",
    "ApiResponse",
    "BulkClient",
    "BulkItem",
    "BulkOutput",
    "BulkRequest",
    "BulkResponse",
    "DataCategories",
    "DataRisk",
    "FinishInstanceRequest",
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
    "QualitySchemaDetails",
    "QualitySchemaForCreate",
    "RetryAttempt",
    "RetryPolicy",
    "RuntimeEnvironment",
    "Sorting",
    "SpanTypeSchemaForCreate",
    "__version__",
    "is_permanent_http_error",
    "is_transient_error",
    "is_transient_http_error",
    "parse_retry_after",
]
