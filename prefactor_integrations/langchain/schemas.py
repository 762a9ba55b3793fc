"""The span types the LangChain adapter emits, registered in the agent's schema version."""

from __future__ import annotations

from typing import Any

from .._shared.schema import SpanTypeSpec, object_schema

__all__ = [
    "AGENT",
    "CHAIN",
    "LANGCHAIN_SPAN_TYPES",
    "LLM",
    "NODE",
    "RETRIEVER",
    "TOOL",
]

AGENT = "langchain:agent"
CHAIN = "langchain:chain"
NODE = "langchain:node"
LLM = "langchain:llm"
TOOL = "langchain:tool"
RETRIEVER = "langchain:retriever"

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_NUM: dict[str, Any] = {"type": "number"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_OBJ: dict[str, Any] = {"type": "object"}
_ARR: dict[str, Any] = {"type": "array"}
_ANY: dict[str, Any] = {}

_ERROR = object_schema({"error_type": _STR, "message": _STR, "stacktrace": _STR})
_EVENTS = {
    "type": "array",
    "items": object_schema({"name": _STR, "data": _ANY, "timestamp": _STR, "kind": _STR}),
}
_COMMON_PARAMS = {"name": _STR, "tags": _ARR, "metadata": _OBJ, "run_id": _STR}
_COMMON_RESULT = {"error": _ERROR, "events": _EVENTS, "cancelled": _BOOL, "reason": _STR}
_TOKEN_USAGE = object_schema(
    {
        "prompt_tokens": _INT,
        "completion_tokens": _INT,
        "total_tokens": _INT,
        "cache_read_tokens": _INT,
        "cache_creation_tokens": _INT,
        "reasoning_tokens": _INT,
        "input_token_details": _OBJ,
        "output_token_details": _OBJ,
    }
)
_NODE_FIELDS = {
    "node": _STR,
    "step": _INT,
    "triggers": {"type": "array", "items": _STR},
    "path": _ARR,
    "checkpoint_ns": _STR,
}

LANGCHAIN_SPAN_TYPES: tuple[SpanTypeSpec, ...] = (
    SpanTypeSpec(
        name=AGENT,
        title="LangChain Agent",
        description="One top-level LangChain or LangGraph run (agent, graph or chain).",
        template="{{name}}",
        params_schema=object_schema(
            {
                **_COMMON_PARAMS,
                "inputs": _OBJ,
                "thread_id": _STR,
                "resumed_from_instance_id": _STR,
                "previous_instance_id": _STR,
                "resumed": _BOOL,
            }
        ),
        result_schema=object_schema(
            {
                **_COMMON_RESULT,
                "outputs": _OBJ,
                "interrupted": _BOOL,
                "interrupts": _ARR,
                "terminated": _BOOL,
            }
        ),
    ),
    SpanTypeSpec(
        name=CHAIN,
        title="Chain",
        description="A runnable (chain, sequence, lambda, parser, prompt, subgraph) inside a run.",
        template="{{name}}",
        params_schema=object_schema({**_COMMON_PARAMS, "inputs": _OBJ}),
        result_schema=object_schema({**_COMMON_RESULT, "outputs": _OBJ}),
    ),
    SpanTypeSpec(
        name=NODE,
        title="LangGraph Node",
        description="One execution of a LangGraph graph node.",
        template="{{node}}",
        params_schema=object_schema({**_COMMON_PARAMS, **_NODE_FIELDS, "inputs": _OBJ}),
        result_schema=object_schema(
            {
                **_COMMON_RESULT,
                "outputs": _OBJ,
                "updated_keys": {"type": "array", "items": _STR},
                "interrupted": _BOOL,
                "interrupts": _ARR,
                "command": _OBJ,
            }
        ),
    ),
    SpanTypeSpec(
        name=LLM,
        title="LLM Call",
        description="A call to a chat model or completion model.",
        template="{{model_name}}",
        params_schema=object_schema(
            {
                **_COMMON_PARAMS,
                "model_name": _STR,
                "provider": _STR,
                "temperature": _NUM,
                "max_tokens": _INT,
                "inputs": object_schema(
                    {"model": _STR, "messages": _ARR, "system": _STR, "prompts": _ARR}
                ),
                "tools": _ARR,
                "invocation_params": _OBJ,
            }
        ),
        result_schema=object_schema(
            {
                **_COMMON_RESULT,
                "outputs": object_schema({"messages": _ARR, "content": _ANY}),
                "token_usage": _TOKEN_USAGE,
                "response_model": _STR,
                "finish_reason": _ANY,
                "streaming": object_schema(
                    {
                        "time_to_first_token_ms": _NUM,
                        "chunks": _INT,
                        "duration_ms": _NUM,
                        "chunks_per_second": _NUM,
                    }
                ),
            }
        ),
    ),
    SpanTypeSpec(
        name=TOOL,
        title="Tool Call",
        description="A LangChain tool execution.",
        template="{{tool_name}}",
        params_schema=object_schema(
            {
                **_COMMON_PARAMS,
                "tool_name": _STR,
                "description": _STR,
                "tool_call_id": _STR,
                "inputs": object_schema({"tool_name": _STR, "arguments": _ANY}),
            }
        ),
        result_schema=object_schema(
            {**_COMMON_RESULT, "outputs": object_schema({"output": _ANY, "status": _STR})}
        ),
    ),
    SpanTypeSpec(
        name=RETRIEVER,
        title="Retrieval",
        description="A retriever query and the documents it returned.",
        template="{{query}}",
        params_schema=object_schema({**_COMMON_PARAMS, "query": _STR}),
        result_schema=object_schema(
            {
                **_COMMON_RESULT,
                "outputs": object_schema({"documents": _ARR}),
                "document_count": _INT,
            }
        ),
    ),
)
