"""Agent schema versions built from span-type descriptions, with stable content-hash ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "ERROR_SCHEMA",
    "FieldType",
    "SpanFamily",
    "SpanTypeSpec",
    "agent_version",
    "array_of",
    "build_agent_schema_version",
    "content_hash",
    "object_of",
    "object_schema",
    "properties",
    "register_span_types",
    "span_type",
]

FieldType: TypeAlias = "str | Mapping[str, Any]"
"""A field's JSON type name (``"string"``, ``"integer"``, ...; ``"any"`` for no constraint) or a
ready JSON schema."""


def object_schema(properties: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A draft-07 ``{"type": "object", "properties": ...}`` schema (extra keys allowed)."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties or {})}
    schema.update(extra)
    return schema


def _field_schema(kind: FieldType) -> dict[str, Any]:
    if not isinstance(kind, str):
        return dict(kind)
    return {} if kind == "any" else {"type": kind}


def properties(fields: Mapping[str, FieldType]) -> dict[str, Any]:
    """JSON-schema ``properties`` from ``{field: type name or schema}``."""
    return {name: _field_schema(kind) for name, kind in fields.items()}


def object_of(**fields: FieldType) -> dict[str, Any]:
    """An object schema with the given fields, e.g. ``object_of(name="string", size="integer")``."""
    return object_schema(properties(fields))


def array_of(items: FieldType) -> dict[str, Any]:
    """An array schema whose items have type (or schema) ``items``."""
    return {"type": "array", "items": _field_schema(items)}


ERROR_SCHEMA = object_of(error_type="string", message="string", stacktrace="string")
"""The shape of :func:`~prefactor_integrations._shared.errors.error_info`."""


@dataclass(frozen=True)
class SpanTypeSpec:
    """One span type: its schema name, display title/description/template and JSON schemas."""

    name: str
    title: str
    description: str
    params_schema: Mapping[str, Any] = field(default_factory=object_schema)
    result_schema: Mapping[str, Any] | None = None
    template: str | None = None


def span_type(
    name: str,
    title: str,
    description: str,
    *,
    template: str | None = None,
    params: Mapping[str, FieldType],
    result: Mapping[str, FieldType] | None = None,
) -> SpanTypeSpec:
    """A :class:`SpanTypeSpec` whose params/result schemas are objects with the given fields."""
    return SpanTypeSpec(
        name=name,
        title=title,
        description=description,
        params_schema=object_schema(properties(params)),
        result_schema=object_schema(properties(result)) if result is not None else None,
        template=template,
    )


@dataclass(frozen=True)
class SpanFamily:
    """Span types that share some params and result fields: call it like :func:`span_type`."""

    params: Mapping[str, FieldType] = field(default_factory=dict)
    result: Mapping[str, FieldType] = field(default_factory=dict)

    def __call__(
        self,
        name: str,
        title: str,
        description: str,
        template: str,
        *,
        params: Mapping[str, FieldType],
        result: Mapping[str, FieldType],
    ) -> SpanTypeSpec:
        """A span type with the family's fields followed by ``params`` / ``result``."""
        return span_type(
            name,
            title,
            description,
            template=template,
            params={**self.params, **params},
            result={**self.result, **result},
        )


def content_hash(value: Any, *, length: int = 16) -> str:
    """Hex SHA-256 (first ``length`` chars) of ``value`` as canonical JSON (sorted keys)."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:length]


def register_span_types(registry: Any, specs: Iterable[SpanTypeSpec]) -> None:
    """Register each spec as a span type of ``registry`` (a ``prefactor_core.SchemaRegistry``).

    Names the registry already has are left as they are, so a user's own registration wins.
    """
    for spec in specs:
        if registry.has_schema(spec.name):
            continue
        registry.register_type(
            spec.name,
            dict(spec.params_schema),
            result_schema=dict(spec.result_schema) if spec.result_schema is not None else None,
            title=spec.title,
            description=spec.description,
            template=spec.template,
        )


def build_agent_schema_version(
    specs: Iterable[SpanTypeSpec], *, registry: Any = None, prefix: str = "schema"
) -> dict[str, Any]:
    """The ``agent_schema_version`` for ``specs`` merged into ``registry`` (or a new one).

    The external identifier is ``"<prefix>-<content hash>"``: the same span types always give the
    same identifier, any change gives a new one.
    """
    if registry is None:
        from prefactor_core import SchemaRegistry

        registry = SchemaRegistry()
    register_span_types(registry, specs)
    body = dict(registry.to_agent_schema_version("pending"))
    body.pop("external_identifier", None)
    body["external_identifier"] = f"{prefix}-{content_hash(body)}"
    return body


def agent_version(
    *, name: str, version: str | None, schema_version: Mapping[str, Any], description: str = ""
) -> dict[str, str]:
    """The ``agent_version`` object: name, description and a stable external identifier.

    The identifier is ``"<version>+<digest>"`` (or ``"auto+<digest>"``) where the digest covers the
    name, description, version and schema identifier, since the server treats a stored version
    as immutable.
    """
    digest = content_hash(
        {
            "name": name,
            "description": description,
            "version": version,
            "schema": schema_version.get("external_identifier"),
        },
        length=12,
    )
    return {
        "name": name,
        "external_identifier": f"{version or 'auto'}+{digest}",
        "description": description,
    }
