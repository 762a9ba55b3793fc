"""`ChildServer`: an HTTP server in a child process, driven over its standard input and output.

The child prints one JSON line (its ``url`` and whatever else the parent needs) once it
answers, then reads commands, one a line, until its standard input closes: ``requests``
answers with the number of HTTP requests it has received so far. A server in its own process
is like a real API: its work does not compete with the benchmark for the interpreter lock, and
the benchmark process's CPU clock does not count it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["ChildServer", "serve_commands"]

_ROOT = Path(__file__).resolve().parent.parent
_S = TypeVar("_S", bound="ChildServer")


class ChildServer:
    """Parent side: runs ``python -m module *args`` and talks to it."""

    def __init__(self, module: str, *args: str) -> None:
        self._argv = [sys.executable, "-m", module, *args]
        self._proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.url = ""

    def start(self: _S) -> _S:
        """Start the child and wait until it answers."""
        proc = subprocess.Popen(
            self._argv, cwd=_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError(f"{self._argv[2]} did not start")
        self._proc, self.info = proc, json.loads(line)
        self.url = self.info["url"]
        return self

    def requests(self) -> int:
        """HTTP requests the server has received so far (exact while no request is in flight)."""
        assert self._proc is not None and self._proc.stdin and self._proc.stdout
        self._proc.stdin.write("requests\n")
        self._proc.stdin.flush()
        return int(self._proc.stdout.readline())

    def stop(self) -> None:
        """Close the child's standard input and wait for it to end."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_commands(info: dict[str, Any], requests: Callable[[], int]) -> None:
    """Child side: announce ``info``, then answer commands until standard input closes."""
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() == "requests":
            print(requests(), flush=True)
