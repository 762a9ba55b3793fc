"""Span payloads built from LangChain callback arguments.

Shapes follow the published Prefactor LangChain SDK (``inputs``/``outputs``, ``Msg`` dicts with
``role``/``content``/``tool_calls``, ``token_usage`` with ``prompt_tokens``/``completion_tokens``/
``total_tokens``, ``error`` as ``{error_type, message, stacktrace}``) and add more fields.

Everything here is cheap: containers are shallow-copied and framework objects (documents,
pydantic models, arbitrary tool outputs) are handed over as they are; the core serialises,
truncates and redacts them on its exporter thread. Chat messages are handed over in new lists
wrapped in `Deferred`, so their conversion to ``Msg`` dicts also happens on that thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from prefactor_core.payloads import Deferred

__all__ = [
    "chain_inputs",
    "chain_outputs",
    "documents_payload",
    "llm_result_payload",
    "llm_start_payload",
    "message_dict",
    "node_fields",
    "token_usage",
    "tool_output_payload",
]

# Metadata keys that say *what* a run is; shown as fields of their own, not as user metadata.
_LANGGRAPH_KEYS = (
    "langgraph_node",
    "langgraph_step",
    "langgraph_triggers",
    "langgraph_path",
    "langgraph_checkpoint_ns",
)
_THREAD_KEYS = ("thread_id", "session_id", "conversation_id")


def _text_of(content: Any) -> tuple[str, list[Any] | None]:
    """The text of message content, plus the raw blocks when some are not plain text."""
    if isinstance(content, str):
        return content, None
    if not isinstance(content, list):
        return str(content), None
    texts: list[str] = []
    other = False
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        else:
            other = True
    return " ".join(t for t in texts if t), (list(content) if other else None)


def message_dict(message: Any) -> Any:
    """A message as ``{"role", "content", "tool_calls"?, ...}``; other values unchanged."""
    if not isinstance(message, BaseMessage):
        return message
    text, blocks = _text_of(message.content)
    out: dict[str, Any] = {"role": message.type, "content": text}
    if blocks is not None:
        out["content_blocks"] = blocks
    tool_calls = getattr(message, "tool_calls", None)
    if tool_calls:
        out["tool_calls"] = [
            {"name": tc.get("name"), "args": tc.get("args"), "id": tc.get("id")}
            for tc in tool_calls
        ]
    elif blocks is not None:
        uses = [b for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_use"]
        if uses:
            out["tool_calls"] = [
                {"name": b.get("name"), "args": b.get("input"), "id": b.get("id")} for b in uses
            ]
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
        if message.status != "success":
            out["status"] = message.status
    if message.name:
        out["name"] = message.name
    if message.id:
        out["id"] = message.id
    return out


def _messages(value: Sequence[Any]) -> list[Any]:
    return [message_dict(m) for m in value]


def _message_text(message: BaseMessage) -> str:
    return _text_of(message.content)[0]


def _system_text(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(_message_text(m) for m in messages)


def _lazy_messages(value: Sequence[Any]) -> Deferred:
    """The messages in a new list, converted by ``message_dict`` in the export thread."""
    return Deferred(_messages, list(value))


def _shallow(value: Any) -> Any:
    """One level of preparation: containers are copied, messages are converted later."""
    if isinstance(value, BaseMessage):
        return Deferred(message_dict, value)
    if isinstance(value, Mapping):
        return {k: _convert_item(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_convert_item(v) for v in value]
    return value


def _convert_item(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return Deferred(message_dict, value)
    if isinstance(value, list | tuple) and value and isinstance(value[0], BaseMessage):
        return _lazy_messages(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def chain_inputs(inputs: Any) -> dict[str, Any]:
    """``{"inputs": ...}`` for a chain/node/agent start (a dict input stays a dict)."""
    if isinstance(inputs, Mapping):
        return {"inputs": _shallow(inputs)}
    return {"inputs": {"input": _shallow(inputs)}}


def chain_outputs(outputs: Any) -> dict[str, Any]:
    """``{"outputs": ...}`` for a chain/node/agent end (a dict output stays a dict)."""
    if isinstance(outputs, Mapping):
        return {"outputs": _shallow(outputs)}
    return {"outputs": {"output": _shallow(outputs)}}


def node_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """LangGraph node fields: ``node, step, triggers, path, checkpoint_ns``."""
    out: dict[str, Any] = {}
    for key in _LANGGRAPH_KEYS:
        if key in metadata:
            value = metadata[key]
            out[key[len("langgraph_") :]] = list(value) if isinstance(value, tuple) else value
    return out


def thread_id(metadata: Mapping[str, Any] | None) -> str | None:
    """The conversation/thread id LangGraph or the user put in the run metadata."""
    if not metadata:
        return None
    for key in _THREAD_KEYS:
        value = metadata.get(key)
        if value is not None and value != "":
            return str(value)
    return None


def user_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Run metadata minus the keys shown elsewhere (LangGraph fields, ``ls_*`` model params)."""
    if not metadata:
        return {}
    return {
        k: v
        for k, v in metadata.items()
        if not k.startswith("ls_") and k not in _LANGGRAPH_KEYS and not k.startswith("checkpoint_")
    }


def llm_start_payload(
    *,
    messages: Sequence[Any] | None,
    prompts: Sequence[str] | None,
    invocation_params: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    name: str | None,
) -> dict[str, Any]:
    """Params of a ``langchain:llm`` span."""
    params = dict(invocation_params or {})
    md = metadata or {}
    model = (
        md.get("ls_model_name")
        or params.get("model")
        or params.get("model_name")
        or params.get("model_id")
    )
    provider = md.get("ls_provider") or params.get("_type")
    payload: dict[str, Any] = {"name": name}
    if model is not None:
        payload["model_name"] = model
    if provider is not None:
        payload["provider"] = provider
    temperature = md.get("ls_temperature", params.get("temperature"))
    if temperature is not None:
        payload["temperature"] = temperature
    max_tokens = md.get("ls_max_tokens", params.get("max_tokens"))
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    inputs: dict[str, Any] = {"model": model}
    if messages is not None:
        inputs["messages"] = _lazy_messages(messages)
        system = [m for m in messages if isinstance(m, BaseMessage) and m.type == "system"]
        if system:
            inputs["system"] = Deferred(_system_text, system)
    if prompts is not None:
        inputs["prompts"] = list(prompts)
    payload["inputs"] = inputs
    tools = params.pop("tools", None) or params.pop("functions", None)
    if tools:
        payload["tools"] = list(tools)
    if params:
        payload["invocation_params"] = params
    return payload


_INPUT_DETAIL_ALIASES = {
    "cache_read": "cache_read_tokens",
    "cache_creation": "cache_creation_tokens",
}
_OUTPUT_DETAIL_ALIASES = {"reasoning": "reasoning_tokens"}


def _usage_from_metadata(usage: Mapping[str, Any]) -> dict[str, Any]:
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    total = int(usage.get("total_tokens") or 0) or prompt + completion
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    }
    for key, aliases in (
        ("input_token_details", _INPUT_DETAIL_ALIASES),
        ("output_token_details", _OUTPUT_DETAIL_ALIASES),
    ):
        details = usage.get(key)
        if details:
            out[key] = dict(details)
            for src, dst in aliases.items():
                if details.get(src) is not None:
                    out[dst] = details[src]
    return out


def _usage_from_provider(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """OpenAI-style (``prompt_tokens``...) or Anthropic-style (``input_tokens``...) usage."""
    if "prompt_tokens" in raw or "completion_tokens" in raw:
        prompt = int(raw.get("prompt_tokens") or 0)
        completion = int(raw.get("completion_tokens") or 0)
        out: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": int(raw.get("total_tokens") or 0) or prompt + completion,
        }
        cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is not None:
            out["cache_read_tokens"] = cached
        reasoning = (raw.get("completion_tokens_details") or {}).get("reasoning_tokens")
        if reasoning is not None:
            out["reasoning_tokens"] = reasoning
        return out
    if "input_tokens" in raw or "output_tokens" in raw:
        out = _usage_from_metadata(raw)
        if raw.get("cache_read_input_tokens") is not None:
            out["cache_read_tokens"] = raw["cache_read_input_tokens"]
        if raw.get("cache_creation_input_tokens") is not None:
            out["cache_creation_tokens"] = raw["cache_creation_input_tokens"]
        return out
    return None


def _add_usage(total: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    if total is None:
        return part
    for key, value in part.items():
        if isinstance(value, int) and isinstance(total.get(key, 0), int):
            total[key] = total.get(key, 0) + value
        elif isinstance(value, dict) and isinstance(total.get(key), dict):
            merged = dict(total[key])
            for k, v in value.items():
                if isinstance(v, int) and isinstance(merged.get(k, 0), int):
                    merged[k] = merged.get(k, 0) + v
            total[key] = merged
        else:
            total.setdefault(key, value)
    return total


def token_usage(response: LLMResult) -> dict[str, Any] | None:
    """Token usage of a model call: ``usage_metadata`` first, then provider-specific fields.

    Keys: ``prompt_tokens, completion_tokens, total_tokens`` and, when the provider reports them,
    ``input_token_details``/``output_token_details`` plus ``cache_read_tokens``,
    ``cache_creation_tokens`` and ``reasoning_tokens``.
    """
    total: dict[str, Any] | None = None
    for generations in response.generations:
        for gen in generations:
            message = getattr(gen, "message", None)
            usage = getattr(message, "usage_metadata", None)
            if usage:
                total = _add_usage(total, _usage_from_metadata(usage))
                continue
            meta = getattr(message, "response_metadata", None) or {}
            raw = meta.get("token_usage") or meta.get("usage")
            if isinstance(raw, Mapping) and (found := _usage_from_provider(raw)):
                total = _add_usage(total, found)
    if total is None and response.llm_output:
        raw = response.llm_output.get("token_usage") or response.llm_output.get("usage")
        if isinstance(raw, Mapping):
            total = _usage_from_provider(raw)
    return total


def llm_result_payload(response: LLMResult) -> dict[str, Any]:
    """Result of a ``langchain:llm`` span: ``outputs``, ``token_usage`` and response details."""
    messages: list[BaseMessage] = []
    texts: list[str] = []
    finish_reasons: list[Any] = []
    response_model: Any = None
    for generations in response.generations:
        for gen in generations:
            if isinstance(gen, ChatGeneration):
                messages.append(gen.message)
                meta = gen.message.response_metadata or {}
                response_model = response_model or meta.get("model_name") or meta.get("model")
                reason = meta.get("finish_reason") or meta.get("stop_reason")
            else:
                texts.append(gen.text)
                reason = (gen.generation_info or {}).get("finish_reason")
            if reason is not None:
                finish_reasons.append(reason)
    outputs: dict[str, Any] = (
        {"messages": Deferred(_messages, messages)} if messages else {"content": texts}
    )
    if len(messages) == 1:
        content: Any = messages[0].content
        if type(content) is not str:
            content = Deferred(_message_text, messages[0])
        outputs["content"] = content
    result: dict[str, Any] = {"outputs": outputs}
    usage = token_usage(response)
    if usage is not None:
        result["token_usage"] = usage
    if response.llm_output:
        response_model = response_model or response.llm_output.get("model_name")
    if response_model is not None:
        result["response_model"] = response_model
    if finish_reasons:
        result["finish_reason"] = finish_reasons[0] if len(finish_reasons) == 1 else finish_reasons
    return result


def tool_output_payload(output: Any) -> dict[str, Any]:
    """Result of a ``langchain:tool`` span: ``{"outputs": {"output": ...}}``."""
    if isinstance(output, ToolMessage):
        out: dict[str, Any] = {"output": output.content}
        if output.status != "success":
            out["status"] = output.status
        if output.artifact is not None:
            out["artifact"] = output.artifact
        return {"outputs": out}
    if isinstance(output, BaseMessage):
        return {"outputs": {"output": output.content}}
    if hasattr(output, "update") and hasattr(output, "goto"):  # a LangGraph Command
        return {"outputs": {"command": _command_dict(output)}}
    return {"outputs": {"output": _convert_item(output)}}


def _command_dict(command: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("goto", "update", "graph", "resume"):
        value = getattr(command, key, None)
        if value is not None and value != ():
            out[key] = _shallow(value)
    return out


def command_payload(command: Any) -> dict[str, Any]:
    """A LangGraph ``Command`` (or ``ParentCommand``'s command) as a plain dict."""
    return _command_dict(command)


def documents_payload(documents: Sequence[Any], *, max_chars: int) -> dict[str, Any]:
    """Result of a ``langchain:retriever`` span: documents with text capped at ``max_chars``."""
    docs: list[dict[str, Any]] = []
    for doc in documents:
        if isinstance(doc, Document):
            text = doc.page_content
            item: dict[str, Any] = {"page_content": text[:max_chars]}
            if len(text) > max_chars:
                item["page_content_chars"] = len(text)
            if doc.metadata:
                item["metadata"] = dict(doc.metadata)
            if doc.id:
                item["id"] = doc.id
            docs.append(item)
        else:
            docs.append({"page_content": str(doc)[:max_chars]})
    return {"outputs": {"documents": docs}, "document_count": len(docs)}
