"""The span types the LlamaIndex adapter emits, registered in the agent's schema version."""

from __future__ import annotations

from .._shared.schema import (
    ERROR_SCHEMA,
    FieldType,
    SpanFamily,
    SpanTypeSpec,
    array_of,
    object_of,
)
from . import _kinds as k

__all__ = ["KEEP_KEYS", "LLAMA_INDEX_SPAN_TYPES"]

KEEP_KEYS: frozenset[str] = frozenset(
    {
        "tools_used",
        "llm_class",
        "embed_class",
        "engine",
        "retriever",
        "synthesizer",
        "postprocessor",
        "output_cls",
        "workflow",
        "input_event",
        "output_event",
        "node",
    }
)
"""LlamaIndex's names kept as text when content is not captured (added to the core's own)."""

_COMMON_RESULT: dict[str, FieldType] = {
    "error": ERROR_SCHEMA,
    "cancelled": "boolean",
    "reason": "string",
}
_NODES: dict[str, FieldType] = {
    "node_count": "integer",
    "nodes": array_of(
        object_of(node_id="string", score="number", text="string", metadata="object")
    ),
    "nodes_omitted": "integer",
}
_TOKEN_USAGE = object_of(
    prompt_tokens="integer", completion_tokens="integer", total_tokens="integer"
)
_STREAM: dict[str, FieldType] = {
    "time_to_first_token_ms": "number",
    "stream_chunks": "integer",
    "stream_abandoned": "boolean",
}
_ANSWER: dict[str, FieldType] = {"response": "string", "source_count": "integer", **_STREAM}


_span = SpanFamily(params={"name": "string"}, result=_COMMON_RESULT)


LLAMA_INDEX_SPAN_TYPES: tuple[SpanTypeSpec, ...] = (
    _span(
        k.QUERY,
        "Query",
        "A LlamaIndex query engine answering one query",
        "{{query}}",
        params={"engine": "string", "query": "string"},
        result=_ANSWER,
    ),
    _span(
        k.RETRIEVE,
        "Retrieval",
        "A LlamaIndex retriever fetching nodes for a query",
        "{{query}}",
        params={"retriever": "string", "query": "string"},
        result=_NODES,
    ),
    _span(
        k.EMBEDDING,
        "Embedding",
        "An embedding model call (inputs counted; vectors omitted unless asked for)",
        "{{model}}",
        params={
            "embed_class": "string",
            "model": "string",
            "operation": "string",
            "input_count": "integer",
            "inputs": "array",
        },
        result={"count": "integer", "dimension": "integer", "embeddings": "array"},
    ),
    _span(
        k.LLM,
        "LLM Call",
        "A chat, completion, predict or structured-predict call to a language model",
        "{{model}}",
        params={
            "llm_class": "string",
            "model": "string",
            "operation": "string",
            "streaming": "boolean",
            "messages": "array",
            "message_count": "integer",
            "prompt": "string",
            "template_args": "object",
            "output_cls": "string",
            "tools": "array",
        },
        result={
            "response": "string",
            "message": "object",
            "output": "any",
            "model": "string",
            "token_usage": _TOKEN_USAGE,
            **_STREAM,
        },
    ),
    _span(
        k.SYNTHESIZE,
        "Response Synthesis",
        "A LlamaIndex response synthesizer turning nodes into an answer",
        "{{synthesizer}}",
        params={"synthesizer": "string", "query": "string", "node_count": "integer"},
        result=_ANSWER,
    ),
    _span(
        k.RERANK,
        "Rerank",
        "A node postprocessor or reranker reordering or filtering retrieved nodes",
        "{{postprocessor}}",
        params={
            "postprocessor": "string",
            "model": "string",
            "top_n": "integer",
            "node_count": "integer",
            "query": "string",
        },
        result=_NODES,
    ),
    _span(
        k.TOOL,
        "Tool Call",
        "A LlamaIndex tool invocation",
        "{{tool_name}}",
        params={"tool_name": "string", "description": "string", "arguments": "object"},
        result={"output": "any", "is_error": "boolean"},
    ),
    _span(
        k.AGENT,
        "Agent",
        "A LlamaIndex agent run (workflow agent) or chat-engine turn",
        "{{agent_name}}",
        params={
            "kind": "string",
            "workflow": "string",
            "agent_name": "string",
            "engine": "string",
            "operation": "string",
            "user_msg": "any",
            "message": "string",
            "input": "object",
            "input_summary": "string",
            "chat_history_length": "integer",
            "run_id": "string",
        },
        result={"output": "any", "response": "string", "tools_used": "array", **_STREAM},
    ),
    _span(
        k.WORKFLOW,
        "Workflow",
        "A LlamaIndex workflow run, or one step of it",
        "{{name}}",
        params={
            "kind": {"type": "string", "enum": ["run", "step"]},
            "workflow": "string",
            "step": "string",
            "input": "object",
            "input_event": "string",
            "input_summary": "string",
            "run_id": "string",
        },
        result={"output": "any", "output_event": "string", "output_summary": "string"},
    ),
    _span(
        k.SPAN,
        "LlamaIndex Span",
        "Any other instrumented function (for example the user's own @dispatcher.span), or an"
        " ingestion pipeline run and its steps",
        "{{name}}",
        params={
            "class": "string",
            "arguments": "object",
            "input_count": "integer",
            "transformations": "array",
        },
        result={"output": "any", "output_count": "integer"},
    ),
)
