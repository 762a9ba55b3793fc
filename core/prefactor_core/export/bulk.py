"""The bulk transport's items: one ``POST /api/v1/bulk`` item per job, and reading its output.

Each item carries the same parameters as the job's own endpoint and the job's idempotency key,
so an item and a later single request for the same job are one operation to the server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefactor_core.export.scheduler import Job
from prefactor_core.monitoring.registry import termination_registry
from prefactor_core.operations import OperationType
from prefactor_core.utils import ensure_utc

__all__ = ["apply_output", "bulk_item"]

_TYPES = {
    OperationType.REGISTER_AGENT_INSTANCE: "agent_instances/register",
    OperationType.START_AGENT_INSTANCE: "agent_instances/start",
    OperationType.FINISH_AGENT_INSTANCE: "agent_instances/finish",
    OperationType.RECORD_QUALITY: "agent_instances/record_quality",
    OperationType.CREATE_SPAN: "agent_spans/create",
    OperationType.FINISH_SPAN: "agent_spans/finish",
}


def _iso(value: Any) -> str | None:
    stamp = ensure_utc(value) if isinstance(value, datetime) else None
    return None if stamp is None else stamp.isoformat()


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def span_create_fields(job: Job) -> dict[str, Any]:
    """The fields of a span create (shared by the single and the bulk transport)."""
    op = job.op
    data = op.payload
    lane = job.lane
    parent = job.span.parent_id if job.span is not None else data.get("parent_span_id")
    status = job.terminal_status
    finished_at = None
    if job.finish_op is not None:
        finished_at = job.finish_op.timestamp
    elif status is not None:
        finished_at = data.get("finished_at") or op.timestamp
    return {
        "agent_instance_id": lane.server_id,
        "schema_name": str(data["schema_name"]),
        "status": status or "active",
        "payload": job.payload or {},
        "result_payload": job.result_payload if status is not None else None,
        "id": str(data["span_id"]),
        "parent_span_id": None if parent is None else lane.server_span_id(parent),
        "started_at": data.get("started_at") or op.timestamp,
        "finished_at": finished_at,
    }


def bulk_item(job: Job) -> dict[str, Any]:
    """The bulk item for ``job``."""
    op = job.op
    data = op.payload
    lane = job.lane
    kind = op.type
    item: dict[str, Any] = {"_type": _TYPES[kind], "idempotency_key": job.key}
    if kind is OperationType.REGISTER_AGENT_INSTANCE:
        versions = job.payload or {}
        item["agent_version"] = versions.get("agent_version") or {}
        item["agent_schema_version"] = versions.get("agent_schema_version") or {}
        item["update_current_version"] = True
        item.update(
            _present(
                {
                    "agent_id": data.get("agent_id"),
                    "environment_id": data.get("environment_id"),
                    "id": lane.instance_id,
                    "purpose": data.get("purpose"),
                    "external_identifier": data.get("external_identifier"),
                }
            )
        )
    elif kind is OperationType.START_AGENT_INSTANCE:
        item["agent_instance_id"] = lane.server_id
        item["timestamp"] = _iso(op.timestamp)
    elif kind is OperationType.FINISH_AGENT_INSTANCE:
        item["agent_instance_id"] = lane.server_id
        item["status"] = data.get("status") or "complete"
        item["timestamp"] = _iso(op.timestamp)
    elif kind is OperationType.RECORD_QUALITY:
        item["agent_instance_id"] = lane.server_id
        item["name"] = str(data.get("name"))
        item["payload"] = job.payload
    elif kind is OperationType.CREATE_SPAN:
        fields = span_create_fields(job)
        fields["started_at"] = _iso(fields["started_at"])
        fields["finished_at"] = _iso(fields["finished_at"])
        item.update(_present(fields))
    else:
        item["agent_span_id"] = lane.server_span_id(str(data["span_id"]))
        item.update(
            _present(
                {
                    "status": data.get("status") or "complete",
                    "result_payload": job.result_payload,
                    "timestamp": _iso(op.timestamp),
                }
            )
        )
    return item


def apply_output(job: Job, output: dict[str, Any]) -> None:
    """Take in a successful item's envelope: server ids and termination signals."""
    details = output.get("details")
    details = details if isinstance(details, dict) else {}
    lane = job.lane
    kind = job.op.type
    if kind is OperationType.CREATE_SPAN or kind is OperationType.FINISH_SPAN:
        if kind is OperationType.CREATE_SPAN:
            local_id = str(job.op.payload["span_id"])
            server_id = details.get("id")
            if isinstance(server_id, str) and server_id and server_id != local_id:
                lane.map_span(local_id, server_id)
        control = output.get("control")
        if isinstance(control, dict) and control.get("terminate"):
            reason = control.get("reason")
            termination_registry.mark(lane.instance_id, reason if isinstance(reason, str) else None)
        return
    if kind is OperationType.REGISTER_AGENT_INSTANCE:
        server_id = details.get("id")
        if isinstance(server_id, str) and server_id and server_id != lane.instance_id:
            lane.server_id = server_id
    if details.get("status") == "terminated":
        reason = details.get("termination_reason")
        termination_registry.mark(lane.instance_id, reason if isinstance(reason, str) else None)
