"""What goes into each span's payload and result payload.

Everything here runs on the caller's thread, so it only reads attributes and builds small dicts
that *reference* the framework's objects (messages, nodes' text, pydantic outputs, ...). Copies are
shallow; serialising, capping and redacting is the exporter's job, off the hot path. The only
capping done here is slicing node text and accumulated stream text to ``max_text_chars``, so
memory held for a queued span stays bounded.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _kinds as k

__all__ = [
    "CaptureOptions",
    "exit_result",
    "ingestion_params",
    "ingestion_result",
    "model_name",
    "node_list",
    "query_text",
    "response_text",
    "span_params",
    "stop_output",
    "token_usage",
]

_SIMPLE = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class CaptureOptions:
    """What the adapter captures.

    Texts are always handed over; with ``capture_content=False`` the handler's payload policy
    sends them as sizes. ``capture_embeddings`` adds the vectors themselves (off by default).
    """

    capture_embeddings: bool = False
    max_nodes: int = 50
    max_text_chars: int = 4000


def query_text(query: Any) -> Any:
    """The text of a query given as a string or a ``QueryBundle``."""
    if query is None or isinstance(query, str):
        return query
    text = getattr(query, "query_str", None)
    return text if isinstance(text, str) else query


_MODEL_ATTRS = ("model", "model_name", "model_id", "deployment_name")
# Per class: which attribute names its model; "metadata" (LlamaIndex's LLMMetadata), or None
# for "use the class name". Looking up missing attributes on pydantic models raises (slowly),
# so the winning source is found once per class.
_model_source: dict[type, str | None] = {}


def _model_from(instance: Any, source: str | None) -> Any:
    if source is None:
        return None
    if source == "metadata":
        return getattr(getattr(instance, "metadata", None), "model_name", None)
    return getattr(instance, source, None)


def model_name(instance: Any) -> str | None:
    """Best-effort model name of an LLM or embedding object (its class name as a fallback)."""
    if instance is None:
        return None
    cls = type(instance)
    if cls in _model_source:
        value = _model_from(instance, _model_source[cls])
        return value if _is_model_name(value) else cls.__name__
    found: str | None = None
    fields = getattr(instance, "__dict__", None) or {}
    for attr in _MODEL_ATTRS:
        if attr in fields or isinstance(getattr(cls, attr, None), property):
            found = attr
            break
    else:
        if isinstance(getattr(cls, "metadata", None), property):
            found = "metadata"
    value = _model_from(instance, found)
    if not _is_model_name(value):
        found, value = None, None
    if len(_model_source) < 1024:
        _model_source[cls] = found
    return value if value is not None else cls.__name__


def _is_model_name(value: object) -> bool:
    """A real name: LlamaIndex fills ``model_name`` with "unknown" when it has none."""
    return isinstance(value, str) and bool(value) and value.lower() != "unknown"


def _cap(text: str, opts: CaptureOptions) -> str:
    return text if len(text) <= opts.max_text_chars else text[: opts.max_text_chars]


def node_list(nodes: Any, opts: CaptureOptions) -> dict[str, Any]:
    """``{"node_count", "nodes": [{node_id, score, text, metadata}]}`` for retrieved nodes."""
    try:
        items = list(nodes or ())
    except Exception:
        return {}
    out: list[dict[str, Any]] = []
    for item in items[: opts.max_nodes]:
        node = getattr(item, "node", item)
        entry: dict[str, Any] = {
            "node_id": getattr(node, "node_id", None) or getattr(node, "id_", None),
            "score": getattr(item, "score", None),
        }
        try:
            text = node.get_content()
        except Exception:
            text = getattr(node, "text", None)
        if isinstance(text, str):
            entry["text"] = _cap(text, opts)
        meta = getattr(node, "metadata", None)
        if isinstance(meta, Mapping) and meta:
            entry["metadata"] = dict(meta)
        out.append(entry)
    result: dict[str, Any] = {"node_count": len(items), "nodes": out}
    if len(items) > len(out):
        result["nodes_omitted"] = len(items) - len(out)
    return result


def _args(bound: inspect.BoundArguments | None) -> dict[str, Any]:
    if bound is None:
        return {}
    try:
        return dict(bound.arguments)
    except Exception:
        return {}


def _first_arg(args: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in args:
            return args[name]
    positional = args.get("args")
    if isinstance(positional, tuple) and positional:
        return positional[0]
    kwargs = args.get("kwargs")
    if isinstance(kwargs, Mapping):
        for name in names:
            if name in kwargs:
                return kwargs[name]
    return None


def _template_text(template: Any) -> Any:
    if isinstance(template, str) or template is None:
        return template
    try:
        return template.get_template()
    except Exception:
        return type(template).__name__


def _event_fields(event: Any) -> dict[str, Any]:
    """Shallow fields of a workflow event; non-plain values are named, not dumped."""
    fields: dict[str, Any] = {}
    try:
        items = list(event.items()) if hasattr(event, "items") else []
        fields_of = getattr(type(event), "model_fields", None)
        if not items and isinstance(fields_of, Mapping):
            items = [(n, getattr(event, n, None)) for n in fields_of]
    except Exception:
        return fields
    for key, value in items:
        if isinstance(value, _SIMPLE) or _is_message(value):
            fields[str(key)] = value
        elif isinstance(value, (list, tuple)) and all(
            isinstance(v, _SIMPLE) or _is_message(v) for v in value
        ):
            fields[str(key)] = list(value)
        else:
            fields[str(key)] = f"<{type(value).__name__}>"
    return fields


def _is_message(value: Any) -> bool:
    return type(value).__name__ == "ChatMessage"


def span_params(
    kind: str,
    name: str,
    method: str,
    instance: Any,
    bound: inspect.BoundArguments | None,
    tags: Mapping[str, Any] | None,
    opts: CaptureOptions,
) -> dict[str, Any]:
    """The span payload (its inputs) for a span of type ``kind``."""
    args = _args(bound)
    cls = type(instance).__name__ if instance is not None else None
    p: dict[str, Any] = {"name": name}
    if kind == k.LLM:
        p.update(llm_class=cls, model=model_name(instance), operation=method)
        p["streaming"] = "stream" in method
        messages = args.get("messages")
        if messages is not None:
            p["message_count"] = _len(messages)
            p["messages"] = list(messages)
        prompt = _first_arg(args, "prompt")
        if prompt is not None and messages is None:
            p["prompt"] = _template_text(prompt)
        # the variables already bound into the template (a query engine's ``query_str``) too
        bound_vars = getattr(prompt, "kwargs", None) if messages is None else None
        template_args = dict(bound_vars) if isinstance(bound_vars, Mapping) else {}
        prompt_args = args.get("prompt_args")
        if isinstance(prompt_args, Mapping):
            template_args.update(prompt_args)
        if template_args:
            p["template_args"] = template_args
        output_cls = args.get("output_cls")
        if output_cls is not None:
            p["output_cls"] = getattr(output_cls, "__name__", str(output_cls))
        tools = args.get("tools")
        if tools is None:
            # chat()/astream_chat() get them in **kwargs from the *_with_tools helpers
            kwargs = args.get("kwargs")
            tools = kwargs.get("tools") if isinstance(kwargs, Mapping) else None
        if tools:
            p["tools"] = [_tool_name(t) for t in _seq(tools)]
    elif kind in (k.QUERY, k.RETRIEVE):
        p["engine" if kind == k.QUERY else "retriever"] = cls
        query = query_text(_first_arg(args, "str_or_query_bundle", "query_bundle", "query"))
        if query is not None:
            p["query"] = query
    elif kind == k.EMBEDDING:
        p.update(embed_class=cls, model=model_name(instance), operation=method)
        texts = _first_arg(args, "texts", "queries", "query", "text")
        if isinstance(texts, str):
            p["input_count"] = 1
            p["inputs"] = [texts]
        elif texts is not None:
            p["input_count"] = _len(texts)
            p["inputs"] = list(_seq(texts))
    elif kind == k.SYNTHESIZE:
        p["synthesizer"] = cls
        query = query_text(_first_arg(args, "query", "query_str"))
        if query is not None:
            p["query"] = query
        nodes = args.get("nodes")
        if nodes is not None:
            p["node_count"] = _len(nodes)
    elif kind == k.RERANK:
        p["postprocessor"] = cls
        nodes = args.get("nodes")
        if nodes is not None:
            p["node_count"] = _len(nodes)
        query = query_text(_first_arg(args, "query_bundle", "query_str", "query"))
        if query is not None:
            p["query"] = query
        for attr in ("top_n", "model"):
            value = getattr(instance, attr, None)
            if isinstance(value, (str, int)):
                p[attr] = value
    elif kind == k.TOOL:
        meta = getattr(instance, "metadata", None)
        p["tool_name"] = getattr(meta, "name", None) or cls
        description = getattr(meta, "description", None)
        if isinstance(description, str):
            p["description"] = _cap(description, opts)
        p["arguments"] = _tool_arguments(args)
    elif kind in (k.AGENT, k.WORKFLOW) and method == "run" and instance is not None:
        p.update(workflow=cls, kind="run")
        agent_name = getattr(instance, "name", None)
        if isinstance(agent_name, str):
            p["agent_name"] = agent_name
        start = args.get("start_event")
        if start is not None:
            p["input"] = _event_fields(start)
            user_msg = _get(start, "user_msg")
            if user_msg is not None:
                p["user_msg"] = user_msg
        if tags:
            summary = tags.get("llamaindex.start_event")
            if summary is not None:
                p["input_summary"] = summary
            run_id = tags.get("llamaindex.run_id")
            if run_id is not None:
                p["run_id"] = run_id
    elif kind == k.WORKFLOW:
        workflow, _, step = name.rpartition(".")
        p.update(workflow=workflow or None, step=step, kind="step")
        if tags:
            p["input_event"] = tags.get("llamaindex.step.input_event")
            p["input_summary"] = tags.get("llamaindex.step.input_summary")
            run_id = tags.get("llamaindex.run_id")
            if run_id is not None:
                p["run_id"] = run_id
    elif kind == k.AGENT:
        p.update(engine=cls, operation=method, kind="chat")
        message = _first_arg(args, "message")
        if message is not None:
            p["message"] = message
        history = args.get("chat_history")
        if history is not None:
            p["chat_history_length"] = _len(history)
    else:
        args.pop("self", None)
        if args:
            p["arguments"] = args
        if cls is not None:
            p["class"] = cls
    return p


def _get(event: Any, key: str) -> Any:
    try:
        return event.get(key) if hasattr(event, "get") else getattr(event, key, None)
    except Exception:
        return None


def _seq(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) else list(value)


def _len(value: Any) -> int | None:
    try:
        return len(value)
    except Exception:
        return None


def _tool_name(tool: Any) -> str:
    """A tool's name: a LlamaIndex tool's, or a provider spec's (OpenAI ``{"function": {"name"}}``,
    Anthropic ``{"name"}``) once an integration has converted the tools."""
    if isinstance(tool, Mapping):
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        return name if isinstance(name, str) else "tool"
    meta = getattr(tool, "metadata", None)
    name = getattr(meta, "name", None)
    return name if isinstance(name, str) else type(tool).__name__


def _tool_arguments(args: Mapping[str, Any]) -> Any:
    kwargs = args.get("kwargs")
    positional = args.get("args")
    out: dict[str, Any] = {}
    if isinstance(kwargs, Mapping):
        out.update(kwargs)
    if isinstance(positional, tuple) and positional:
        out["args"] = list(positional)
    for key, value in args.items():
        if key not in ("self", "args", "kwargs"):
            out[key] = value
    return out


def response_text(response: Any) -> Any:
    """The text of a Response / ChatResponse / CompletionResponse / AgentChatResponse."""
    if response is None or isinstance(response, str):
        return response
    message = getattr(response, "message", None)
    if message is not None:
        return getattr(message, "content", None)
    for attr in ("text", "response"):
        value = getattr(response, attr, None)
        if isinstance(value, str):
            return value
    return None


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if value is None or isinstance(value, _SIMPLE):
        return None
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump()
        except Exception:
            return None
        return dumped if isinstance(dumped, Mapping) else None
    fields = getattr(value, "__dict__", None)
    return fields if isinstance(fields, Mapping) else None


_USAGE_KEYS = (
    ("prompt_tokens", ("prompt_tokens", "input_tokens", "prompt_token_count")),
    ("completion_tokens", ("completion_tokens", "output_tokens", "candidates_token_count")),
    ("total_tokens", ("total_tokens", "total_token_count")),
)


def _usage_from(mapping: Mapping[str, Any]) -> dict[str, int] | None:
    usage: dict[str, int] = {}
    for target, names in _USAGE_KEYS:
        for n in names:
            value = mapping.get(n)
            if isinstance(value, int) and not isinstance(value, bool):
                usage[target] = value
                break
    if not usage:
        return None
    if "total_tokens" not in usage and {"prompt_tokens", "completion_tokens"} <= usage.keys():
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def token_usage(response: Any) -> dict[str, int] | None:
    """Token counts from an LLM response when the provider reported them, else None.

    Looks at ``raw.usage`` / ``raw.usage_metadata`` (OpenAI, Anthropic, Gemini shapes, as dicts or
    objects), then ``additional_kwargs`` (where several LlamaIndex integrations copy them).
    """
    try:
        raw = getattr(response, "raw", None)
        candidates: list[Any] = []
        raw_map = raw if isinstance(raw, Mapping) else None
        for attr in ("usage", "usage_metadata"):
            value = raw_map.get(attr) if raw_map is not None else getattr(raw, attr, None)
            if value is not None:
                candidates.append(value)
        if raw_map is not None:
            candidates.append(raw_map)
        candidates.append(getattr(response, "additional_kwargs", None))
        for candidate in candidates:
            mapping = _as_mapping(candidate)
            if mapping:
                usage = _usage_from(mapping)
                if usage:
                    return usage
    except Exception:
        return None
    return None


def stop_output(result: Any) -> Any:
    """What a workflow run returned: ``StopEvent.result``, an agent's reply, or the event."""
    if type(result).__name__ == "StopEvent":
        try:
            result = result.result
        except Exception:
            return None
    response = getattr(result, "response", None)
    if response is not None and hasattr(response, "content"):
        return getattr(response, "content", None)
    if hasattr(result, "result"):
        try:
            return result.result
        except Exception:
            return None
    return result


def exit_result(kind: str, method: str, result: Any, opts: CaptureOptions) -> dict[str, Any]:
    """Result-payload fields from what the span's method returned (streams are handled apart)."""
    r: dict[str, Any] = {}
    if result is None:
        return r
    if kind == k.LLM:
        usage = token_usage(result)
        if usage:
            r["token_usage"] = usage
        if isinstance(result, str):
            r["response"] = result
        elif hasattr(result, "message"):
            r["message"] = result.message
            r["response"] = response_text(result)
        elif hasattr(result, "text"):
            r["response"] = response_text(result)
        elif _is_structured(result):
            r["output"] = result
    elif kind == k.RETRIEVE or kind == k.RERANK:
        if isinstance(result, list):
            r.update(node_list(result, opts))
    elif kind == k.EMBEDDING:
        r.update(_embedding_summary(result, opts))
    elif kind in (k.QUERY, k.SYNTHESIZE) or (kind == k.AGENT and method != "run"):
        text = response_text(result)
        if isinstance(text, str):
            r["response"] = text
        sources = getattr(result, "source_nodes", None)
        if sources is not None:
            r["source_count"] = _len(sources)
        tool_sources = getattr(result, "sources", None)
        if tool_sources:
            r["tools_used"] = [getattr(s, "tool_name", None) for s in _seq(tool_sources)]
    elif kind == k.TOOL:
        if hasattr(result, "is_error"):
            r["is_error"] = bool(getattr(result, "is_error", False))
            r["output"] = getattr(result, "content", None)
        else:
            r["output"] = result
    elif kind in (k.AGENT, k.WORKFLOW):
        if method == "run":
            r["output"] = stop_output(result)
        else:
            r["output_event"] = type(result).__name__
    else:
        r["output"] = result
    return r


def _is_structured(value: Any) -> bool:
    return hasattr(value, "model_dump") or isinstance(value, Mapping)


def _embedding_summary(result: Any, opts: CaptureOptions) -> dict[str, Any]:
    if not isinstance(result, list) or not result:
        return {"count": 0} if isinstance(result, list) else {}
    vectors = [result] if isinstance(result[0], (int, float)) else result
    out: dict[str, Any] = {"count": len(vectors), "dimension": _len(vectors[0])}
    if opts.capture_embeddings:
        out["embeddings"] = [list(v) for v in vectors]
    return out


def ingestion_params(
    name: str, instance: Any, bound: inspect.BoundArguments | None
) -> dict[str, Any]:
    """The payload of an ingestion span (a pipeline run or one transformation): counts only,
    the documents themselves are not copied."""
    args = _args(bound)
    p: dict[str, Any] = {"name": name, "class": type(instance).__name__}
    items = _first_arg(args, "nodes", "documents")
    if items is not None:
        p["input_count"] = _len(items)
    transformations = getattr(instance, "transformations", None)
    if isinstance(transformations, Sequence):
        p["transformations"] = [type(t).__name__ for t in transformations]
    return p


def ingestion_result(result: Any) -> dict[str, Any]:
    """``{"output_count"}``: how many nodes an ingestion span produced."""
    if isinstance(result, Sequence) and not isinstance(result, str):
        return {"output_count": len(result)}
    return {}
