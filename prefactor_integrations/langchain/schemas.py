"""The span types the LangChain adapter emits, registered in the agent's schema version."""

from __future__ import annotations

from .._shared.schema import (
    ERROR_SCHEMA,
    FieldType,
    SpanFamily,
    SpanTypeSpec,
    array_of,
    object_of,
)

__all__ = [
    "AGENT",
    "CHAIN",
    "KEEP_KEYS",
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

KEEP_KEYS: frozenset[str] = frozenset({"node", "triggers", "path", "checkpoint_ns"})
"""LangGraph's names kept as text when content is not captured (added to the core's own)."""

_COMMON_PARAMS: dict[str, FieldType] = {
    "name": "string",
    "tags": "array",
    "metadata": "object",
    "run_id": "string",
}
_COMMON_RESULT: dict[str, FieldType] = {
    "error": ERROR_SCHEMA,
    "events": array_of(object_of(name="string", data="any", timestamp="string", kind="string")),
    "cancelled": "boolean",
    "reason": "string",
}
_TOKEN_USAGE = object_of(
    prompt_tokens="integer",
    completion_tokens="integer",
    total_tokens="integer",
    cache_read_tokens="integer",
    cache_creation_tokens="integer",
    reasoning_tokens="integer",
    input_token_details="object",
    output_token_details="object",
)
_STREAMING = object_of(
    time_to_first_token_ms="number",
    chunks="integer",
    duration_ms="number",
    chunks_per_second="number",
)


_span = SpanFamily(params=_COMMON_PARAMS, result=_COMMON_RESULT)


LANGCHAIN_SPAN_TYPES: tuple[SpanTypeSpec, ...] = (
    _span(
        AGENT,
        "LangChain Agent",
        "One top-level LangChain or LangGraph run (agent, graph or chain).",
        "{{name}}",
        params={
            "inputs": "object",
            "thread_id": "string",
            "resumed_from_instance_id": "string",
            "previous_instance_id": "string",
            "resumed": "boolean",
        },
        result={
            "outputs": "object",
            "interrupted": "boolean",
            "interrupts": "array",
            "terminated": "boolean",
        },
    ),
    _span(
        CHAIN,
        "Chain",
        "A runnable (chain, sequence, lambda, parser, prompt, subgraph) inside a run.",
        "{{name}}",
        params={"inputs": "object"},
        result={"outputs": "object"},
    ),
    _span(
        NODE,
        "LangGraph Node",
        "One execution of a LangGraph graph node.",
        "{{node}}",
        params={
            "node": "string",
            "step": "integer",
            "triggers": array_of("string"),
            "path": "array",
            "checkpoint_ns": "string",
            "inputs": "object",
        },
        result={
            "outputs": "object",
            "updated_keys": array_of("string"),
            "interrupted": "boolean",
            "interrupts": "array",
            "command": "object",
        },
    ),
    _span(
        LLM,
        "LLM Call",
        "A call to a chat model or completion model.",
        "{{model_name}}",
        params={
            "model_name": "string",
            "provider": "string",
            "temperature": "number",
            "max_tokens": "integer",
            "inputs": object_of(model="string", messages="array", system="string", prompts="array"),
            "tools": "array",
            "invocation_params": "object",
        },
        result={
            "outputs": object_of(messages="array", content="any"),
            "token_usage": _TOKEN_USAGE,
            "response_model": "string",
            "finish_reason": "any",
            "streaming": _STREAMING,
        },
    ),
    _span(
        TOOL,
        "Tool Call",
        "A LangChain tool execution.",
        "{{tool_name}}",
        params={
            "tool_name": "string",
            "description": "string",
            "tool_call_id": "string",
            "inputs": object_of(tool_name="string", arguments="any"),
        },
        result={"outputs": object_of(output="any", status="string")},
    ),
    _span(
        RETRIEVER,
        "Retrieval",
        "A retriever query and the documents it returned.",
        "{{query}}",
        params={"query": "string"},
        result={"outputs": object_of(documents="array"), "document_count": "integer"},
    ),
)
