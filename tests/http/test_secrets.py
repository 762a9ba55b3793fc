"""The token never leaks: not in repr/str, logs (even at DEBUG) or exception messages."""

from __future__ import annotations

import logging
import traceback

import pytest
from _http_support import AGENT_VERSION, SCHEMA_VERSION, ConfigFactory

from prefactor_http import (
    HttpClientConfig,
    PrefactorApiError,
    PrefactorHttpClient,
    PrefactorRetryExhaustedError,
)
from prefactor_http import client as client_module
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


def rendered(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


async def test_token_never_appears_in_logs_errors_or_reprs(
    make_config: ConfigFactory, local_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = local_server.token
    config = make_config(max_retries=1)
    errors: list[BaseException] = []
    caplog.set_level(logging.DEBUG)
    client = PrefactorHttpClient(config)
    async with client:
        await client.validate_token()
        await client.agent_instances.register(AGENT_VERSION, SCHEMA_VERSION, id="inst-secret")
        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,))
        try:
            await client.agent_instances.start("inst-secret")
        except PrefactorRetryExhaustedError as exc:
            errors.append(exc)
        local_server.faults = FaultConfig()
        for call in (
            client.agent_instances.get("inst-missing"),
            client.agent_spans.create("inst-secret", "demo:llm", status="bogus"),  # type: ignore[arg-type]
        ):
            try:
                await call
            except PrefactorApiError as exc:
                errors.append(exc)
    async with PrefactorHttpClient(make_config(api_token=token + "-wrong")) as wrong:
        try:
            await wrong.validate_token()
        except PrefactorApiError as exc:
            errors.append(exc)

    assert len(errors) == 4
    for error in errors:
        assert token not in str(error)
        assert token not in repr(error)
        assert token not in rendered(error)
    for shown in (repr(config), str(config), repr(client)):
        assert token not in shown

    messages = [record.getMessage() for record in caplog.records]
    assert any(r.levelno == logging.DEBUG and r.name == "prefactor_http" for r in caplog.records)
    assert "POST /api/v1/agent_instance/register -> 200 (attempt 1" in "\n".join(messages)
    assert "POST /api/v1/agent_instance/inst-secret/start -> 503 (attempt 2" in "\n".join(messages)
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in str(record.args)
        if record.exc_info:
            assert token not in "".join(traceback.format_exception(*record.exc_info))


async def test_a_token_echoed_by_the_server_is_redacted(
    client: PrefactorHttpClient, local_server: LocalServer
) -> None:
    # The server quotes unknown ids in its 404 message; a token pasted as an id must not leak.
    token = local_server.token
    with pytest.raises(PrefactorApiError) as caught:
        await client.agent_instances.get(token)
    assert caught.value.status_code == 404
    assert token not in str(caught.value)
    assert "***" in caught.value.message


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "_plain_http_warned", False)


def plain_http_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "prefactor_http" and r.levelno == logging.WARNING and "http://" in r.message
    ]


@pytest.mark.usefixtures("fresh_warning")
async def test_plain_http_to_a_remote_host_warns_once(
    caplog: pytest.LogCaptureFixture, local_server: LocalServer
) -> None:
    caplog.set_level(logging.WARNING, logger="prefactor_http")
    for url in ("http://prefactor.example.test", "http://10.1.2.3:8000", "http://[2001:db8::1]"):
        PrefactorHttpClient(HttpClientConfig(url, local_server.token))
    warnings = plain_http_warnings(caplog)
    assert len(warnings) == 1
    assert "prefactor.example.test" in warnings[0].message
    assert local_server.token not in warnings[0].message


@pytest.mark.usefixtures("fresh_warning")
async def test_no_warning_for_https_or_loopback(
    caplog: pytest.LogCaptureFixture, make_config: ConfigFactory
) -> None:
    caplog.set_level(logging.WARNING, logger="prefactor_http")
    for url in (
        "https://prefactor.example.test",
        "http://127.0.0.1:8787",
        "http://127.5.6.7",
        "http://localhost:8000",
        "http://LOCALHOST",
        "http://[::1]:8787",
    ):
        PrefactorHttpClient(HttpClientConfig(url, "tok"))
    async with PrefactorHttpClient(make_config()) as client:
        await client.validate_token()
    assert plain_http_warnings(caplog) == []
