"""SQLite storage for the local server, and the read API tests use (`TraceStore`).

One connection per store, guarded by a re-entrant lock. Every write is one `BEGIN IMMEDIATE`
transaction taken under that lock, so an idempotency check and the insert it guards can never
interleave with another request's write; SQLite allows a single writer at a time anyway, so a
lock costs no throughput, while reads from a test thread see committed rows at once. WAL mode
lets other processes (`prefactor-local show`) read while the server writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    external_identifier TEXT,
    owner_person_id TEXT,
    risk_profile_id TEXT,
    team_id TEXT,
    status TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    replays INTEGER NOT NULL DEFAULT 0,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_versions (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    external_identifier TEXT NOT NULL,
    name TEXT,
    description TEXT,
    body TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    UNIQUE (agent_id, external_identifier)
);
CREATE TABLE IF NOT EXISTS agent_schema_versions (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    external_identifier TEXT NOT NULL,
    body TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    UNIQUE (agent_id, external_identifier)
);
CREATE TABLE IF NOT EXISTS agent_deployments (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    agent_version_id TEXT,
    agent_schema_version_id TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (agent_id, environment_id)
);
CREATE TABLE IF NOT EXISTS agent_instances (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    agent_version_id TEXT NOT NULL,
    agent_schema_version_id TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    agent_deployment_id TEXT NOT NULL,
    status TEXT NOT NULL,
    purpose TEXT NOT NULL,
    external_identifier TEXT,
    termination_reason TEXT,
    quality_payloads TEXT NOT NULL DEFAULT '{}',
    started_at TEXT,
    finished_at TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    replays INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS agent_instances_by_agent ON agent_instances (agent_id, inserted_at);
CREATE INDEX IF NOT EXISTS agent_instances_by_time ON agent_instances (inserted_at);
CREATE TABLE IF NOT EXISTS agent_spans (
    id TEXT PRIMARY KEY,
    agent_instance_id TEXT NOT NULL REFERENCES agent_instances (id),
    parent_span_id TEXT,
    schema_name TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    result_payload TEXT,
    started_at TEXT,
    finished_at TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    replays INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS agent_spans_by_instance ON agent_spans (agent_instance_id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    resource TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    response TEXT NOT NULL,
    inserted_at TEXT NOT NULL,
    PRIMARY KEY (route, key)
);
"""

TABLES = (
    "agents",
    "agent_versions",
    "agent_schema_versions",
    "agent_deployments",
    "agent_instances",
    "agent_spans",
    "idempotency_keys",
)
SPAN_STATUSES = ("pending", "active", "complete", "failed", "cancelled")
INSTANCE_STATUSES = (*SPAN_STATUSES, "terminated")
FINISHED_STATUSES = ("complete", "failed", "cancelled")


class TraceStore:
    """The SQLite database of one local server, with a read API shaped like the wire JSON.

    Safe to use from any thread of the process, also while the server writes. After `close()`
    the next call reopens the file, so a store outlives server restarts.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._depth = 0  # open write transactions (savepoints inside the first), under _lock

    # -- connection -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.read_only:
                if not self.path.exists():
                    raise FileNotFoundError(f"no database at {self.path}")
                uri = self.path.resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, isolation_level=None, timeout=10
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    str(self.path), check_same_thread=False, isolation_level=None, timeout=10
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(SCHEMA)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            self._conn = conn
        return self._conn

    def open(self) -> TraceStore:
        """Open (and create, unless read-only) the database now rather than on first use."""
        with self._lock:
            self._connection()
        return self

    def close(self) -> None:
        """Close the connection; a later call reopens it."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, held exclusively for a consistent read."""
        with self._lock:
            yield self._connection()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back if the block raises.

        Nested inside another `write` of the same thread it is a savepoint instead: rolled
        back alone if its block raises, committed with the outer transaction otherwise.
        """
        with self._lock:
            conn = self._connection()
            if self._depth:
                yield from self._savepoint(conn)
                return
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            conn.execute("COMMIT")

    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        name = f"item{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        finally:
            self._depth -= 1
        conn.execute(f"RELEASE {name}")

    # -- small key/value settings -------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A stored setting (for example the API token), or None."""
        with self.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Store a setting."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- read API ---------------------------------------------------------------------------

    def list_instances(
        self, agent_id: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Agent instances, newest first, optionally of one agent."""
        sql = "SELECT * FROM agent_instances"
        args: list[Any] = []
        if agent_id is not None:
            sql += " WHERE agent_id = ?"
            args.append(agent_id)
        sql += " ORDER BY inserted_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self.read() as conn:
            rows = conn.execute(sql, args).fetchall()
            return instances_to_json(conn, rows, with_replays=True)

    def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        """One agent instance, or None."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT * FROM agent_instances WHERE id = ?", (instance_id,)
            ).fetchone()
            if row is None:
                return None
            return instances_to_json(conn, [row], with_replays=True)[0]

    def list_spans(self, agent_instance_id: str) -> list[dict[str, Any]]:
        """The spans of one instance, in the order they were created."""
        with self.read() as conn:
            rows = conn.execute(
                SPAN_SELECT + " WHERE s.agent_instance_id = ? ORDER BY s.rowid",
                (agent_instance_id,),
            ).fetchall()
        return [span_to_json(row, with_replays=True) for row in rows]

    def get_span(self, span_id: str) -> dict[str, Any] | None:
        """One span, or None."""
        with self.read() as conn:
            row = conn.execute(SPAN_SELECT + " WHERE s.id = ?", (span_id,)).fetchone()
        return None if row is None else span_to_json(row, with_replays=True)

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        with self.read() as conn:
            return {
                table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in TABLES
            }

    def list_agents(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Agents in creation order."""
        sql = "SELECT * FROM agents"
        if not include_deleted:
            sql += " WHERE deleted = 0"
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY rowid").fetchall()
            return [agent_to_json(conn, row, with_replays=True) for row in rows]

    def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        """One (not deleted) agent, or None."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT * FROM agents WHERE id = ? AND deleted = 0", (agent_id,)
            ).fetchone()
            return None if row is None else agent_to_json(conn, row, with_replays=True)

    def list_agent_versions(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Stored `agent_version` objects: id, agent_id, external_identifier, body."""
        return self._versions("agent_versions", agent_id)

    def list_agent_schema_versions(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Stored `agent_schema_version` objects (with their `span_type_schemas`)."""
        return self._versions("agent_schema_versions", agent_id)

    def get_agent_schema_version(self, version_id: str) -> dict[str, Any] | None:
        """One stored schema version, or None."""
        with self.read() as conn:
            row = conn.execute(
                "SELECT * FROM agent_schema_versions WHERE id = ?", (version_id,)
            ).fetchone()
        return None if row is None else version_to_json(row)

    def _versions(self, table: str, agent_id: str | None) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM {table}"
        args: tuple[Any, ...] = ()
        if agent_id is not None:
            sql += " WHERE agent_id = ?"
            args = (agent_id,)
        with self.read() as conn:
            rows = conn.execute(sql + " ORDER BY rowid", args).fetchall()
        return [version_to_json(row) for row in rows]

    def wait_until(
        self,
        predicate: Callable[[TraceStore], bool],
        timeout: float = 5.0,
        interval: float = 0.02,
    ) -> bool:
        """Poll `predicate(self)` until it is true or `timeout` seconds pass; return the last."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


# -- row → JSON -------------------------------------------------------------------------------

SPAN_SELECT = (
    "SELECT s.*, i.account_id AS account_id, i.agent_id AS agent_id "
    "FROM agent_spans s JOIN agent_instances i ON i.id = s.agent_instance_id"
)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def span_counts(conn: sqlite3.Connection, instance_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """`span_counts` objects for the given instances."""
    result = {iid: dict.fromkeys(("total", *SPAN_STATUSES, "finished"), 0) for iid in instance_ids}
    for start in range(0, len(instance_ids), 500):
        chunk = list(instance_ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            "SELECT agent_instance_id, status, COUNT(*) AS n FROM agent_spans "
            f"WHERE agent_instance_id IN ({marks}) GROUP BY agent_instance_id, status",
            chunk,
        ).fetchall()
        for row in rows:
            counts = result[row["agent_instance_id"]]
            number = int(row["n"])
            counts["total"] += number
            if row["status"] in counts:
                counts[row["status"]] += number
            if row["status"] in FINISHED_STATUSES:
                counts["finished"] += number
    return result


def instances_to_json(
    conn: sqlite3.Connection, rows: Sequence[sqlite3.Row], *, with_replays: bool = False
) -> list[dict[str, Any]]:
    """AgentInstance objects for rows of `agent_instances`."""
    counts = span_counts(conn, [row["id"] for row in rows])
    result = []
    for row in rows:
        quality = json.loads(row["quality_payloads"])
        item: dict[str, Any] = {
            "type": "agent_instance",
            "id": row["id"],
            "account_id": row["account_id"],
            "agent_id": row["agent_id"],
            "agent_version_id": row["agent_version_id"],
            "agent_schema_version_id": row["agent_schema_version_id"],
            "environment_id": row["environment_id"],
            "agent_deployment_id": row["agent_deployment_id"],
            "status": row["status"],
            "purpose": row["purpose"],
            "external_identifier": row["external_identifier"],
            "termination_reason": row["termination_reason"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "inserted_at": row["inserted_at"],
            "updated_at": row["updated_at"],
            "span_counts": counts[row["id"]],
            "quality_payloads": quality,
            "quality_summaries": {
                name: json.dumps(value, sort_keys=True)[:200] for name, value in quality.items()
            },
        }
        if with_replays:
            item["replays"] = row["replays"]
        result.append(item)
    return result


def span_to_json(row: sqlite3.Row, *, with_replays: bool = False) -> dict[str, Any]:
    """An AgentSpan object for a row selected with `SPAN_SELECT`."""
    item: dict[str, Any] = {
        "type": "agent_span",
        "id": row["id"],
        "account_id": row["account_id"],
        "agent_id": row["agent_id"],
        "agent_instance_id": row["agent_instance_id"],
        "parent_span_id": row["parent_span_id"],
        "schema_name": row["schema_name"],
        "status": row["status"],
        "payload": _loads(row["payload"]),
        "result_payload": _loads(row["result_payload"]),
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "inserted_at": row["inserted_at"],
        "updated_at": row["updated_at"],
    }
    if with_replays:
        item["replays"] = row["replays"]
    return item


def instance_counts(conn: sqlite3.Connection, agent_id: str) -> dict[str, int]:
    """`instance_counts` of one agent."""
    counts = dict.fromkeys(("total", *INSTANCE_STATUSES, "finished"), 0)
    rows = conn.execute(
        "SELECT status, COUNT(*) AS n FROM agent_instances WHERE agent_id = ? GROUP BY status",
        (agent_id,),
    ).fetchall()
    for row in rows:
        number = int(row["n"])
        counts["total"] += number
        if row["status"] in counts:
            counts[row["status"]] += number
        if row["status"] in (*FINISHED_STATUSES, "terminated"):
            counts["finished"] += number
    return counts


def agent_to_json(
    conn: sqlite3.Connection,
    row: sqlite3.Row,
    *,
    summary: bool = False,
    with_replays: bool = False,
) -> dict[str, Any]:
    """An Agent object (or AgentSummary with `summary=True`)."""
    deleted = bool(row["deleted"])
    item: dict[str, Any] = {
        "type": "agent",
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "external_identifier": row["external_identifier"],
        "owner_person_id": row["owner_person_id"],
        "team_id": row["team_id"],
        "status": row["status"],
        "available_actions": {
            "update": not deleted,
            "retire": not deleted and row["status"] != "retired",
            "reinstate": not deleted and row["status"] == "retired",
            "delete": not deleted,
        },
        "inserted_at": row["inserted_at"],
        "updated_at": row["updated_at"],
    }
    if not summary:
        item["risk_profile_id"] = row["risk_profile_id"]
        item["instance_counts"] = instance_counts(conn, row["id"])
    if with_replays:
        item["replays"] = row["replays"]
    return item


def version_to_json(row: sqlite3.Row) -> dict[str, Any]:
    """A stored agent_version / agent_schema_version."""
    return {
        "id": row["id"],
        "agent_id": row["agent_id"],
        "external_identifier": row["external_identifier"],
        "body": json.loads(row["body"]),
        "inserted_at": row["inserted_at"],
    }
