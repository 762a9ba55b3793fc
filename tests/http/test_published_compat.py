"""Code written for the published prefactor-http 0.4 keeps working: its names, messages and
calling conventions."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from _http_support import AGENT_VERSION, SCHEMA_VERSION, ConfigFactory

from prefactor_http import (
    HttpClientConfig,
    PrefactorApiError,
    PrefactorHttpClient,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
)
from prefactor_local.server import LocalServer

# The public names of each module of the published prefactor-http 0.4.3 wheel.
PUBLISHED_NAMES: dict[str, list[str]] = {
    "prefactor_http": [
        "PrefactorHttpClient",
        "HttpClientConfig",
        "PrefactorHttpError",
        "PrefactorApiError",
        "PrefactorAuthError",
        "PrefactorClientError",
        "PrefactorNotFoundError",
        "PrefactorResponseContractError",
        "PrefactorRetryExhaustedError",
        "PrefactorValidationError",
        "AgentStatus",
        "FinishStatus",
        "InstancePurpose",
        "AgentInstance",
        "AgentInstanceRecordQuality",
        "AgentInstanceSpanCounts",
        "AgentVersionForRegister",
        "AgentSchemaVersionForRegister",
        "FinishInstanceRequest",
        "QualitySchemaDetails",
        "QualitySchemaForCreate",
        "RuntimeEnvironment",
        "SpanTypeSchemaForCreate",
        "AgentSpan",
        "ApiResponse",
        "BulkItem",
        "BulkRequest",
        "BulkResponse",
        "BulkOutput",
        "__version__",
    ],
    "prefactor_http._version": ["PACKAGE_NAME", "PACKAGE_VERSION", "__version__"],
    "prefactor_http.client": ["DEFAULT_SDK_HEADER", "PrefactorHttpClient"],
    "prefactor_http.config": ["HttpClientConfig"],
    "prefactor_http.endpoints": [
        "AgentClient",
        "AgentInstanceClient",
        "AgentSpanClient",
        "BulkClient",
    ],
    "prefactor_http.endpoints.agent": ["AgentClient"],
    "prefactor_http.endpoints.agent_instance": ["AgentInstanceClient"],
    "prefactor_http.endpoints.agent_span": ["AgentSpanClient"],
    "prefactor_http.endpoints.bulk": ["BulkClient"],
    "prefactor_http.exceptions": [
        "PrefactorHttpError",
        "PrefactorApiError",
        "PrefactorAuthError",
        "PrefactorNotFoundError",
        "PrefactorValidationError",
        "PrefactorRetryExhaustedError",
        "PrefactorClientError",
        "PrefactorResponseContractError",
        "is_transient_http_error",
        "is_permanent_http_error",
    ],
    "prefactor_http.models": [
        "AgentStatus",
        "FinishStatus",
        "InstancePurpose",
        "Agent",
        "AgentAvailableActions",
        "AgentForCreate",
        "AgentForUpdate",
        "AgentInstanceCounts",
        "AgentSummary",
        "AgentInstance",
        "AgentInstanceRecordQuality",
        "AgentInstanceSpanCounts",
        "AgentVersionForRegister",
        "AgentSchemaVersionForRegister",
        "FinishInstanceRequest",
        "QualitySchemaDetails",
        "QualitySchemaForCreate",
        "RuntimeEnvironment",
        "SpanTypeSchemaForCreate",
        "ActionProfile",
        "DataCategories",
        "DataRisk",
        "AgentSpan",
        "BulkItem",
        "BulkRequest",
        "BulkResponse",
        "BulkOutput",
        "ApiResponse",
    ],
    "prefactor_http.models.agent": [
        "Agent",
        "AgentAvailableActions",
        "AgentForCreate",
        "AgentForUpdate",
        "AgentInstanceCounts",
        "AgentSummary",
    ],
    "prefactor_http.models.agent_instance": [
        "ActionProfile",
        "DataCategories",
        "DataRisk",
        "SpanTypeSchemaForCreate",
        "QualitySchemaForCreate",
        "QualitySchemaDetails",
        "AgentInstanceRecordQuality",
        "AgentInstanceSpanCounts",
        "RuntimeEnvironment",
        "AgentVersionForRegister",
        "AgentSchemaVersionForRegister",
        "RegisterAgentInstanceRequest",
        "TimestampRequest",
        "FinishInstanceRequest",
        "AgentInstance",
    ],
    "prefactor_http.models.agent_span": [
        "CreateAgentSpanRequest",
        "FinishSpanRequest",
        "AgentSpan",
    ],
    "prefactor_http.models.base": [
        "ApiResponse",
        "ApiError",
        "DetailedApiError",
        "PaginationOutput",
        "Sorting",
        "ListResponse",
    ],
    "prefactor_http.models.bulk": ["BulkItem", "BulkRequest", "BulkOutput", "BulkResponse"],
    "prefactor_http.models.types": ["AgentStatus", "FinishStatus", "InstancePurpose"],
    "prefactor_http.retry": ["RetryHandler"],
}

CASES = [(module, name) for module, names in PUBLISHED_NAMES.items() for name in names]


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}.{n}" for m, n in CASES])
def test_every_published_name_imports_from_its_published_module(module: str, name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {module} import {name}", namespace)
    assert namespace[name] is getattr(importlib.import_module(module), name)


def test_the_published_package_names_and_versions() -> None:
    from prefactor_core import _version as core_version
    from prefactor_http import _version as http_version

    assert (http_version.PACKAGE_NAME, core_version.PACKAGE_NAME) == (
        "prefactor-http",
        "prefactor-core",
    )
    assert http_version.PACKAGE_VERSION == core_version.PACKAGE_VERSION == http_version.__version__


@pytest.mark.parametrize(
    ("overrides", "published"),
    [
        ({"max_retries": -1}, "max_retries must be non-negative"),
        ({"initial_retry_delay": 0}, "initial_retry_delay must be positive"),
        ({"request_timeout": 0}, "request_timeout must be positive"),
        ({"connect_timeout": -1}, "connect_timeout must be positive"),
        ({"max_retry_delay": 0}, "max_retry_delay must be positive"),
        (
            {"initial_retry_delay": 5.0, "max_retry_delay": 1.0},
            "initial_retry_delay must be <= max_retry_delay",
        ),
        ({"retry_multiplier": 0.5}, "retry_multiplier must be >= 1"),
        ({"api_url": ""}, "api_url is required"),
        ({"api_token": ""}, "api_token is required"),
    ],
)
def test_config_errors_start_with_the_published_wording(
    overrides: dict[str, Any], published: str
) -> None:
    values: dict[str, Any] = {"api_url": "https://api.example.test", "api_token": "token"}
    values.update(overrides)
    with pytest.raises(ValueError, match=f"^{published}") as caught:
        HttpClientConfig(**values)
    bad = next(iter(overrides.values()))
    if bad != "":
        assert str(bad) in str(caught.value), "our message still shows the bad value"


def test_request_models_build_the_bodies_the_api_takes() -> None:
    from prefactor_http import (
        AgentInstanceRecordQuality,
        AgentSchemaVersionForRegister,
        AgentVersionForRegister,
        QualitySchemaForCreate,
        SpanTypeSchemaForCreate,
    )
    from prefactor_http.models import ActionProfile, DataCategories, DataRisk

    risk = DataRisk(
        action_profile=ActionProfile(read_data="allowed"),
        params_data_categories=DataCategories(),
        result_data_categories=DataCategories(classification="internal"),
    )
    version = AgentSchemaVersionForRegister(
        external_identifier="v1",
        span_type_schemas=[
            SpanTypeSchemaForCreate(name="agent:llm", params_schema={}, data_risk=risk)
        ],
        quality_schemas=[QualitySchemaForCreate(name="accuracy", schema={"type": "number"})],
    )
    body = version.model_dump(by_alias=True, exclude_none=True)
    assert body["quality_schemas"] == [{"name": "accuracy", "schema": {"type": "number"}}]
    entry = body["span_type_schemas"][0]
    assert entry["data_risk"]["action_profile"]["read_data"] == "allowed"
    assert entry["data_risk"]["result_data_categories"]["classification"] == "internal"
    assert AgentVersionForRegister(name="a").model_dump(exclude_none=True) == {"name": "a"}
    assert AgentInstanceRecordQuality(name="accuracy").payload is None
    with pytest.raises(ValueError):
        DataCategories(classification="top-secret")  # type: ignore[arg-type]


def test_bulk_request_needs_items_with_distinct_keys() -> None:
    from prefactor_http import BulkItem, BulkRequest

    item = BulkItem(_type="agent_instances/start", idempotency_key="key-00000001")
    with pytest.raises(ValueError, match="at least 1 item"):
        BulkRequest(items=[])
    with pytest.raises(ValueError, match="idempotency keys must be unique"):
        BulkRequest(items=[item, item])


async def test_a_bulk_request_runs_as_with_the_published_client(
    make_config: ConfigFactory, local_server: LocalServer
) -> None:
    from prefactor_http import BulkItem, BulkRequest

    request = BulkRequest(
        items=[
            BulkItem(
                _type="agent_instances/register",
                idempotency_key="compat-key-01",
                agent_version=AGENT_VERSION,
                agent_schema_version=SCHEMA_VERSION,
                id="inst-compat-bulk",
            ),
            BulkItem(
                _type="agent_instances/start",
                idempotency_key="compat-key-02",
                agent_instance_id="inst-compat-bulk",
            ),
        ]
    )
    async with PrefactorHttpClient(make_config()) as client:
        response = await client.bulk.execute(request)
        assert [output.status for output in response.outputs.values()] == ["success", "success"]
        finished = await client.request(
            "POST",
            "/api/v1/agent_instance/inst-compat-bulk/finish",
            json_data={"status": "complete"},
        )
    assert finished["details"]["status"] == "complete"
    stored = local_server.store.get_instance("inst-compat-bulk")
    assert stored is not None and stored["status"] == "complete"


async def test_retry_handler_retries_what_it_is_told_to() -> None:
    from prefactor_http.retry import RetryHandler

    config = HttpClientConfig(
        api_url="https://api.example.test",
        api_token="token",
        max_retries=2,
        initial_retry_delay=0.001,
        max_retry_delay=0.002,
    )
    calls: list[int] = []

    async def flaky(value: int) -> int:
        calls.append(value)
        if len(calls) < 3:
            raise ConnectionError("down")
        return value * 2

    assert await RetryHandler(config).execute(flaky, lambda exc: True, 21) == 42
    assert len(calls) == 3

    async def always_down() -> None:
        raise ConnectionError("down")

    with pytest.raises(PrefactorRetryExhaustedError, match="after 3 attempts") as caught:
        await RetryHandler(config).execute(always_down, lambda exc: True)
    assert isinstance(caught.value.last_error, ConnectionError)
    calls.clear()

    async def refused() -> None:
        calls.append(0)
        raise ValueError("no")

    with pytest.raises(ValueError):
        await RetryHandler(config).execute(refused, lambda exc: False)
    assert calls == [0]


def test_published_error_classification() -> None:
    from prefactor_http.exceptions import is_permanent_http_error, is_transient_http_error

    conflict = PrefactorApiError("taken", "conflict", 409)
    unavailable = PrefactorApiError("later", "unavailable", 503)
    assert is_permanent_http_error(conflict) and not is_transient_http_error(conflict)
    assert is_transient_http_error(unavailable) and not is_permanent_http_error(unavailable)
    assert is_permanent_http_error(PrefactorRetryExhaustedError("gave up", conflict))
    assert is_permanent_http_error(PrefactorResponseContractError("bad", status_code=200))
    assert not is_permanent_http_error(PrefactorResponseContractError("bad", status_code=502))
    assert not is_permanent_http_error(ConnectionError("down"))
    assert is_transient_http_error(ConnectionError("down"))
