"""Error statuses from the local server become the documented exceptions, unretried."""

from __future__ import annotations

import pytest
from _http_support import AGENT_VERSION, SCHEMA_VERSION, ConfigFactory, WireRecorder

from prefactor_http import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorHttpClient,
    PrefactorHttpError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorValidationError,
    is_transient_error,
)
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


async def test_wrong_token_is_an_auth_error_and_not_retried(make_config: ConfigFactory) -> None:
    wire = WireRecorder()
    config = make_config(api_token="pfl_not-the-right-token")
    async with PrefactorHttpClient(config, transport=wire) as client:
        with pytest.raises(PrefactorAuthError) as caught:
            await client.validate_token()
    assert caught.value.status_code == 401
    assert isinstance(caught.value, PrefactorApiError)
    assert not is_transient_error(caught.value)
    assert len(wire.requests) == 1


async def test_missing_token_is_an_auth_error(make_config: ConfigFactory) -> None:
    # A proxy that strips the header is the only way a configured client sends no token.
    wire = WireRecorder(strip_headers=("authorization",))
    async with PrefactorHttpClient(make_config(), transport=wire) as client:
        with pytest.raises(PrefactorAuthError) as caught:
            await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION)
    assert caught.value.status_code == 401
    assert "authorization" not in wire.requests[0].headers


async def test_unknown_instance_is_not_found(client: PrefactorHttpClient) -> None:
    with pytest.raises(PrefactorNotFoundError) as caught:
        await client.agent_instances.get("inst-does-not-exist")
    assert (caught.value.status_code, caught.value.code) == (404, "not_found")
    assert "inst-does-not-exist" in caught.value.message
    assert not is_transient_error(caught.value)


async def test_conflicts_are_a_permanent_api_error(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, id="inst-conflict")
    await client.agent_spans.create(
        "inst-conflict", "demo:llm", id="span-conflict", idempotency_key="key-first-create"
    )
    before = len(wire.requests)
    with pytest.raises(PrefactorApiError) as caught:
        await client.agent_spans.create(
            "inst-conflict", "demo:llm", id="span-conflict", idempotency_key="key-other-create"
        )
    error = caught.value
    assert type(error) is PrefactorApiError
    assert (error.status_code, error.code) == (409, "already_exists")
    assert not is_transient_error(error)
    assert len(wire.requests) == before + 1, "409 is not retried"

    await client.agent_spans.finish("span-conflict")
    with pytest.raises(PrefactorApiError) as caught:
        await client.agent_spans.finish("span-conflict")
    assert (caught.value.status_code, caught.value.code) == (409, "invalid_action")
    assert len(local_server.store.list_spans("inst-conflict")) == 1


async def test_validation_errors_carry_the_field_errors(client: PrefactorHttpClient) -> None:
    with pytest.raises(PrefactorValidationError) as caught:
        await client.agent_instances.register(
            AGENT_VERSION,
            SCHEMA_VERSION,
            purpose="production",  # type: ignore[arg-type]
        )
    error = caught.value
    assert error.status_code == 422
    assert error.code == "invalid_value"
    assert set(error.errors) == {"purpose"}
    assert "must be one of" in error.errors["purpose"][0]
    assert "purpose" in str(error)
    assert not is_transient_error(error)

    with pytest.raises(PrefactorValidationError) as caught:
        await client.agent_spans.create("inst-x", "demo:llm", status="running")  # type: ignore[arg-type]
    assert set(caught.value.errors["details"]) == {"status"}


async def test_long_idempotency_keys_are_rejected_before_any_request(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    key = "k" * 65
    attempts = [
        client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, idempotency_key=key),
        client.agent_instances.start("inst", idempotency_key=key),
        client.agent_instances.finish("inst", idempotency_key=key),
        client.agent_instances.record_quality("inst", "q", idempotency_key=key),
        client.agent_spans.create("inst", "demo:llm", idempotency_key=key),
        client.agent_spans.finish("span", idempotency_key=key),
        client.agents.create({"name": "a"}, idempotency_key=key),
        client.agents.update("agent", {"name": "a"}, idempotency_key=key),
        client.agents.retire("agent", idempotency_key=key),
        client.agents.reinstate("agent", idempotency_key=key),
        client.agents.delete("agent", idempotency_key=key),
        client.request("POST", "/api/v1/agent", json={}, idempotency_key=key),
    ]
    for attempt in attempts:
        with pytest.raises(ValueError, match="at most 64 characters, got 65"):
            await attempt
    assert wire.requests == []
    assert local_server.store.counts()["agent_instances"] == 0
    # 64 characters is fine
    await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, idempotency_key="k" * 64)


async def test_malformed_json_from_the_server_is_a_contract_error(
    client: PrefactorHttpClient, local_server: LocalServer
) -> None:
    local_server.faults = FaultConfig(bad_json_rate=1.0, max_faults=1)
    with pytest.raises(PrefactorResponseContractError) as caught:
        await client.validate_token()
    error = caught.value
    assert error.status_code == 200
    assert error.body_snippet == '{"status": "success", "details": {"id":'
    assert "not valid JSON" in str(error)
    assert not is_transient_error(error)
    assert local_server.injected_faults["bad_json"] == 1


async def test_json_that_is_not_an_object_is_a_contract_error(
    client: PrefactorHttpClient, local_server: LocalServer, wire: WireRecorder
) -> None:
    local_server.faults = FaultConfig(non_object_rate=1.0, max_faults=1)
    with pytest.raises(PrefactorResponseContractError) as caught:
        await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION)
    error = caught.value
    assert error.status_code == 200
    assert error.body_snippet == '["status", "success"]'
    assert "not a JSON object" in str(error)
    assert len(wire.requests) == 1, "a contract error is permanent"


async def test_requests_need_an_open_session(make_config: ConfigFactory) -> None:
    client = PrefactorHttpClient(make_config())
    with pytest.raises(PrefactorClientError, match="HTTP session not initialized"):
        await client.validate_token()
    async with client:
        await client.validate_token()
    with pytest.raises(PrefactorClientError):
        await client.agent_instances.get("inst")


def test_exception_hierarchy() -> None:
    for cls in (PrefactorAuthError, PrefactorNotFoundError, PrefactorValidationError):
        assert issubclass(cls, PrefactorApiError)
    assert issubclass(PrefactorApiError, PrefactorHttpError)
    assert issubclass(PrefactorResponseContractError, PrefactorHttpError)
    assert issubclass(PrefactorClientError, PrefactorHttpError)
    assert not is_transient_error(PrefactorClientError("HTTP session not initialized"))
    assert not is_transient_error(ValueError("x"))
    assert is_transient_error(PrefactorApiError("slow down", "rate_limited", 429))
    assert is_transient_error(PrefactorApiError("oops", "unknown", 500))
    assert not is_transient_error(PrefactorApiError("gone", "unknown", 410))
    assert not is_transient_error(PrefactorApiError("no status", "unknown", None))
    assert is_transient_error(PrefactorResponseContractError("html", status_code=502))
    assert is_transient_error(PrefactorResponseContractError("html", status_code=429))
    assert not is_transient_error(PrefactorResponseContractError("bad", status_code=None))
