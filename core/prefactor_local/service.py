"""What each endpoint does: validation, state transitions, idempotency, JSON shaping.

Every method is synchronous and runs one write transaction of the `TraceStore`; the HTTP layer
calls them from a worker thread and the bulk endpoint calls them one item after another. They
return the response envelope and raise `ApiError` for everything that is not a success.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from prefactor_local.errors import (
    ApiError,
    already_exists,
    invalid_action,
    not_found,
    validation_error,
)
from prefactor_local.pfid import new_pfid, pfid_partition
from prefactor_local.store import (
    FINISHED_STATUSES,
    SPAN_SELECT,
    SPAN_STATUSES,
    TraceStore,
    agent_to_json,
    instances_to_json,
    span_to_json,
)
from prefactor_local.timeutil import now_iso
from prefactor_local.validation import Errors, Fields, require_object

PURPOSES = ("live", "smoke_test", "eval")
TERMINAL_STATUSES = (*FINISHED_STATUSES, "terminated")
AGENT_FIELDS = (
    "description",
    "external_identifier",
    "owner_person_id",
    "risk_profile_id",
    "team_id",
)
UPDATABLE_AGENT_FIELDS = ("description", "owner_person_id", "risk_profile_id", "team_id")
DEFAULT_PAGE_SIZE = 25
API_MAX_PAGE_SIZE = 100
LOCAL_MAX_PAGE_SIZE = 1000
MAX_BULK_ITEMS = 1000

Envelope = dict[str, Any]
Operation = Callable[[sqlite3.Connection], tuple[str, str, dict[str, Any]]]

BULK_TYPES = (
    "agent_instances/register",
    "agent_instances/start",
    "agent_instances/finish",
    "agent_instances/record_quality",
    "agent_spans/create",
    "agent_spans/finish",
)


def success(details: dict[str, Any]) -> Envelope:
    """The single-object success envelope."""
    return {"status": "success", "details": details}


class Service:
    """The local API's behaviour over one `TraceStore`."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        # While a bulk request runs: each instance's control signal, read once. Nothing in a
        # bulk request can terminate an instance, so it holds for the whole request.
        self._controls: dict[Any, dict[str, Any] | None] | None = None

    # -- shared pieces ----------------------------------------------------------------------

    def _run(self, route: str, key: str | None, operation: Operation) -> dict[str, Any]:
        """Run `operation` in a transaction, or replay the response stored for (route, key)."""
        with self.store.write() as conn:
            if key is not None:
                row = conn.execute(
                    "SELECT resource, resource_id, response FROM idempotency_keys "
                    "WHERE route = ? AND key = ?",
                    (route, key),
                ).fetchone()
                if row is not None:
                    conn.execute(
                        f"UPDATE {row['resource']} SET replays = replays + 1 WHERE id = ?",
                        (row["resource_id"],),
                    )
                    details: dict[str, Any] = json.loads(row["response"])
                    return details
            resource, resource_id, details = operation(conn)
            if key is not None:
                conn.execute(
                    "INSERT INTO idempotency_keys "
                    "(route, key, resource, resource_id, response, inserted_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (route, key, resource, resource_id, json.dumps(details), now_iso()),
                )
            return details

    def _meta_id(self, conn: sqlite3.Connection, name: str) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()
        if row is not None:
            return str(row["value"])
        value = new_pfid()
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value))
        return value

    def _instance_row(self, conn: sqlite3.Connection, instance_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM agent_instances WHERE id = ?", (instance_id,)).fetchone()
        if row is None:
            raise not_found("agent_instance", instance_id)
        result: sqlite3.Row = row
        return result

    def _unfinished_instance_row(self, conn: sqlite3.Connection, instance_id: str) -> sqlite3.Row:
        """The instance's row; 409 ``invalid_action`` once it reached a terminal status."""
        row = self._instance_row(conn, instance_id)
        if row["status"] in TERMINAL_STATUSES:
            raise invalid_action(
                f"agent_instance {instance_id!r} is already finished ({row['status']})"
            )
        return row

    def _instance_json(self, conn: sqlite3.Connection, instance_id: str) -> dict[str, Any]:
        return instances_to_json(conn, [self._instance_row(conn, instance_id)])[0]

    def _span_json(self, conn: sqlite3.Connection, span_id: str) -> dict[str, Any]:
        row = conn.execute(SPAN_SELECT + " WHERE s.id = ?", (span_id,)).fetchone()
        if row is None:
            raise not_found("agent_span", span_id)
        return span_to_json(row)

    def _span_envelope(self, details: dict[str, Any]) -> Envelope:
        envelope = success(details)
        control = self._control(details.get("agent_instance_id"))
        if control is not None:
            envelope["control"] = control
        return envelope

    def _control(self, instance_id: Any) -> dict[str, Any] | None:
        """The ``control`` object of a span response: set once the instance is terminated."""
        controls = self._controls
        if controls is not None and instance_id in controls:
            return controls[instance_id]
        with self.store.read() as conn:
            row = conn.execute(
                "SELECT status, termination_reason FROM agent_instances WHERE id = ?",
                (instance_id,),
            ).fetchone()
        control = None
        if row is not None and row["status"] == "terminated":
            control = {"terminate": True, "reason": row["termination_reason"]}
        if controls is not None:
            controls[instance_id] = control
        return control

    @staticmethod
    def _key(fields: Fields, header_key: str | None) -> str | None:
        key = fields.idempotency_key()
        if key is None and header_key is not None:
            key = Fields({"Idempotency-Key": header_key}, fields.errors).idempotency_key(
                "Idempotency-Key"
            )
        return key

    # -- ping -------------------------------------------------------------------------------

    def ping(self) -> Envelope:
        """Token check."""
        return {"status": "success", "details": {"status": "success", "message": "pong"}}

    # -- agent instances --------------------------------------------------------------------

    def register(self, body: Any, header_key: str | None = None) -> Envelope:
        """POST /api/v1/agent_instance/register."""
        fields = require_object(body)
        agent_version = fields.nested("agent_version")
        schema_version = fields.nested("agent_schema_version")
        update_current = fields.boolean("update_current_version", True)
        agent_id = fields.ident("agent_id")
        environment_id = fields.ident("environment_id")
        instance_id = fields.ident("id")
        purpose = fields.choice("purpose", PURPOSES) or "live"
        external_identifier = fields.string("external_identifier", max_length=255)
        key = self._key(fields, header_key)
        version_name = version_description = version_ext = schema_ext = None
        if agent_version is not None:
            version_name = agent_version.string("name", max_length=255)
            version_description = _text(agent_version, "description")
            version_ext = agent_version.string("external_identifier", max_length=255)
        if schema_version is not None:
            schema_ext = schema_version.string("external_identifier", max_length=255)
            for name in ("span_schemas", "span_result_schemas"):
                schema_version.obj(name)
            _list_of_objects(schema_version, "span_type_schemas", required_keys=("name",))
            _list_of_objects(schema_version, "quality_schemas", required_keys=("name",))
        fields.raise_if_any()
        assert agent_version is not None and schema_version is not None
        version_body = dict(agent_version.data)
        schema_body = dict(schema_version.data)

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            new_id = instance_id or new_pfid()
            if instance_id is not None and _exists(conn, "agent_instances", instance_id):
                raise already_exists(f"agent_instance {instance_id!r} already exists")
            stamp = now_iso()
            agent = self._resolve_agent(conn, agent_id, version_name, stamp)
            environment = environment_id or self._meta_id(conn, "default_environment_id")
            version_id = self._agent_version(
                conn, agent, version_ext, version_name, version_description, version_body, stamp
            )
            schema_id = self._schema_version(conn, agent, schema_ext, schema_body, stamp)
            deployment_id = self._deployment(
                conn, agent, environment, version_id, schema_id, update_current, stamp
            )
            if external_identifier is not None:
                clash = conn.execute(
                    "SELECT id FROM agent_instances WHERE agent_id = ? AND external_identifier = ?",
                    (agent, external_identifier),
                ).fetchone()
                if clash is not None:
                    raise already_exists(
                        f"an agent_instance with external_identifier {external_identifier!r} "
                        "already exists for this agent"
                    )
            conn.execute(
                "INSERT INTO agent_instances (id, account_id, agent_id, agent_version_id, "
                "agent_schema_version_id, environment_id, agent_deployment_id, status, purpose, "
                "external_identifier, inserted_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                (
                    new_id,
                    self._meta_id(conn, "account_id"),
                    agent,
                    version_id,
                    schema_id,
                    environment,
                    deployment_id,
                    purpose,
                    external_identifier,
                    stamp,
                    stamp,
                ),
            )
            conn.execute(
                "UPDATE agents SET status = 'active', updated_at = ? "
                "WHERE id = ? AND status IN ('pending', 'dormant')",
                (stamp, agent),
            )
            return "agent_instances", new_id, self._instance_json(conn, new_id)

        return success(self._run("POST /api/v1/agent_instance/register", key, operation))

    def _resolve_agent(
        self, conn: sqlite3.Connection, agent_id: str | None, name: str | None, stamp: str
    ) -> str:
        """The agent of a register; unknown ids are created so any agent id works locally."""
        if agent_id is None:
            agent_id = self._meta_id(conn, "default_agent_id")
        row = conn.execute(
            "SELECT status, deleted FROM agents WHERE id = ?", (agent_id,)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO agents (id, name, status, inserted_at, updated_at) "
                "VALUES (?, ?, 'active', ?, ?)",
                (agent_id, name or "Local agent", stamp, stamp),
            )
        elif row["deleted"]:
            raise not_found("agent", agent_id)
        elif row["status"] == "retired":
            raise invalid_action(f"agent {agent_id!r} is retired")
        return agent_id

    def _agent_version(
        self,
        conn: sqlite3.Connection,
        agent_id: str,
        external_identifier: str | None,
        name: str | None,
        description: str | None,
        body: dict[str, Any],
        stamp: str,
    ) -> str:
        ext = external_identifier or _content_id(body)
        row = conn.execute(
            "SELECT id, name, description FROM agent_versions "
            "WHERE agent_id = ? AND external_identifier = ?",
            (agent_id, ext),
        ).fetchone()
        if row is not None:
            if (row["name"], row["description"]) != (name, description):
                raise already_exists(
                    f"agent_version with external_identifier {ext!r} already exists "
                    "with different details"
                )
            return str(row["id"])
        version_id = new_pfid()
        conn.execute(
            "INSERT INTO agent_versions "
            "(id, agent_id, external_identifier, name, description, body, inserted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version_id, agent_id, ext, name, description, json.dumps(body), stamp),
        )
        return version_id

    def _schema_version(
        self,
        conn: sqlite3.Connection,
        agent_id: str,
        external_identifier: str | None,
        body: dict[str, Any],
        stamp: str,
    ) -> str:
        ext = external_identifier or _content_id(body)
        row = conn.execute(
            "SELECT id FROM agent_schema_versions WHERE agent_id = ? AND external_identifier = ?",
            (agent_id, ext),
        ).fetchone()
        if row is not None:
            return str(row["id"])
        version_id = new_pfid()
        conn.execute(
            "INSERT INTO agent_schema_versions "
            "(id, agent_id, external_identifier, body, inserted_at) VALUES (?, ?, ?, ?, ?)",
            (version_id, agent_id, ext, json.dumps(body), stamp),
        )
        return version_id

    def _deployment(
        self,
        conn: sqlite3.Connection,
        agent_id: str,
        environment_id: str,
        version_id: str,
        schema_id: str,
        update_current: bool,
        stamp: str,
    ) -> str:
        row = conn.execute(
            "SELECT id FROM agent_deployments WHERE agent_id = ? AND environment_id = ?",
            (agent_id, environment_id),
        ).fetchone()
        if row is None:
            deployment_id = new_pfid()
            conn.execute(
                "INSERT INTO agent_deployments (id, agent_id, environment_id, agent_version_id, "
                "agent_schema_version_id, inserted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (deployment_id, agent_id, environment_id, version_id, schema_id, stamp, stamp),
            )
            return deployment_id
        if update_current:
            conn.execute(
                "UPDATE agent_deployments SET agent_version_id = ?, agent_schema_version_id = ?, "
                "updated_at = ? WHERE id = ?",
                (version_id, schema_id, stamp, row["id"]),
            )
        return str(row["id"])

    def start_instance(
        self, instance_id: str, body: Any, header_key: str | None = None
    ) -> Envelope:
        """POST /api/v1/agent_instance/{id}/start."""
        fields = require_object({} if body is None else body)
        timestamp = fields.timestamp("timestamp")
        key = self._key(fields, header_key)
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            row = self._instance_row(conn, instance_id)
            if row["status"] != "pending":
                raise invalid_action(
                    f"agent_instance {instance_id!r} cannot be started: it is {row['status']}"
                )
            stamp = now_iso()
            conn.execute(
                "UPDATE agent_instances SET status = 'active', started_at = ?, updated_at = ? "
                "WHERE id = ?",
                (timestamp or stamp, stamp, instance_id),
            )
            return "agent_instances", instance_id, self._instance_json(conn, instance_id)

        route = f"POST /api/v1/agent_instance/{instance_id}/start"
        return success(self._run(route, key, operation))

    def finish_instance(
        self, instance_id: str, body: Any, header_key: str | None = None
    ) -> Envelope:
        """POST /api/v1/agent_instance/{id}/finish."""
        fields = require_object({} if body is None else body)
        status = fields.choice("status", FINISHED_STATUSES) or "complete"
        timestamp = fields.timestamp("timestamp")
        key = self._key(fields, header_key)
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            self._unfinished_instance_row(conn, instance_id)
            stamp = now_iso()
            conn.execute(
                "UPDATE agent_instances SET status = ?, finished_at = ?, updated_at = ? "
                "WHERE id = ?",
                (status, timestamp or stamp, stamp, instance_id),
            )
            return "agent_instances", instance_id, self._instance_json(conn, instance_id)

        route = f"POST /api/v1/agent_instance/{instance_id}/finish"
        return success(self._run(route, key, operation))

    def get_instance(self, instance_id: str) -> Envelope:
        """GET /api/v1/agent_instance/{id}."""
        with self.store.read() as conn:
            return success(self._instance_json(conn, instance_id))

    def record_quality(
        self, instance_id: str, body: Any, header_key: str | None = None
    ) -> Envelope:
        """POST /api/v1/agent_instance/{id}/record_quality (a null payload removes the name)."""
        fields = require_object(body)
        name = fields.string("name", required=True, max_length=255)
        if "payload" not in fields.data:
            fields.errors.add(("payload",), "is required (null removes the entry)")
        payload = fields.obj("payload")
        key = self._key(fields, header_key)
        fields.raise_if_any()
        assert name is not None

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            row = self._instance_row(conn, instance_id)
            quality = json.loads(row["quality_payloads"])
            if payload is None:
                quality.pop(name, None)
            else:
                quality[name] = payload
            conn.execute(
                "UPDATE agent_instances SET quality_payloads = ?, updated_at = ? WHERE id = ?",
                (json.dumps(quality), now_iso(), instance_id),
            )
            return "agent_instances", instance_id, self._instance_json(conn, instance_id)

        route = f"POST /api/v1/agent_instance/{instance_id}/record_quality"
        return success(self._run(route, key, operation))

    def terminate(self, instance_id: str, body: Any, header_key: str | None = None) -> Envelope:
        """POST /api/v1/agent_instance/{id}/terminate: stop a run from the platform side."""
        fields = require_object({} if body is None else body)
        reason = _text(fields, "reason")
        key = self._key(fields, header_key)
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            self._unfinished_instance_row(conn, instance_id)
            stamp = now_iso()
            conn.execute(
                "UPDATE agent_instances SET status = 'terminated', termination_reason = ?, "
                "finished_at = ?, updated_at = ? WHERE id = ?",
                (reason, stamp, stamp, instance_id),
            )
            return "agent_instances", instance_id, self._instance_json(conn, instance_id)

        route = f"POST /api/v1/agent_instance/{instance_id}/terminate"
        return success(self._run(route, key, operation))

    def list_instances(self, params: Mapping[str, str]) -> Envelope:
        """GET /api/v1/agent_instance: instances, newest first by default."""
        page = _Page.parse(params, LOCAL_MAX_PAGE_SIZE, default_size=100)
        sort = _Sort.parse(
            params,
            ("inserted_at", "started_at", "finished_at", "updated_at", "id", "status"),
            "-inserted_at",
        )
        where, args = _filters(params, ("agent_id", "status", "purpose", "environment_id"))
        with self.store.read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM agent_instances{where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM agent_instances{where} ORDER BY {sort.sql()} LIMIT ? OFFSET ?",
                (*args, page.size, page.offset),
            ).fetchall()
            summaries = instances_to_json(conn, rows)
        return _list(summaries, page, total, sort)

    # -- spans ------------------------------------------------------------------------------

    def create_span(self, body: Any, header_key: str | None = None) -> Envelope:
        """POST /api/v1/agent_spans (a terminal status makes a create+finish in one call)."""
        fields = require_object(body)
        details = fields.nested("details")
        outer_key = fields.idempotency_key()
        if details is None:
            fields.raise_if_any()
        assert details is not None
        instance_id = details.ident("agent_instance_id", required=True)
        schema_name = details.string("schema_name", required=True, max_length=255)
        status = details.choice("status", SPAN_STATUSES, required=True)
        payload = details.obj("payload") or {}
        result_payload = details.obj("result_payload")
        span_id = details.ident("id")
        parent_id = details.ident("parent_span_id")
        started_at = details.timestamp("started_at")
        finished_at = details.timestamp("finished_at")
        inner_key = details.idempotency_key()
        if inner_key and outer_key and inner_key != outer_key:
            fields.errors.add(("idempotency_key",), "differs from details.idempotency_key")
        key = inner_key or outer_key
        if key is None and header_key is not None:
            key = self._key(Fields({}, fields.errors), header_key)
        if finished_at is not None and status is not None and status not in FINISHED_STATUSES:
            details.errors.add(("details", "finished_at"), "is only allowed with a terminal status")
        if span_id is not None and span_id == parent_id:
            details.errors.add(("details", "parent_span_id"), "must differ from id")
        fields.raise_if_any()
        assert instance_id is not None and schema_name is not None and status is not None

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            instance = self._instance_row(conn, instance_id)
            if span_id is not None and _exists(conn, "agent_spans", span_id):
                raise already_exists(f"agent_span {span_id!r} already exists")
            if parent_id is not None:
                parent = conn.execute(
                    "SELECT agent_instance_id FROM agent_spans WHERE id = ?", (parent_id,)
                ).fetchone()
                if parent is None or parent["agent_instance_id"] != instance_id:
                    raise validation_error(
                        {
                            "details": {
                                "parent_span_id": [
                                    "must be the id of an existing span of the same agent_instance"
                                ]
                            }
                        }
                    )
            stamp = now_iso()
            new_id = span_id or new_pfid(pfid_partition(instance_id))
            start = started_at or (None if status == "pending" else stamp)
            finish = (finished_at or stamp) if status in FINISHED_STATUSES else None
            conn.execute(
                "INSERT INTO agent_spans (id, agent_instance_id, parent_span_id, schema_name, "
                "status, payload, result_payload, started_at, finished_at, inserted_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    instance_id,
                    parent_id,
                    schema_name,
                    status,
                    json.dumps(payload),
                    None if result_payload is None else json.dumps(result_payload),
                    start,
                    finish,
                    stamp,
                    stamp,
                ),
            )
            # What `span_to_json` would read back from the row just written.
            return (
                "agent_spans",
                new_id,
                {
                    "type": "agent_span",
                    "id": new_id,
                    "account_id": instance["account_id"],
                    "agent_id": instance["agent_id"],
                    "agent_instance_id": instance_id,
                    "parent_span_id": parent_id,
                    "schema_name": schema_name,
                    "status": status,
                    "payload": payload,
                    "result_payload": result_payload,
                    "started_at": start,
                    "finished_at": finish,
                    "inserted_at": stamp,
                    "updated_at": stamp,
                },
            )

        return self._span_envelope(self._run("POST /api/v1/agent_spans", key, operation))

    def finish_span(self, span_id: str, body: Any, header_key: str | None = None) -> Envelope:
        """POST /api/v1/agent_spans/{id}/finish."""
        fields = require_object({} if body is None else body)
        status = fields.choice("status", FINISHED_STATUSES) or "complete"
        result_payload = fields.obj("result_payload")
        timestamp = fields.timestamp("timestamp")
        key = self._key(fields, header_key)
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            row = conn.execute("SELECT status FROM agent_spans WHERE id = ?", (span_id,)).fetchone()
            if row is None:
                raise not_found("agent_span", span_id)
            if row["status"] in FINISHED_STATUSES:
                raise invalid_action(
                    f"agent_span {span_id!r} is already finished ({row['status']})"
                )
            if row["status"] == "pending" and status != "cancelled":
                raise invalid_action(f"agent_span {span_id!r} is pending: it can only be cancelled")
            stamp = now_iso()
            conn.execute(
                "UPDATE agent_spans SET status = ?, finished_at = ?, updated_at = ?, "
                "result_payload = COALESCE(?, result_payload) WHERE id = ?",
                (
                    status,
                    timestamp or stamp,
                    stamp,
                    None if result_payload is None else json.dumps(result_payload),
                    span_id,
                ),
            )
            return "agent_spans", span_id, self._span_json(conn, span_id)

        route = f"POST /api/v1/agent_spans/{span_id}/finish"
        return self._span_envelope(self._run(route, key, operation))

    def list_spans(self, params: Mapping[str, str]) -> Envelope:
        """GET /api/v1/agent_spans: spans in creation order by default."""
        page = _Page.parse(params, LOCAL_MAX_PAGE_SIZE, default_size=100)
        sort = _Sort.parse(
            params,
            (
                "inserted_at",
                "started_at",
                "finished_at",
                "updated_at",
                "id",
                "status",
                "schema_name",
            ),
            "inserted_at",
            prefix="s.",
        )
        where, args = _filters(
            params, ("agent_instance_id", "status", "schema_name", "parent_span_id"), prefix="s."
        )
        with self.store.read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM agent_spans s{where}", args).fetchone()[0]
            rows = conn.execute(
                f"{SPAN_SELECT}{where} ORDER BY {sort.sql()} LIMIT ? OFFSET ?",
                (*args, page.size, page.offset),
            ).fetchall()
        return _list([span_to_json(row) for row in rows], page, total, sort)

    # -- agents -----------------------------------------------------------------------------

    def _agent_row(self, conn: sqlite3.Connection, agent_id: str) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM agents WHERE id = ? AND deleted = 0", (agent_id,)
        ).fetchone()
        if row is None:
            raise not_found("agent", agent_id)
        result: sqlite3.Row = row
        return result

    def _agent_json(self, conn: sqlite3.Connection, agent_id: str) -> dict[str, Any]:
        return agent_to_json(conn, self._agent_row(conn, agent_id))

    def create_agent(self, body: Any, header_key: str | None = None) -> Envelope:
        """POST /api/v1/agent."""
        fields = require_object(body)
        details = fields.nested("details")
        key = self._key(fields, header_key)
        fields.raise_if_any()
        assert details is not None
        name = details.string("name", required=True, max_length=255)
        agent_id = details.ident("id")
        values = {field: _text(details, field) for field in AGENT_FIELDS}
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            if agent_id is not None and _exists(conn, "agents", agent_id):
                raise already_exists(f"agent {agent_id!r} already exists")
            ext = values["external_identifier"]
            if (
                ext is not None
                and conn.execute(
                    "SELECT 1 FROM agents WHERE external_identifier = ? AND deleted = 0", (ext,)
                ).fetchone()
            ):
                raise already_exists(f"an agent with external_identifier {ext!r} already exists")
            new_id = agent_id or new_pfid()
            stamp = now_iso()
            conn.execute(
                "INSERT INTO agents (id, name, description, external_identifier, "
                "owner_person_id, risk_profile_id, team_id, status, inserted_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (new_id, name, *(values[field] for field in AGENT_FIELDS), stamp, stamp),
            )
            return "agents", new_id, self._agent_json(conn, new_id)

        return success(self._run("POST /api/v1/agent", key, operation))

    def get_agent(self, agent_id: str) -> Envelope:
        """GET /api/v1/agent/{id}."""
        with self.store.read() as conn:
            return success(self._agent_json(conn, agent_id))

    def update_agent(self, agent_id: str, body: Any, header_key: str | None = None) -> Envelope:
        """PUT /api/v1/agent/{id}; a field sent as null is cleared."""
        fields = require_object(body)
        details = fields.nested("details")
        key = self._key(fields, header_key)
        fields.raise_if_any()
        assert details is not None
        changes: dict[str, str | None] = {}
        if "name" in details.data:
            name = details.string("name", required=True, max_length=255)
            if name is not None:
                changes["name"] = name
        for field in UPDATABLE_AGENT_FIELDS:
            present, value = details.nullable_string(field)
            if present:
                changes[field] = value
        for field in ("id", "external_identifier", "status"):
            if field in details.data:
                details.errors.add(("details", field), "cannot be changed")
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            self._agent_row(conn, agent_id)
            if changes:
                assignments = ", ".join(f"{field} = ?" for field in changes)
                conn.execute(
                    f"UPDATE agents SET {assignments}, updated_at = ? WHERE id = ?",
                    (*changes.values(), now_iso(), agent_id),
                )
            return "agents", agent_id, self._agent_json(conn, agent_id)

        return success(self._run(f"PUT /api/v1/agent/{agent_id}", key, operation))

    def agent_action(
        self, agent_id: str, action: str, body: Any, header_key: str | None = None
    ) -> Envelope:
        """POST /api/v1/agent/{id}/retire|reinstate and DELETE /api/v1/agent/{id}."""
        fields = require_object({} if body is None else body)
        key = self._key(fields, header_key)
        fields.raise_if_any()

        def operation(conn: sqlite3.Connection) -> tuple[str, str, dict[str, Any]]:
            row = self._agent_row(conn, agent_id)
            stamp = now_iso()
            if action == "retire":
                if row["status"] == "retired":
                    raise invalid_action(f"agent {agent_id!r} is already retired")
                conn.execute(
                    "UPDATE agents SET status = 'retired', updated_at = ? WHERE id = ?",
                    (stamp, agent_id),
                )
            elif action == "reinstate":
                if row["status"] != "retired":
                    raise invalid_action(f"agent {agent_id!r} is not retired")
                has_instances = conn.execute(
                    "SELECT 1 FROM agent_instances WHERE agent_id = ? LIMIT 1", (agent_id,)
                ).fetchone()
                conn.execute(
                    "UPDATE agents SET status = ?, updated_at = ? WHERE id = ?",
                    ("active" if has_instances else "pending", stamp, agent_id),
                )
            else:
                details = self._agent_json(conn, agent_id)
                conn.execute(
                    "UPDATE agents SET deleted = 1, updated_at = ? WHERE id = ?", (stamp, agent_id)
                )
                details["available_actions"] = dict.fromkeys(details["available_actions"], False)
                return "agents", agent_id, details
            return "agents", agent_id, self._agent_json(conn, agent_id)

        method, suffix = ("DELETE", "") if action == "delete" else ("POST", f"/{action}")
        return success(self._run(f"{method} /api/v1/agent/{agent_id}{suffix}", key, operation))

    def list_agents(self, params: Mapping[str, str]) -> Envelope:
        """GET /api/v1/agent: AgentSummary list."""
        page = _Page.parse(params, API_MAX_PAGE_SIZE, default_size=DEFAULT_PAGE_SIZE)
        sort = _Sort.parse(
            params,
            ("name", "id", "inserted_at", "updated_at", "status", "external_identifier"),
            "inserted_at",
        )
        where, args = _filters(params, ("risk_profile_id", "team_id", "owner_person_id", "status"))
        where = f"{where} AND deleted = 0" if where else " WHERE deleted = 0"
        with self.store.read() as conn:
            total = conn.execute(f"SELECT COUNT(*) FROM agents{where}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT * FROM agents{where} ORDER BY {sort.sql()} LIMIT ? OFFSET ?",
                (*args, page.size, page.offset),
            ).fetchall()
            summaries = [agent_to_json(conn, row, summary=True) for row in rows]
        return _list(summaries, page, total, sort)

    def show_agent(self, params: Mapping[str, str]) -> Envelope:
        """GET /api/v1/agent/show: by exactly one of agent_id / external_identifier."""
        agent_id = params.get("agent_id") or None
        external_identifier = params.get("external_identifier") or None
        if (agent_id is None) == (external_identifier is None):
            message = "exactly one of agent_id and external_identifier is required"
            raise validation_error({"agent_id": [message], "external_identifier": [message]})
        with self.store.read() as conn:
            if agent_id is not None:
                row = self._agent_row(conn, agent_id)
            else:
                row = conn.execute(
                    "SELECT * FROM agents WHERE external_identifier = ? AND deleted = 0",
                    (external_identifier,),
                ).fetchone()
                if row is None:
                    raise not_found("agent with external_identifier", str(external_identifier))
            details = agent_to_json(conn, row)
        if params.get("include_counts", "").lower() != "true":
            details.pop("instance_counts", None)
        if params.get("include_risk_rollup", "").lower() == "true":
            details["risk_rollup"] = {}
        return success(details)

    # -- bulk -------------------------------------------------------------------------------

    def bulk(self, body: Any) -> dict[str, Any]:
        """POST /api/v1/bulk: items run in order, each atomic on its own; stop at an error."""
        fields = require_object(body)
        items = fields.data.get("items")
        errors = fields.errors
        if not isinstance(items, list) or not items:
            errors.add(("items",), "must be a non-empty list")
        elif len(items) > MAX_BULK_ITEMS:
            errors.add(("items",), f"must hold at most {MAX_BULK_ITEMS} items")
        else:
            seen: set[str] = set()
            for index, item in enumerate(items):
                path = ("items", str(index))
                if not isinstance(item, dict):
                    errors.add(path, "must be a JSON object")
                    continue
                if item.get("_type") not in BULK_TYPES:
                    errors.add((*path, "_type"), f"must be one of: {', '.join(BULK_TYPES)}")
                key = item.get("idempotency_key")
                if not isinstance(key, str) or not 8 <= len(key) <= 64:
                    errors.add((*path, "idempotency_key"), "must be a string of 8 to 64 characters")
                elif key in seen:
                    errors.add((*path, "idempotency_key"), "must be unique within the request")
                else:
                    seen.add(key)
        errors.raise_if_any()
        assert isinstance(items, list)
        outputs: dict[str, Any] = {}
        # One transaction for the request, a savepoint per item: an item that fails leaves
        # no trace, the ones before it are kept.
        self._controls = {}
        try:
            with self.store.write():
                for item in items:
                    key = item["idempotency_key"]
                    try:
                        envelope = self._bulk_item(item)
                    except ApiError as exc:
                        outputs[key] = exc.to_body()
                        break
                    outputs[key] = envelope
        finally:
            self._controls = None
        return {"status": "success", "outputs": outputs}

    def _bulk_item(self, item: dict[str, Any]) -> Envelope:
        kind = item["_type"]
        params = {name: value for name, value in item.items() if name != "_type"}
        if kind == "agent_instances/register":
            return self.register(params)
        if kind == "agent_spans/create":
            if "details" in params:
                return self.create_span(params)
            key = params.pop("idempotency_key")
            return self.create_span({"details": params, "idempotency_key": key})
        id_field = "agent_span_id" if kind == "agent_spans/finish" else "agent_instance_id"
        target = params.pop(id_field, None) or params.pop("id", None)
        if not isinstance(target, str) or not target:
            raise validation_error({id_field: ["is required"]})
        if kind == "agent_instances/start":
            return self.start_instance(target, params)
        if kind == "agent_instances/finish":
            return self.finish_instance(target, params)
        if kind == "agent_instances/record_quality":
            return self.record_quality(target, params)
        return self.finish_span(target, params)


# -- helpers ------------------------------------------------------------------------------------


def _exists(conn: sqlite3.Connection, table: str, row_id: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is not None


def _text(fields: Fields, key: str) -> str | None:
    """An optional string that may be empty."""
    value = fields.data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        fields.errors.add((*fields.path, key), "must be a string")
        return None
    return value


def _list_of_objects(fields: Fields, key: str, *, required_keys: tuple[str, ...]) -> None:
    value = fields.data.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        fields.errors.add((*fields.path, key), "must be a list")
        return
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            fields.errors.add((*fields.path, key, str(index)), "must be a JSON object")
            continue
        for name in required_keys:
            if not isinstance(entry.get(name), str) or not entry[name]:
                fields.errors.add((*fields.path, key, str(index), name), "is required")


def _content_id(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return "sha256:" + digest[:32]


def _filters(
    params: Mapping[str, str], names: tuple[str, ...], prefix: str = ""
) -> tuple[str, list[str]]:
    clauses, args = [], []
    for name in names:
        value = params.get(name)
        if value:
            clauses.append(f"{prefix}{name} = ?")
            args.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class _Page:
    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size

    @classmethod
    def parse(cls, params: Mapping[str, str], max_size: int, default_size: int) -> _Page:
        errors = Errors()
        offset = _int_param(params, "pagination[offset]", 0, errors, "offset")
        size = _int_param(params, "pagination[page_size]", default_size, errors, "page_size")
        if offset < 0:
            errors.add(("pagination", "offset"), "must be >= 0")
        if not 1 <= size <= max_size:
            errors.add(("pagination", "page_size"), f"must be between 1 and {max_size}")
        errors.raise_if_any()
        return cls(offset, size)


def _int_param(
    params: Mapping[str, str], name: str, default: int, errors: Errors, field: str
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        errors.add(("pagination", field), "must be an integer")
        return default


class _Sort:
    def __init__(self, field: str, descending: bool, prefix: str) -> None:
        self.field = field
        self.descending = descending
        self.prefix = prefix

    @classmethod
    def parse(
        cls,
        params: Mapping[str, str],
        allowed: tuple[str, ...],
        default: str,
        prefix: str = "",
    ) -> _Sort:
        raw = params.get("sorting") or default
        field = raw.lstrip("-+")
        if field not in allowed:
            raise validation_error({"sorting": [f"must be one of: {', '.join(allowed)}"]})
        return cls(field, raw.startswith("-"), prefix)

    def sql(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"{self.prefix}{self.field} {direction}, {self.prefix}rowid {direction}"

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "direction": "desc" if self.descending else "asc"}


def _list(summaries: list[dict[str, Any]], page: _Page, total: int, sort: _Sort) -> Envelope:
    count = len(summaries)
    next_offset = page.offset + page.size
    return {
        "status": "success",
        "summaries": summaries,
        "pagination": {
            "item_count": total,
            "item_start": page.offset + 1 if count else 0,
            "item_end": page.offset + count,
            "next_page_offset": next_offset if next_offset < total else None,
            "page_count": -(-total // page.size),
            "page_index": page.offset // page.size,
            "page_offset": page.offset,
            "page_size": page.size,
            "previous_page_offset": max(page.offset - page.size, 0) if page.offset > 0 else None,
        },
        "sorting": sort.to_json(),
    }
