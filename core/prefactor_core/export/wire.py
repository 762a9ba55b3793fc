"""What an item looks like on the wire: a bulk item, or the request of its own endpoint.

Both carry the same parameters and the item's idempotency key, so a bulk item and a later
single request for the same operation are one operation to the server. Prepared payloads are
JSON bytes already; they go in as `orjson.Fragment`, so a whole request is one ``dumps``.
Answers are read with orjson into plain dicts, never into models: only ``id``, ``status``,
``control`` and ``termination_reason`` matter here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from prefactor_core.export.ordering import (
    CREATE,
    FINISH_INSTANCE,
    FINISH_SPAN,
    REGISTER,
    START,
    Item,
    Run,
)
from prefactor_core.operations import OperationType

__all__ = [
    "BULK_PATH",
    "bulk_body",
    "instance_path",
    "read_json",
    "single_request",
    "take_details",
]

BULK_PATH = "/api/v1/bulk"

_QUALITY = OperationType.RECORD_QUALITY

_TYPES = {
    REGISTER: "agent_instances/register",
    START: "agent_instances/start",
    FINISH_INSTANCE: "agent_instances/finish",
    _QUALITY: "agent_instances/record_quality",
    CREATE: "agent_spans/create",
    FINISH_SPAN: "agent_spans/finish",
}
_EMPTY = orjson.Fragment(b"{}")


def _fragment(data: bytes | None) -> orjson.Fragment | None:
    return None if data is None else orjson.Fragment(data)


def instance_path(instance_id: str, action: str | None = None) -> str:
    """``/api/v1/agent_instance/{id}[/action]``."""
    path = f"/api/v1/agent_instance/{quote(instance_id, safe='')}"
    return path if action is None else f"{path}/{action}"


def _fields(item: Item) -> dict[str, Any]:
    """The item's parameters as its own endpoint takes them (no None values)."""
    data = item.data
    timestamp = item.timestamp
    run = item.run
    kind = item.kind
    fields: dict[str, Any]
    if kind is CREATE:
        status = item.status
        fields = {
            "agent_instance_id": run.server_id,
            "schema_name": data["schema_name"],
            "status": status or "active",
            "payload": _fragment(item.payload) or _EMPTY,
            "id": item.span_id,
            "started_at": data.get("started_at") or timestamp,
        }
        parent = run.server_span_id(item.parent_id)
        if parent is not None:
            fields["parent_span_id"] = parent
        if status is not None:
            fields["finished_at"] = item.finished_at
            if item.result is not None:
                fields["result_payload"] = orjson.Fragment(item.result)
    elif kind is FINISH_SPAN:
        fields = {"status": data.get("status") or "complete", "timestamp": timestamp}
        if item.result is not None:
            fields["result_payload"] = orjson.Fragment(item.result)
    elif kind is REGISTER:
        fields = {
            "agent_version": _fragment(item.payload) or _EMPTY,
            "agent_schema_version": _fragment(item.result) or _EMPTY,
            "update_current_version": True,
            "id": run.instance_id,
        }
        for name in ("agent_id", "environment_id", "purpose", "external_identifier"):
            value = data.get(name)
            if value is not None:
                fields[name] = value
    elif kind is START:
        fields = {"timestamp": timestamp}
    elif kind is FINISH_INSTANCE:
        fields = {"status": data.get("status") or "complete", "timestamp": timestamp}
    else:
        fields = {"name": str(data.get("name")), "payload": _fragment(item.payload)}
    return fields


def bulk_body(items: list[Item]) -> bytes:
    """The ``POST /api/v1/bulk`` body carrying ``items`` in order."""
    encoded: list[dict[str, Any]] = []
    for item in items:
        fields = _fields(item)
        entry: dict[str, Any] = {"_type": _TYPES[item.kind], "idempotency_key": item.key}
        kind = item.kind
        if kind is FINISH_SPAN:
            entry["agent_span_id"] = item.run.server_span_id(item.span_id)
        elif kind is not CREATE and kind is not REGISTER:
            entry["agent_instance_id"] = item.run.server_id
        entry.update(fields)
        encoded.append(entry)
    return orjson.dumps({"items": encoded})


def single_request(item: Item) -> tuple[str, bytes]:
    """The path and body of ``item``'s own endpoint."""
    fields = _fields(item)
    kind = item.kind
    run = item.run
    key = item.key
    if kind is CREATE:
        fields["idempotency_key"] = key
        return "/api/v1/agent_spans", orjson.dumps({"details": fields, "idempotency_key": key})
    fields["idempotency_key"] = key
    if kind is FINISH_SPAN:
        span = quote(run.server_span_id(item.span_id) or "", safe="")
        return f"/api/v1/agent_spans/{span}/finish", orjson.dumps(fields)
    if kind is REGISTER:
        return "/api/v1/agent_instance/register", orjson.dumps(fields)
    action = {START: "start", FINISH_INSTANCE: "finish", _QUALITY: "record_quality"}[kind]
    return instance_path(run.server_id, action), orjson.dumps(fields)


def read_json(body: bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object, or None when it is not one."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def take_details(item: Item, run: Run, details: Any, control: Any) -> str | None:
    """Take in what the server answered for ``item``: server ids, and the termination
    reason when the answer says the instance was terminated (``""`` when it gave none);
    None when it was not."""
    if isinstance(details, dict):
        server_id = details.get("id")
        if isinstance(server_id, str) and server_id:
            if item.kind is REGISTER and server_id != run.instance_id:
                run.server_id = server_id
            elif item.kind is CREATE and item.span_id and server_id != item.span_id:
                run.map_span(item.span_id, server_id)
        spans = (CREATE, FINISH_SPAN)
        if item.kind not in spans and details.get("status") == "terminated":
            reason = details.get("termination_reason")
            return reason if isinstance(reason, str) else ""
    if isinstance(control, dict) and control.get("terminate"):
        reason = control.get("reason")
        return reason if isinstance(reason, str) else ""
    return None
