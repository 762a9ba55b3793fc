"""`ServerProcess`: a `prefactor_local` server in a child process, and clients aimed at it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_http.config import HttpClientConfig
from prefactor_local.store import TraceStore

__all__ = ["ServerProcess", "make_client"]

_ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    """A local server on a loopback port, served by a child process with its own database."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="prefactor-bench-"))
        self.db_path = self._dir / "local.db"
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.token = ""

    def start(self) -> ServerProcess:
        """Start the child and wait until it answers."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._serve", str(self.db_path)],
            cwd=_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError("the local server process did not start")
        info = json.loads(line)
        self._proc, self.url, self.token = proc, info["url"], info["token"]
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

    def stop(self) -> None:
        """Stop the child and remove the database."""
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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
