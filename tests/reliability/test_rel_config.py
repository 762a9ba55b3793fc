"""Bad configuration fails at construction with a clear message; a wrong token is one clear
log line, never an exception in the agent."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _rel_support import ANSWER, QUESTION, answer_of, fast_http, make_agent, make_client
from pydantic import ValidationError

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_http.config import HttpClientConfig
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

SECRET = "pfl_this-token-is-secret"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("", "api_token is required"),
        ("   ", "api_token is required"),
        (f"{SECRET}\nX-Injected: 1", "cannot be sent as a bearer token"),
        (f"{SECRET} extra", "cannot be sent as a bearer token"),
        (f"{SECRET}é", "cannot be sent as a bearer token"),
    ],
)
def test_unusable_tokens_are_refused_without_being_echoed(token: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        HttpClientConfig(api_url="https://api.example.com", api_token=token)
    assert SECRET not in str(raised.value)


def test_surrounding_whitespace_of_a_token_is_dropped() -> None:
    config = HttpClientConfig(api_url="https://api.example.com", api_token=f"  {SECRET}\n")
    assert config.api_token == SECRET


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "api_url is required"),
        ("api.example.com", "must start with http:// or https://"),
        ("ftp://api.example.com", "must start with http:// or https://"),
        ("https//api.example.com", "must start with http:// or https://"),
        ("https://", "has no host"),
        ("https://api example.com", "must not contain spaces"),
        ("https://api.example.com:99999", "not a valid URL"),
        ("https://api.example.com:port", "not a valid URL"),
        ("https://[::1", "not a valid URL"),
        ("https://api.example.com/?tenant=1", "must not have a query or fragment"),
        ("https://api.example.com/#top", "must not have a query or fragment"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HttpClientConfig(api_url=url, api_token=SECRET)


def test_core_config_names_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_AGENT_ID", "agent-1")
    monkeypatch.setenv("PREFACTOR_API_URL", "https://api.example.com")
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "")
    with pytest.raises(ValueError, match="PREFACTOR_API_TOKEN is not set"):
        PrefactorCoreConfig.from_env()
    monkeypatch.setenv("PREFACTOR_API_TOKEN", SECRET)
    monkeypatch.setenv("PREFACTOR_API_URL", "api.example.com/v1")
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        PrefactorCoreConfig.from_env()
    with pytest.raises(ValidationError, match="http_config"):
        PrefactorCoreConfig(http_config="https://api.example.com")  # type: ignore[arg-type]
    http = HttpClientConfig(api_url="https://api.example.com", api_token=SECRET)
    with pytest.raises(ValidationError, match="shutdown_timeout"):
        PrefactorCoreConfig(http_config=http, queue_config=QueueConfig(shutdown_timeout=-1))
    with pytest.raises(ValidationError, match="termination_poll_interval"):
        PrefactorCoreConfig(http_config=http, termination_poll_interval=0)


def _offline_client() -> PrefactorCoreClient:
    http = HttpClientConfig(api_url="https://api.example.com", api_token=SECRET)
    return PrefactorCoreClient(PrefactorCoreConfig(http_config=http))


def test_unknown_purpose_is_refused_by_the_tracer() -> None:
    with pytest.raises(ValueError, match="purpose must be one of live, smoke_test, eval"):
        _offline_client().tracer.start_instance(agent_version={"name": "a"}, purpose="prod")


def test_unknown_purpose_is_refused_by_the_handler_at_construction() -> None:
    client = _offline_client()
    with pytest.raises(ValueError, match="purpose"):
        PrefactorCallbackHandler(client, purpose="production")
    for purpose in ("live", "smoke_test", "eval"):
        PrefactorCallbackHandler(client, purpose=purpose)


async def test_unknown_finish_status_is_refused(local_server: LocalServer) -> None:
    client = make_client(fast_http(local_server))
    tracer = client.tracer
    instance_id = tracer.start_instance(agent_version={"name": "a"})
    span_id = tracer.create_span(instance_id, "agent:step")
    for status in ("done", "success", "COMPLETE", None):
        with pytest.raises(ValueError, match="status must be one of complete, failed, cancelled"):
            tracer.finish_span(span_id, status=status)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="status must be one of"):
            tracer.finish_instance(instance_id, status=status)  # type: ignore[arg-type]
    await client.initialize()
    with pytest.raises(ValueError, match="status must be one of"):
        await client.finish_span(span_id, status="ok")
    tracer.finish_span(span_id, status="complete")
    tracer.finish_instance(instance_id, status="complete")
    await client.close()
    stored = local_server.store.list_spans(instance_id)
    assert [s["status"] for s in stored] == ["complete"]


def test_wrong_token_is_one_clear_error_line_and_never_reaches_the_agent(
    local_server: LocalServer, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(fast_http(local_server, api_token=SECRET), poll=1.0)
    handler = PrefactorCallbackHandler(client, agent_name="wrong-token-agent")
    agent = make_agent()

    answers = [answer_of(agent.invoke(QUESTION, {"callbacks": [handler]})) for _ in range(3)]
    handler.flush(timeout=10)
    answers += [answer_of(agent.invoke(QUESTION, {"callbacks": [handler]})) for _ in range(2)]
    handler.close(timeout=5)

    assert answers == [ANSWER] * 5
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "refused the token" in errors[0].getMessage()
    assert "PREFACTOR_API_TOKEN" in errors[0].getMessage()
    assert SECRET not in caplog.text
    stats = client.stats()
    assert stats.export_stopped and stats.health == "stopped" and stats.pending == 0
    assert SECRET not in repr(stats)
    assert local_server.store.counts()["agent_instances"] == 0
