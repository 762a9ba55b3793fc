"""The token never leaves where it belongs; secrets in payloads are scrubbed before they leave
the process; ``capture_content=False`` sends structure and sizes, no text."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from _rel_support import (
    ANSWER,
    QUESTION,
    answer_of,
    fast_http,
    make_agent,
    make_client,
    raw_rows,
    wire_bodies,
)
from langchain_core.tools import tool

from prefactor_core import PrefactorCoreConfig
from prefactor_core.payloads import DEFAULT_SECRET_PATTERNS, PayloadPolicy
from prefactor_http.client import PrefactorHttpClient
from prefactor_http.config import HttpClientConfig
from prefactor_http.exceptions import PrefactorAuthError
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

API_KEY = "sk-proj-Zq8XbT4kLm2Nw9Rv7Yp3Hs6D"
BEARER = "eyqTs8Yh2LmNp4Wq9Zr7Kv3Jx"
DB_PASSWORD = "hunter2-Pw9x"
EMAIL = "alice.smith@example.com"
EMPLOYEE = "EMP-482913"
SECRETS_TEXT = (
    f"use key {API_KEY}; header Authorization: Bearer {BEARER}; "
    f"db postgres://admin:{DB_PASSWORD}@db.internal:5432/app; mail {EMAIL}; badge {EMPLOYEE}"
)


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"found for {query}"


def _secret_agent() -> Any:
    return make_agent(tools=[lookup], tool_args={"query": SECRETS_TEXT})


def _stored_text(server: LocalServer) -> str:
    return "\n".join(text for row in raw_rows(server) for text in row[1:] if text)


def test_the_token_never_shows_in_logs_reprs_errors_or_payloads(
    local_server: LocalServer, caplog: Any
) -> None:
    token = local_server.token
    caplog.set_level(logging.DEBUG)  # every logger, everything
    faults = local_server.faults
    faults.seed = 7
    faults.error_rate = 0.3
    faults.drop_response_rate = 0.1
    # Small batches: many requests, so faults (and retries) are met.
    client = make_client(fast_http(local_server), poll=1.0, bulk_max_items=3, linger=0.001)
    handler = PrefactorCallbackHandler(client, agent_name="secret-agent")
    agent = make_agent()
    for _ in range(3):
        assert answer_of(agent.invoke(QUESTION, {"callbacks": [handler]})) == ANSWER
    assert handler.flush(timeout=30)
    stats = client.stats()
    assert stats.retried > 0 and stats.failed == 0, stats

    shown = [
        repr(client.config),
        str(client.config),
        repr(client.config.http_config),
        str(client.config.http_config),
        repr(client),
        repr(client.tracer),
        repr(handler),
        repr(stats),
        repr(PrefactorHttpClient(client.config.http_config)),
        repr(PrefactorCoreConfig.model_validate(client.config.model_dump())),
    ]
    for text in shown:
        assert token not in text, text
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in record.getMessage()
    assert token not in _stored_text(local_server)
    assert token.encode() not in wire_bodies(local_server)
    handler.close(timeout=5)
    client.tracer.close(timeout=5)


async def test_a_refused_token_is_not_in_the_error(local_server: LocalServer) -> None:
    wrong = "pfl_not-the-right-token-1234"
    config = HttpClientConfig(api_url=local_server.url, api_token=wrong, max_retries=0)
    async with PrefactorHttpClient(config) as http:
        with pytest.raises(PrefactorAuthError) as raised:
            await http.validate_token()
    error = raised.value
    for text in (str(error), repr(error), repr(error.args), str(error.__cause__)):
        assert wrong not in text


def test_built_in_patterns_scrub_payloads_before_they_leave(local_server: LocalServer) -> None:
    client = make_client(fast_http(local_server))
    handler = PrefactorCallbackHandler(client, agent_name="scrubbed-agent")
    metadata = {"api_key": "plain-value-123456", "contact": EMAIL}

    result = _secret_agent().invoke(
        {"messages": [("user", SECRETS_TEXT)]}, {"callbacks": [handler], "metadata": metadata}
    )

    # The agent itself saw everything: scrubbing happens only on the way out.
    assert result["messages"][-2].content == f"found for {SECRETS_TEXT}"
    assert handler.flush(timeout=30)
    wire = wire_bodies(local_server).decode("utf-8")
    stored = _stored_text(local_server)
    for text in (wire, stored):
        for secret in (API_KEY, BEARER, DB_PASSWORD, EMAIL, "plain-value-123456"):
            assert secret not in text, secret
        for label in ("api_key", "bearer", "url_password", "email"):
            assert f"[REDACTED:{label}]" in text, label
        assert '"api_key": "[REDACTED]"' in text or '"api_key":"[REDACTED]"' in text
        assert EMPLOYEE in text  # not a built-in pattern
    handler.close(timeout=5)


def test_patterns_are_configurable(local_server: LocalServer) -> None:
    patterns = {name: p for name, p in DEFAULT_SECRET_PATTERNS.items() if name != "email"}
    patterns["employee_id"] = r"\bEMP-\d{6}\b"
    client = make_client(fast_http(local_server), policy=PayloadPolicy(secret_patterns=patterns))
    handler = PrefactorCallbackHandler(client, agent_name="custom-patterns-agent")

    _secret_agent().invoke({"messages": [("user", SECRETS_TEXT)]}, {"callbacks": [handler]})

    assert handler.flush(timeout=30)
    wire = wire_bodies(local_server).decode("utf-8")
    assert EMPLOYEE not in wire and "[REDACTED:employee_id]" in wire
    assert EMAIL in wire  # that pattern was switched off
    assert API_KEY not in wire and DB_PASSWORD not in wire
    handler.close(timeout=5)


def _mask(payload: Any) -> Any:
    """A user's redaction hook: badge numbers become ``[badge]``, wherever they are."""
    if isinstance(payload, str):
        return re.sub(r"EMP-\d{6}", "[badge]", payload)
    if isinstance(payload, dict):
        return {k: _mask(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_mask(v) for v in payload]
    return payload


def test_the_redaction_hook_sees_every_payload(local_server: LocalServer) -> None:
    client = make_client(fast_http(local_server))
    handler = PrefactorCallbackHandler(client, agent_name="masked-agent", mask=_mask)

    _secret_agent().invoke({"messages": [("user", SECRETS_TEXT)]}, {"callbacks": [handler]})

    assert handler.flush(timeout=30)
    wire = wire_bodies(local_server).decode("utf-8")
    assert EMPLOYEE not in wire and "badge [badge]" in wire
    assert API_KEY not in wire  # the built-in patterns still apply
    handler.close(timeout=5)


def test_the_redaction_hook_keeps_the_clients_own_patterns(local_server: LocalServer) -> None:
    patterns = {**DEFAULT_SECRET_PATTERNS, "employee_id": r"\bEMP-\d{6}\b"}
    client = make_client(fast_http(local_server), policy=PayloadPolicy(secret_patterns=patterns))
    handler = PrefactorCallbackHandler(client, agent_name="masked-agent", mask=_mask)

    _secret_agent().invoke({"messages": [("user", SECRETS_TEXT)]}, {"callbacks": [handler]})

    assert handler.flush(timeout=30)
    wire = wire_bodies(local_server).decode("utf-8")
    assert "badge [badge]" not in wire  # the pattern ran first: nothing left for the mask
    assert "[REDACTED:employee_id]" in wire and EMPLOYEE not in wire
    handler.close(timeout=5)


CONTENT = ("What is 2 + 3?", ANSWER, "Let me compute that")


def test_capture_content_off_in_the_client_sends_structure_and_sizes_only(
    local_server: LocalServer,
) -> None:
    client = make_client(fast_http(local_server), policy=PayloadPolicy(capture_content=False))
    handler = PrefactorCallbackHandler(client, agent_name="quiet-agent")

    result = make_agent().invoke(QUESTION, {"callbacks": [handler]})

    assert answer_of(result) == ANSWER
    assert handler.flush(timeout=30)
    wire = wire_bodies(local_server).decode("utf-8")
    for text in CONTENT:
        assert text not in wire, text
    spans = local_server.store.list_spans(local_server.store.list_instances()[0]["id"])
    assert len(spans) == 7
    tool_span = next(s for s in spans if s["schema_name"] == "langchain:tool")
    assert tool_span["payload"]["inputs"]["arguments"] == {"a": 2, "b": 3}  # numbers stay
    root = next(s for s in spans if s["parent_span_id"] is None)
    question = root["payload"]["inputs"]["messages"][0]
    assert question == ["[4 chars]", f"[{len(CONTENT[0])} chars]"]  # ("user", "What is 2 + 3?")
    handler.close(timeout=5)


def test_capture_content_off_in_the_handler_sends_no_text(local_server: LocalServer) -> None:
    client = make_client(fast_http(local_server))
    handler = PrefactorCallbackHandler(client, agent_name="quiet-agent", capture_content=False)

    result = _secret_agent().invoke(QUESTION, {"callbacks": [handler]})

    assert result["messages"][-2].content == f"found for {SECRETS_TEXT}"
    assert handler.flush(timeout=30)
    wire = wire_bodies(local_server).decode("utf-8")
    for text in (*CONTENT, "found for", "badge", "db.internal"):
        assert text not in wire, text
    assert "found for" not in _stored_text(local_server)
    spans = local_server.store.list_spans(local_server.store.list_instances()[0]["id"])
    assert len(spans) == 7
    # what ran, its shape and its numbers stay; every text is its size
    tool_span = next(s for s in spans if s["schema_name"] == "langchain:tool")
    assert tool_span["payload"]["tool_name"] == "lookup"
    assert tool_span["payload"]["inputs"]["arguments"] == {"query": f"[{len(SECRETS_TEXT)} chars]"}
    llm = next(s for s in spans if s["schema_name"] == "langchain:llm")
    assert llm["payload"]["model_name"] == "scripted-1"
    (reply,) = llm["result_payload"]["outputs"]["messages"]
    assert reply["role"] == "ai" and reply["tool_calls"][0]["name"] == "lookup"
    assert reply["tool_calls"][0]["args"] == {"query": f"[{len(SECRETS_TEXT)} chars]"}
    handler.close(timeout=5)
