"""Settings read from the environment: one path for every client and handler, and values that
are not understood are refused naming the variable."""

from __future__ import annotations

import pytest
from _rel_support import ANSWER, QUESTION, all_spans, answer_of, fast_http, make_agent, make_client

from prefactor_core.fields import env_bool
from prefactor_http.config import HttpClientConfig
from prefactor_integrations.langchain import PrefactorCallbackHandler, PrefactorConfigurationError
from prefactor_integrations.llama_index import PrefactorSpanHandler
from prefactor_local.server import LocalServer


def test_a_base_url_ending_in_api_v1_still_reaches_the_api(local_server: LocalServer) -> None:
    http = fast_http(local_server, api_url=local_server.url + "/api/v1/")
    assert http.api_url == local_server.url
    client = make_client(http)
    handler = PrefactorCallbackHandler(client, agent_name="api-v1-agent")
    assert answer_of(make_agent().invoke(QUESTION, {"callbacks": [handler]})) == ANSWER
    assert handler.flush(timeout=10)
    handler.close(timeout=5)
    assert client.stats().failed == 0
    assert [i["status"] for i in local_server.store.list_instances()] == ["complete"]
    assert all_spans(local_server)


def _env_for(monkeypatch: pytest.MonkeyPatch, server: LocalServer, transport: str) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", server.url)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", server.token)
    monkeypatch.setenv("PREFACTOR_HTTP_TRANSPORT", transport)


def test_handlers_built_from_the_environment_use_its_transport(
    monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    _env_for(monkeypatch, local_server, "aiohttp")
    langchain = PrefactorCallbackHandler()
    llama = PrefactorSpanHandler()
    assert langchain.client.config.http_config.transport == "aiohttp"
    assert llama.client.config.http_config.transport == "aiohttp"
    monkeypatch.setenv("PREFACTOR_HTTP_TRANSPORT", "httpx")
    other = PrefactorCallbackHandler()
    assert other.client is not langchain.client
    assert other.client.config.http_config.transport == "httpx"


def test_a_bogus_transport_in_the_environment_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, local_server: LocalServer
) -> None:
    _env_for(monkeypatch, local_server, "curl")
    message = (
        "environment variable PREFACTOR_HTTP_TRANSPORT: transport must be one of httpx, aiohttp; "
        "got 'curl'"
    )
    with pytest.raises(PrefactorConfigurationError) as raised:
        PrefactorCallbackHandler()
    assert str(raised.value) == message
    with pytest.raises(ValueError) as direct:
        HttpClientConfig.from_env()
    assert str(direct.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("1", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_env_style_booleans_are_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("PREFACTOR_TRACING", text)
    assert env_bool("PREFACTOR_TRACING", False) is expected


def test_a_bogus_boolean_in_the_environment_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFACTOR_TRACING", "maybe")
    with pytest.raises(ValueError) as raised:
        env_bool("PREFACTOR_TRACING", False)
    assert str(raised.value) == (
        "environment variable PREFACTOR_TRACING must be 1, true, yes or on "
        "(or 0, false, no, off), got 'maybe'"
    )
