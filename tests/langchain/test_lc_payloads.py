"""What the spans carry: models, token usage, streaming timings, messages, tools, documents."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from _lc_models import (
    ANSWER,
    DOCS,
    RAG_OUTLINE,
    USAGE_TOOL_CALL,
    ChatScripted,
    make_agent,
    make_rag_chain,
)
from _lc_support import instances, make_client, spans_of, traced

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry
from prefactor_core.payloads import PayloadPolicy
from prefactor_http import HttpClientConfig
from prefactor_integrations.langchain import LANGCHAIN_SPAN_TYPES, PrefactorCallbackHandler
from prefactor_local.server import LocalServer

QUESTION = {"messages": [("user", "What is 2 + 3?")]}


def test_llm_spans_carry_model_usage_messages_and_tools(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    make_agent().invoke(QUESTION, {"callbacks": [handler]})

    traced(local_server, handler)
    first, second = spans_of(local_server, "langchain:llm")
    params = first["payload"]
    assert params["model_name"] == "scripted-1"
    assert params["provider"] == "scripted"
    assert params["inputs"]["model"] == "scripted-1"
    assert params["inputs"]["messages"] == [
        {"role": "human", "content": "What is 2 + 3?", "id": params["inputs"]["messages"][0]["id"]}
    ]
    assert params["tools"] == ["add"]
    assert params["invocation_params"]["_type"] == "scripted"
    result = first["result_payload"]
    assert result["token_usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 7,
        "total_tokens": 19,
        "input_token_details": USAGE_TOOL_CALL["input_token_details"],
        "output_token_details": USAGE_TOOL_CALL["output_token_details"],
        "cache_read_tokens": 4,
        "reasoning_tokens": 2,
    }
    (message,) = result["outputs"]["messages"]
    assert message["role"] == "ai"
    assert message["tool_calls"] == [{"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}]
    assert result["finish_reason"] == "tool_calls"
    assert "streaming" not in result  # not streamed: no timings
    # The second call sees the whole conversation, tool result included.
    roles = [m["role"] for m in second["payload"]["inputs"]["messages"]]
    assert roles == ["human", "ai", "tool"]
    assert second["payload"]["inputs"]["messages"][2]["tool_call_id"] == "call-1"
    assert second["result_payload"]["outputs"]["content"] == ANSWER
    assert second["result_payload"]["token_usage"]["total_tokens"] == 35


def test_tool_spans_carry_arguments_and_output(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    make_agent().invoke(QUESTION, {"callbacks": [handler]})

    traced(local_server, handler)
    (span,) = spans_of(local_server, "langchain:tool")
    assert span["payload"]["tool_name"] == "add"
    assert span["payload"]["inputs"] == {"tool_name": "add", "arguments": {"a": 2, "b": 3}}
    assert span["payload"]["tool_call_id"] == "call-1"
    assert span["payload"]["description"] == "Add two integers."
    assert span["result_payload"]["outputs"] == {"output": "5"}


def test_streamed_calls_record_time_to_first_token_without_tokens(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    async def consume() -> list[Any]:
        agent = make_agent()
        return [
            chunk
            async for chunk in agent.astream(
                QUESTION, {"callbacks": [handler]}, stream_mode="messages"
            )
        ]

    chunks = asyncio.run(consume())
    assert chunks

    traced(local_server, handler)
    for span in spans_of(local_server, "langchain:llm"):
        streaming = span["result_payload"]["streaming"]
        assert set(streaming) <= {
            "time_to_first_token_ms",
            "chunks",
            "duration_ms",
            "chunks_per_second",
        }
        assert 0 <= streaming["time_to_first_token_ms"] <= streaming["duration_ms"]
        assert streaming["chunks"] >= 4  # one per word at least
        # Usage and the assembled message still arrive once the stream ends.
        assert span["result_payload"]["token_usage"]["total_tokens"] in (19, 35)
    final = spans_of(local_server, "langchain:llm")[-1]["result_payload"]["outputs"]
    assert final["content"] == ANSWER


def test_retriever_spans_carry_query_and_capped_documents(local_server: LocalServer) -> None:
    handler = PrefactorCallbackHandler(make_client(local_server), max_document_chars=100)
    answer = make_rag_chain().invoke("What is Prefactor?", {"callbacks": [handler]})

    assert answer == ANSWER
    assert traced(local_server, handler) == [RAG_OUTLINE]
    (span,) = spans_of(local_server, "langchain:retriever")
    assert span["payload"]["query"] == "What is Prefactor?"
    docs = span["result_payload"]["outputs"]["documents"]
    assert span["result_payload"]["document_count"] == 2
    assert docs[0]["page_content"] == DOCS[0].page_content[:100]
    assert docs[0]["page_content_chars"] == len(DOCS[0].page_content)
    assert docs[0]["metadata"] == {"source": "a.md"}
    assert docs[0]["id"] == "a"
    assert docs[1] == {
        "page_content": "LangGraph runs graphs.",
        "metadata": {"source": "b.md"},
        "id": "b",
    }
    handler.close()


def test_root_model_call_gets_an_agent_span_around_it(
    local_server: LocalServer, handler: PrefactorCallbackHandler
) -> None:
    reply = ChatScripted().invoke("hello", {"callbacks": [handler], "tags": ["smoke"]})

    assert reply.content == ANSWER
    assert traced(local_server, handler) == [
        "langchain:agent ChatScripted\n  langchain:llm scripted-1"
    ]
    (agent,) = spans_of(local_server, "langchain:agent")
    assert agent["payload"]["tags"] == ["smoke"]
    assert agent["result_payload"]["token_usage"]["total_tokens"] == 35


def test_capture_content_false_sends_structure_names_and_sizes_but_no_text(
    local_server: LocalServer,
) -> None:
    handler = PrefactorCallbackHandler(make_client(local_server), capture_content=False)
    config: Any = {
        "callbacks": [handler],
        "tags": ["private-tag"],
        "metadata": {"customer": "Ada Lovelace"},
    }
    make_agent().invoke(QUESTION, config)

    traced(local_server, handler)
    rows = [
        s for kind in ("agent", "llm", "tool") for s in spans_of(local_server, f"langchain:{kind}")
    ]
    stored = json.dumps([(s["payload"], s["result_payload"]) for s in rows])
    for text in ("2 + 3", ANSWER, "Let me compute that", "private-tag", "Ada Lovelace"):
        assert text not in stored, text
    first, second = spans_of(local_server, "langchain:llm")
    assert first["payload"]["model_name"] == "scripted-1"
    assert first["payload"]["inputs"]["model"] == "scripted-1"
    (question,) = first["payload"]["inputs"]["messages"]
    assert question["role"] == "human"
    assert question["content"] == "[14 chars]"  # "What is 2 + 3?"
    (reply,) = first["result_payload"]["outputs"]["messages"]
    assert reply["content"] == "[19 chars]"
    assert reply["tool_calls"] == [{"name": "add", "args": {"a": 2, "b": 3}, "id": "call-1"}]
    assert first["result_payload"]["token_usage"]["total_tokens"] == 19
    assert first["result_payload"]["finish_reason"] == "tool_calls"
    assert [m["role"] for m in second["payload"]["inputs"]["messages"]] == ["human", "ai", "tool"]
    assert second["result_payload"]["outputs"]["content"] == f"[{len(ANSWER)} chars]"
    (tool,) = spans_of(local_server, "langchain:tool")
    assert tool["payload"]["tool_name"] == "add"
    assert tool["result_payload"]["outputs"]["output"] == "[1 chars]"  # "5"
    (agent,) = spans_of(local_server, "langchain:agent")
    assert agent["payload"]["tags"] == ["[11 chars]"]
    assert agent["payload"]["metadata"] == {"customer": "[12 chars]"}
    handler.close()


def test_mask_runs_on_every_payload(local_server: LocalServer) -> None:
    def mask(payload: Any) -> Any:
        if isinstance(payload, dict) and "tool_name" in payload:
            return {**payload, "inputs": "[masked]"}
        return payload

    handler = PrefactorCallbackHandler(make_client(local_server), mask=mask)
    make_agent().invoke(QUESTION, {"callbacks": [handler]})

    traced(local_server, handler)
    (tool,) = spans_of(local_server, "langchain:tool")
    assert tool["payload"]["inputs"] == "[masked]"
    handler.close()


def test_mask_keeps_the_clients_payload_policy(local_server: LocalServer) -> None:
    http = HttpClientConfig(api_url=local_server.url, api_token=local_server.token)
    policy = PayloadPolicy(max_field_chars=20)
    client = PrefactorCoreClient(PrefactorCoreConfig(http_config=http, payload_policy=policy))
    handler = PrefactorCallbackHandler(client, mask=lambda payload: payload)
    make_agent().invoke({"messages": [("user", "x" * 500)]}, {"callbacks": [handler]})

    traced(local_server, handler)
    (first_llm, *_) = spans_of(local_server, "langchain:llm")
    stored = json.dumps(first_llm["payload"])
    assert "x" * 21 not in stored and "truncated" in stored
    handler.close()


def test_every_span_type_is_registered_in_one_stable_schema_version(
    local_server: LocalServer,
) -> None:
    first = PrefactorCallbackHandler(make_client(local_server), agent_version="1.0")
    second = PrefactorCallbackHandler(make_client(local_server), agent_version="1.0")
    assert first.agent_schema_version == second.agent_schema_version

    make_agent().invoke(QUESTION, {"callbacks": [first]})
    make_rag_chain().invoke("q", {"callbacks": [second]})

    traced(local_server, first)
    assert len(instances(local_server)) == 2
    (schema,) = local_server.store.list_agent_schema_versions()
    (version,) = local_server.store.list_agent_versions()
    assert schema["external_identifier"] == first.agent_schema_version["external_identifier"]
    assert version["external_identifier"].startswith("1.0+")
    body = schema.get("body", schema)
    types = {t["name"]: t for t in body["span_type_schemas"]}
    assert (
        set(types)
        == {spec.name for spec in LANGCHAIN_SPAN_TYPES}
        == {
            "langchain:agent",
            "langchain:chain",
            "langchain:node",
            "langchain:llm",
            "langchain:tool",
            "langchain:retriever",
        }
    )
    for entry in types.values():
        assert entry["title"] and entry["description"] and entry["template"]
        assert entry["params_schema"]["type"] == "object"
    for handler in (first, second):
        handler.close()


def test_span_types_of_a_user_registry_join_the_schema_version(local_server: LocalServer) -> None:
    registry = SchemaRegistry()
    registry.register_type(
        "app:review",
        {"type": "object", "properties": {"score": {"type": "number"}}},
        title="Review",
        description="A human review step",
        template="{{score}}",
    )
    handler = PrefactorCallbackHandler(make_client(local_server), schema_registry=registry)

    make_rag_chain().invoke("q", {"callbacks": [handler]})

    traced(local_server, handler)
    (schema,) = local_server.store.list_agent_schema_versions()
    names = {t["name"] for t in schema["body"]["span_type_schemas"]}
    assert "app:review" in names and "langchain:llm" in names
    plain = PrefactorCallbackHandler(make_client(local_server))
    # A different set of span types is a different schema version.
    assert (
        plain.agent_schema_version["external_identifier"]
        != handler.agent_schema_version["external_identifier"]
    )
    handler.close()


def test_without_content_langgraph_names_stay_text_and_the_core_keeps_no_langgraph_names(
    local_server: LocalServer,
) -> None:
    from prefactor_core.payloads import DEFAULT_KEEP_KEYS
    from prefactor_integrations.langchain.schemas import KEEP_KEYS

    handler = PrefactorCallbackHandler(make_client(local_server), capture_content=False)
    make_agent().invoke({"messages": [("user", "What is 2 + 3?")]}, {"callbacks": [handler]})
    handler.flush(timeout=10.0)

    nodes = spans_of(local_server, "langchain:node")
    assert {s["payload"]["node"] for s in nodes} == {"model", "tools"}
    assert all(not s["payload"]["checkpoint_ns"].startswith("[") for s in nodes)  # not sized
    # The framework's vocabulary comes from the adapter, not the framework-agnostic core.
    assert not KEEP_KEYS & DEFAULT_KEEP_KEYS
