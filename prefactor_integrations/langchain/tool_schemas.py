"""``tool_schemas=``: span types of their own (``langchain:tool:<name>``) for chosen tools."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._shared.schema import SpanTypeSpec
from .schemas import LANGCHAIN_SPAN_TYPES, TOOL

__all__ = [
    "LangChainToolSchemaConfig",
    "ToolSchemas",
    "check_registry",
    "normalize_tool_span_type",
    "resolve_tool_schemas",
]

_PREFIX = TOOL + ":"
_RESULT_SCHEMA: Mapping[str, Any] = {"type": "object", "additionalProperties": True}


@dataclass(frozen=True)
class LangChainToolSchemaConfig:
    """A tool's own span type and the JSON schema of its arguments (the span's ``inputs``)."""

    span_type: str
    input_schema: Mapping[str, Any]


ToolSchemas = Mapping[str, "LangChainToolSchemaConfig | Mapping[str, Any]"]
"""``{tool name: LangChainToolSchemaConfig or {"span_type"|"spanType", "input_schema"|
"inputSchema"}}``."""


def normalize_tool_span_type(span_type: str) -> str:
    """``"x"``, ``"tool:x"``, ``"langchain:x"`` and ``"langchain:tool:x"`` all give
    ``"langchain:tool:x"`` (whitespace and leading colons dropped); an empty name is a
    ``ValueError``."""
    if not isinstance(span_type, str):
        raise TypeError(f"span_type must be a string; got {type(span_type).__name__}")
    suffix = span_type.strip().lstrip(":")
    for prefix in (_PREFIX, "langchain:", "tool:"):
        if suffix.startswith(prefix):
            suffix = suffix[len(prefix) :]
            break
    suffix = suffix.strip().lstrip(":")
    if not suffix:
        raise ValueError(f"span_type must name the tool after 'langchain:tool:'; got {span_type!r}")
    return _PREFIX + suffix


def _config_of(tool: str, value: Any) -> LangChainToolSchemaConfig:
    if isinstance(value, LangChainToolSchemaConfig):
        span_type, input_schema = value.span_type, value.input_schema
    elif isinstance(value, Mapping):
        span_type = value.get("span_type", value.get("spanType"))
        input_schema = value.get("input_schema", value.get("inputSchema"))
    else:
        raise TypeError(
            f"tool_schemas[{tool!r}] must be a LangChainToolSchemaConfig or a mapping with "
            f"span_type and input_schema; got {type(value).__name__}"
        )
    if span_type is None:
        raise ValueError(f"tool_schemas[{tool!r}] needs a span_type")
    if not isinstance(input_schema, Mapping):
        raise TypeError(f"tool_schemas[{tool!r}].input_schema must be a JSON schema object")
    return LangChainToolSchemaConfig(normalize_tool_span_type(span_type), dict(input_schema))


def resolve_tool_schemas(
    tool_schemas: ToolSchemas | None,
) -> tuple[dict[str, str], tuple[SpanTypeSpec, ...]]:
    """``({tool name: span type}, the span types to register)``; everything is checked first.

    ``ValueError`` when two tools would share a span type.
    """
    if tool_schemas is None:
        return {}, ()
    if not isinstance(tool_schemas, Mapping):
        raise TypeError(
            f"tool_schemas must be a mapping of tool name to schema; "
            f"got {type(tool_schemas).__name__}"
        )
    configs = {str(tool): _config_of(str(tool), value) for tool, value in tool_schemas.items()}
    owners: dict[str, str] = {}
    for tool, config in configs.items():
        if config.span_type in owners:
            raise ValueError(
                f"tool_schemas: {owners[config.span_type]!r} and {tool!r} both map to "
                f"{config.span_type!r}; each tool needs a span type of its own"
            )
        owners[config.span_type] = tool
    generic = next(spec for spec in LANGCHAIN_SPAN_TYPES if spec.name == TOOL)
    specs = tuple(_tool_spec(generic, tool, config) for tool, config in configs.items())
    return {tool: config.span_type for tool, config in configs.items()}, specs


def _tool_spec(generic: SpanTypeSpec, tool: str, config: LangChainToolSchemaConfig) -> SpanTypeSpec:
    params = dict(generic.params_schema)
    params["properties"] = {**params.get("properties", {}), "inputs": dict(config.input_schema)}
    return dataclasses.replace(
        generic,
        name=config.span_type,
        title=f"Tool Call: {tool}",
        description=f"A LangChain tool execution span for {tool}",
        params_schema=params,
        result_schema=dict(_RESULT_SCHEMA),
    )


def check_registry(registry: Any, specs: tuple[SpanTypeSpec, ...]) -> None:
    """``ValueError`` if ``registry`` (a ``SchemaRegistry`` or None) already has one of these
    span types with other schemas (its entry would win, and the tool's schema be lost)."""
    if registry is None or not specs:
        return
    existing = {e["name"]: e for e in registry.collections().get("span_type_schemas", [])}
    for spec in specs:
        entry = existing.get(spec.name)
        if entry is None:
            continue
        if entry.get("params_schema") != dict(spec.params_schema) or entry.get(
            "result_schema"
        ) != dict(spec.result_schema or {}):
            raise ValueError(
                f"Span type {spec.name!r} is already registered with a different "
                "params_schema or result_schema."
            )
