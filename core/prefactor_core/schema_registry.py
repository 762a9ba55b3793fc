"""`SchemaRegistry`: the span and quality schemas an agent declares for its schema version."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

__all__ = ["SchemaRegistry", "content_hash"]


def content_hash(value: Any) -> str:
    """A stable identifier of JSON-like ``value``: ``"sha256:"`` + 32 hex digits."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SchemaRegistry:
    """Collects schemas and turns them into an ``agent_schema_version`` for registration.

    Four collections: flat params schemas (``register``), flat result schemas
    (``register_result``), structured span types (``register_type``) and quality schemas
    (``register_quality_schema``).
    """

    def __init__(self) -> None:
        self._span_schemas: dict[str, dict[str, Any]] = {}
        self._span_result_schemas: dict[str, dict[str, Any]] = {}
        self._span_type_schemas: dict[str, dict[str, Any]] = {}
        self._quality_schemas: list[dict[str, Any]] = []

    def register(self, name: str, schema: dict[str, Any]) -> None:
        """Register a flat params schema; `ValueError` if ``name`` is taken."""
        if name in self._span_schemas:
            raise ValueError(f"Schema '{name}' is already registered")
        self._span_schemas[name] = schema

    def register_unsafe(self, name: str, schema: dict[str, Any]) -> None:
        """Register a flat params schema, replacing any existing one."""
        self._span_schemas[name] = schema

    def register_result(self, name: str, result_schema: dict[str, Any]) -> None:
        """Register a flat result schema; `ValueError` if one exists for ``name``."""
        if name in self._span_result_schemas:
            raise ValueError(f"Result schema '{name}' is already registered")
        self._span_result_schemas[name] = result_schema

    def register_type(
        self,
        name: str,
        params_schema: dict[str, Any],
        result_schema: dict[str, Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        template: str | None = None,
        data_risk: dict[str, Any] | None = None,
    ) -> None:
        """Register a span type; `ValueError` if ``name`` is taken. None fields are left out."""
        if name in self._span_type_schemas:
            raise ValueError(f"Span type schema '{name}' is already registered")
        entry: dict[str, Any] = {"name": name, "params_schema": params_schema}
        optional = {
            "result_schema": result_schema,
            "title": title,
            "description": description,
            "template": template,
            "data_risk": data_risk,
        }
        entry.update({key: value for key, value in optional.items() if value is not None})
        self._span_type_schemas[name] = entry

    def register_quality_schema(
        self,
        name: str,
        schema: dict[str, Any],
        title: str | None = None,
        description: str | None = None,
        template: str | None = None,
        data_risk: dict[str, Any] | None = None,
    ) -> None:
        """Register a quality schema; `ValueError` if ``name`` is taken."""
        if any(entry["name"] == name for entry in self._quality_schemas):
            raise ValueError(f"Quality schema '{name}' is already registered")
        entry: dict[str, Any] = {"name": name, "schema": schema}
        optional = {
            "title": title,
            "description": description,
            "template": template,
            "data_risk": data_risk,
        }
        entry.update({key: value for key, value in optional.items() if value is not None})
        self._quality_schemas.append(entry)

    def get(self, name: str) -> dict[str, Any] | None:
        """The flat params schema registered under ``name``."""
        return self._span_schemas.get(name)

    def list_schemas(self) -> list[str]:
        """Names of the flat params schemas."""
        return list(self._span_schemas)

    def has_schema(self, name: str) -> bool:
        """Whether ``name`` is a flat params schema or a span type."""
        return name in self._span_schemas or name in self._span_type_schemas

    def has_span_type(self, name: str) -> bool:
        """Whether ``name`` is a registered span type."""
        return name in self._span_type_schemas

    def collections(self) -> dict[str, Any]:
        """The non-empty collections, as sent in ``agent_schema_version``."""
        out: dict[str, Any] = {}
        if self._span_schemas:
            out["span_schemas"] = copy.deepcopy(self._span_schemas)
        if self._span_result_schemas:
            out["span_result_schemas"] = copy.deepcopy(self._span_result_schemas)
        if self._span_type_schemas:
            out["span_type_schemas"] = copy.deepcopy(list(self._span_type_schemas.values()))
        if self._quality_schemas:
            out["quality_schemas"] = copy.deepcopy(self._quality_schemas)
        return out

    def content_hash(self) -> str:
        """A hash of the registered schemas; equal registries give equal hashes on every run."""
        return content_hash(self.collections())

    def to_agent_schema_version(self, external_id: str | None = None) -> dict[str, Any]:
        """``{"external_identifier": ..., <non-empty collections>}``.

        ``external_id`` defaults to `content_hash`, so the same schemas map to the same schema
        version on every run instead of creating a new one each time.
        """
        collections = self.collections()
        identifier = external_id if external_id is not None else content_hash(collections)
        return {"external_identifier": identifier, **collections}

    def merge(self, other: SchemaRegistry) -> None:
        """Copy ``other``'s entries in. A name both registries define, in any collection, is
        a conflict (as in the published SDK, even when the two entries are equal): one
        `ValueError` lists every conflict, and nothing is changed."""
        mine = {entry["name"] for entry in self._quality_schemas}
        conflicts = [
            f"span_schemas/{name}" for name in other._span_schemas if name in self._span_schemas
        ]
        conflicts += [
            f"span_result_schemas/{name}"
            for name in other._span_result_schemas
            if name in self._span_result_schemas
        ]
        conflicts += [
            f"span_type_schemas/{name}"
            for name in other._span_type_schemas
            if name in self._span_type_schemas
        ]
        conflicts += [
            f"quality_schemas/{entry['name']}"
            for entry in other._quality_schemas
            if entry["name"] in mine
        ]
        if conflicts:
            raise ValueError(f"Cannot merge registries - conflicting schemas: {conflicts}")
        self._span_schemas.update(
            {name: dict(schema) for name, schema in other._span_schemas.items()}
        )
        self._span_result_schemas.update(
            {name: dict(schema) for name, schema in other._span_result_schemas.items()}
        )
        self._span_type_schemas.update(
            {name: dict(entry) for name, entry in other._span_type_schemas.items()}
        )
        self._quality_schemas.extend(dict(entry) for entry in other._quality_schemas)
