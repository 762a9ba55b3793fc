"""Child process entry: run a `LocalServer` until standard input closes.

Prints one JSON line ``{"url": ..., "token": ...}`` once the server answers. The benchmarks run
the server in its own process, like a real API: its work does not compete with the agent for
the benchmark process's interpreter lock.
"""

from __future__ import annotations

import json
import sys

from prefactor_local.server import LocalServer


def main(argv: list[str]) -> int:
    """Serve the database at ``argv[0]``."""
    server = LocalServer(db_path=argv[0]).start()
    try:
        print(json.dumps({"url": server.url, "token": server.token}), flush=True)
        sys.stdin.read()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
