"""The span types the LlamaIndex adapter emits, registered in the agent's schema version."""

from __future__ import annotations

from typing import Any

from .._shared.schema import SpanTypeSpec, object_schema
from . import _kinds as k

__all__ = ["LLAMA_INDEX_SPAN_TYPES"]

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_NUM: dict[str, Any] = {"type": "number"}
_BOOL: dict[str, Any] = {"type": "boolean"}
_OBJ: dict[str, Any] = {"type": "object"}
_ARR: dict[str, Any] = {"type": "array"}
_ANY: dict[str, Any] = {}

_ERROR = object_schema({"error_type": _STR, "message": _STR, "stacktrace": _STR})
_COMMON_RESULT = {"error": _ERROR, "cancelled": _BOOL, "reason": _STR}
_NODES = {
    "type": "array",
    "items": object_schema({"node_id": _STR, "score": _NUM, "text": _STR, "metadata": _OBJ}),
}
_TOKEN_USAGE = object_schema(
    {"prompt_tokens": _INT, "completion_tokens": _INT, "total_tokens": _INT}
)
_STREAM = {
    "time_to_first_token_ms": _NUM,
    "stream_chunks": _INT,
    "stream_abandoned": _BOOL,
}


def _result(**props: Any) -> dict[str, Any]:
    return object_schema({**props, **_COMMON_RESULT})


LLAMA_INDEX_SPAN_TYPES: tuple[SpanTypeSpec, ...] = (
    SpanTypeSpec(
        name=k.QUERY,
        title="Query",
        description="A LlamaIndex query engine answering one query",
        template="{{query}}",
        params_schema=object_schema({"name": _STR, "engine": _STR, "query": _STR}),
        result_schema=_result(response=_STR, source_count=_INT, **_STREAM),
    ),
    SpanTypeSpec(
        name=k.RETRIEVE,
        title="Retrieval",
        description="A LlamaIndex retriever fetching nodes for a query",
        template="{{query}}",
        params_schema=object_schema({"name": _STR, "retriever": _STR, "query": _STR}),
        result_schema=_result(node_count=_INT, nodes=_NODES, nodes_omitted=_INT),
    ),
    SpanTypeSpec(
        name=k.EMBEDDING,
        title="Embedding",
        description="An embedding model call (inputs counted; vectors omitted unless asked for)",
        template="{{model}}",
        params_schema=object_schema(
            {
                "name": _STR,
                "embed_class": _STR,
                "model": _STR,
                "operation": _STR,
                "input_count": _INT,
                "inputs": _ARR,
            }
        ),
        result_schema=_result(count=_INT, dimension=_INT, embeddings=_ARR),
    ),
    SpanTypeSpec(
        name=k.LLM,
        title="LLM Call",
        description="A chat, completion, predict or structured-predict call to a language model",
        template="{{model}}",
        params_schema=object_schema(
            {
                "name": _STR,
                "llm_class": _STR,
                "model": _STR,
                "operation": _STR,
                "streaming": _BOOL,
                "messages": _ARR,
                "message_count": _INT,
                "prompt": _STR,
                "template_args": _OBJ,
                "output_cls": _STR,
                "tools": _ARR,
            }
        ),
        result_schema=_result(
            response=_STR,
            message=_OBJ,
            output=_ANY,
            model=_STR,
            token_usage=_TOKEN_USAGE,
            **_STREAM,
        ),
    ),
    SpanTypeSpec(
        name=k.SYNTHESIZE,
        title="Response Synthesis",
        description="A LlamaIndex response synthesizer turning nodes into an answer",
        template="{{synthesizer}}",
        params_schema=object_schema(
            {"name": _STR, "synthesizer": _STR, "query": _STR, "node_count": _INT}
        ),
        result_schema=_result(response=_STR, source_count=_INT, **_STREAM),
    ),
    SpanTypeSpec(
        name=k.RERANK,
        title="Rerank",
        description="A node postprocessor or reranker reordering or filtering retrieved nodes",
        template="{{postprocessor}}",
        params_schema=object_schema(
            {
                "name": _STR,
                "postprocessor": _STR,
                "model": _STR,
                "top_n": _INT,
                "node_count": _INT,
                "query": _STR,
            }
        ),
        result_schema=_result(node_count=_INT, nodes=_NODES, nodes_omitted=_INT),
    ),
    SpanTypeSpec(
        name=k.TOOL,
        title="Tool Call",
        description="A LlamaIndex tool invocation",
        template="{{tool_name}}",
        params_schema=object_schema(
            {"name": _STR, "tool_name": _STR, "description": _STR, "arguments": _OBJ}
        ),
        result_schema=_result(output=_ANY, is_error=_BOOL),
    ),
    SpanTypeSpec(
        name=k.AGENT,
        title="Agent",
        description="A LlamaIndex agent run (workflow agent) or chat-engine turn",
        template="{{agent_name}}",
        params_schema=object_schema(
            {
                "name": _STR,
                "kind": _STR,
                "workflow": _STR,
                "agent_name": _STR,
                "engine": _STR,
                "operation": _STR,
                "user_msg": _ANY,
                "message": _STR,
                "input": _OBJ,
                "input_summary": _STR,
                "chat_history_length": _INT,
                "run_id": _STR,
            }
        ),
        result_schema=_result(output=_ANY, response=_STR, tools_used=_ARR, **_STREAM),
    ),
    SpanTypeSpec(
        name=k.WORKFLOW,
        title="Workflow",
        description="A LlamaIndex workflow run, or one step of it",
        template="{{name}}",
        params_schema=object_schema(
            {
                "name": _STR,
                "kind": {"type": "string", "enum": ["run", "step"]},
                "workflow": _STR,
                "step": _STR,
                "input": _OBJ,
                "input_event": _STR,
                "input_summary": _STR,
                "run_id": _STR,
            }
        ),
        result_schema=_result(output=_ANY, output_event=_STR, output_summary=_STR),
    ),
    SpanTypeSpec(
        name=k.SPAN,
        title="LlamaIndex Span",
        description="Any other instrumented function (for example the user's own @dispatcher.span)",
        template="{{name}}",
        params_schema=object_schema({"name": _STR, "class": _STR, "arguments": _OBJ}),
        result_schema=_result(output=_ANY),
    ),
)
