"""Bodies that are not JSON, or JSON that is not an object, become contract errors.

Our local server always answers JSON objects, so these cases use a scripted loopback server.
"""

from __future__ import annotations

import pytest
from _http_support import Canned, ScriptedServer

from prefactor_http import (
    AgentInstance,
    HttpClientConfig,
    PrefactorAuthError,
    PrefactorHttpClient,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    is_transient_error,
)
from prefactor_http._wire import parse_details

TOKEN = "tok-scripted-0123456789"


def config_for(server: ScriptedServer, **overrides: float) -> HttpClientConfig:
    values = {"initial_retry_delay": 0.01, "max_retry_delay": 0.05, "request_timeout": 5.0}
    values.update(overrides)
    return HttpClientConfig(server.url, TOKEN, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "body", "content_type", "problem"),
    [
        (200, b"<html><body>Gateway   login\n page</body></html>", "text/html", "not valid JSON"),
        (401, b"<html>Unauthorized</html>", "text/html", "not valid JSON"),
        (201, b'{"status": "success", "details": {', "application/json", "not valid JSON"),
        (200, b'["status", "success"]', "application/json", "not a JSON object"),
        (200, b'"success"', "application/json", "not a JSON object"),
        (400, b"null", "application/json", "not a JSON object"),
        (204, b"", "application/json", "is empty"),
    ],
)
async def test_unreadable_body_is_a_contract_error_with_status_and_snippet(
    status: int, body: bytes, content_type: str, problem: str
) -> None:
    with ScriptedServer(Canned(status, body, content_type)) as server:
        async with PrefactorHttpClient(config_for(server)) as client:
            with pytest.raises(PrefactorResponseContractError) as caught:
                await client.agent_instances.get("inst-1")
    error = caught.value
    assert not isinstance(error, PrefactorAuthError)
    assert error.status_code == status
    assert problem in str(error)
    assert error.body_snippet == " ".join(body.decode().split())
    assert not is_transient_error(error)
    assert len(server.requests) == 1, "a permanent failure is not retried"


async def test_snippet_is_cut_to_200_characters() -> None:
    long_body = b"x" * 150 + b"   \n\t " + b"y" * 300
    with ScriptedServer(Canned(200, long_body, "text/plain")) as server:
        async with PrefactorHttpClient(config_for(server)) as client:
            with pytest.raises(PrefactorResponseContractError) as caught:
                await client.validate_token()
    snippet = caught.value.body_snippet
    assert snippet is not None
    assert snippet == ("x" * 150 + " " + "y" * 49) + "..."


async def test_unreadable_5xx_is_transient_and_retried() -> None:
    with ScriptedServer(Canned(503, b"<html>upstream down</html>", "text/html")) as server:
        async with PrefactorHttpClient(config_for(server, max_retries=2)) as client:
            with pytest.raises(PrefactorRetryExhaustedError) as caught:
                await client.validate_token()
    assert len(server.requests) == 3
    last = caught.value.last_error
    assert isinstance(last, PrefactorResponseContractError)
    assert last.status_code == 503
    assert is_transient_error(caught.value)


async def test_unreadable_then_valid_response_succeeds() -> None:
    with ScriptedServer(
        Canned(502, b"Bad Gateway", "text/plain"),
        Canned(200, b'{"status": "success", "details": {"id": "i-1", "status": "active"}}'),
    ) as server:
        async with PrefactorHttpClient(config_for(server)) as client:
            instance = await client.agent_instances.get("i-1")
    assert (instance.id, instance.status) == ("i-1", "active")
    assert len(server.requests) == 2


def test_details_of_the_wrong_shape_are_a_contract_error_without_status() -> None:
    with pytest.raises(PrefactorResponseContractError) as caught:
        parse_details({"status": "success", "details": {"status": "active"}}, AgentInstance, "op")
    assert caught.value.status_code is None
    assert caught.value.cause is not None
    assert not is_transient_error(caught.value)

    with pytest.raises(PrefactorResponseContractError) as caught:
        parse_details({"status": "success", "details": ["x"]}, AgentInstance, "op")
    assert caught.value.status_code is None


def test_only_id_and_status_are_required_and_unknown_fields_are_ignored() -> None:
    instance = parse_details(
        {
            "status": "success",
            "details": {
                "id": "i-1",
                "status": "a-status-from-the-future",
                "started_at": "not a timestamp",
                "span_counts": {"total": 3},
                "brand_new_field": {"x": 1},
            },
        },
        AgentInstance,
        "op",
    )
    assert instance.id == "i-1"
    assert instance.status == "a-status-from-the-future"
    assert instance.started_at is None
    assert instance.span_counts is not None and instance.span_counts.total == 3
    assert instance.span_counts.pending == 0


@pytest.mark.parametrize("status", [301, 308])
async def test_a_redirect_says_where_to_and_which_setting_to_change(status: int) -> None:
    moved = "https://new.example.com/api/v1/agent_instance/inst-1"
    with ScriptedServer(Canned(status, b"", "text/html", {"Location": moved})) as server:
        async with PrefactorHttpClient(config_for(server)) as client:
            with pytest.raises(PrefactorResponseContractError) as caught:
                await client.agent_instances.get("inst-1")
    assert str(caught.value).startswith(
        f"Response to /api/v1/agent_instance/inst-1 was redirected to {moved} (HTTP {status}): "
        "set PREFACTOR_API_URL to https://new.example.com"
    ), str(caught.value)
    assert len(server.requests) == 1, "a redirect is not followed"
