"""`ServerProcess`: a `prefactor_local` server in a child process, and clients aimed at it."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks._child import ChildServer
from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_http.config import HttpClientConfig
from prefactor_local.store import TraceStore

__all__ = ["ServerProcess", "make_client"]

# Instances by status and by how many of their spans are complete (0 for none).
_RUN_SHAPES = """
SELECT i.status, COALESCE(s.complete, 0), COUNT(*)
FROM agent_instances AS i
LEFT JOIN (
    SELECT agent_instance_id, COUNT(*) AS complete FROM agent_spans
    WHERE status = 'complete' GROUP BY agent_instance_id
) AS s ON s.agent_instance_id = i.id
GROUP BY 1, 2
"""


class ServerProcess(ChildServer):
    """A local server on a loopback port, served by a child process with its own database."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="prefactor-bench-"))
        self.db_path = self._dir / "local.db"
        super().__init__("benchmarks._serve", str(self.db_path))
        self.token = ""

    def start(self) -> ServerProcess:
        """Start the child and wait until it answers."""
        super().start()
        self.token = self.info["token"]
        return self

    def set_faults(self, **faults: Any) -> None:
        """Replace the server's fault settings (``latency_ms=50``...) through its admin route."""
        response = httpx.put(
            self.url + "/api/v1/_admin/faults",
            json=faults,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        response.raise_for_status()

    def counts(self) -> dict[str, int]:
        """Stored rows per table."""
        store = TraceStore(self.db_path, read_only=True)
        try:
            return store.counts()
        finally:
            store.close()

    def run_shapes(self) -> Counter[tuple[str, int]]:
        """Stored instances counted by (their status, how many of their spans are complete)."""
        store = TraceStore(self.db_path, read_only=True)
        try:
            with store.read() as conn:
                rows = conn.execute(_RUN_SHAPES).fetchall()
        finally:
            store.close()
        return Counter({(str(status), int(spans)): int(count) for status, spans, count in rows})

    def span_times(self) -> tuple[float, float] | None:
        """When the first and the last stored span were stored (Unix time); None for none."""
        store = TraceStore(self.db_path, read_only=True)
        try:
            with store.read() as conn:
                row = conn.execute(
                    "SELECT MIN(inserted_at), MAX(inserted_at) FROM agent_spans"
                ).fetchone()
        finally:
            store.close()
        if row[0] is None:
            return None
        first, last = (datetime.fromisoformat(text).timestamp() for text in row)
        return first, last

    def stop(self) -> None:
        """Stop the child and remove the database."""
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def make_client(
    url: str, token: str, *, transport: str = "httpx", **queue: Any
) -> PrefactorCoreClient:
    """A core client for ``url`` with default settings; keyword arguments set `QueueConfig`."""
    return PrefactorCoreClient(
        PrefactorCoreConfig(
            http_config=HttpClientConfig(api_url=url, api_token=token, transport=transport),
            queue_config=QueueConfig(**queue),
        )
    )
