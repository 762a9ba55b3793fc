"""Child process entry of `ServerProcess`: run a `LocalServer` until standard input closes.

Announces ``{"url": ..., "token": ...}`` once the server answers, then answers the commands of
`benchmarks._child.serve_commands`.
"""

from __future__ import annotations

import sys

from benchmarks._child import serve_commands
from prefactor_local.server import LocalServer


def main(argv: list[str]) -> int:
    """Serve the database at ``argv[0]``."""
    server = LocalServer(db_path=argv[0]).start()
    received = 0

    def requests() -> int:
        # The server's log keeps a bounded number of requests: count them and start afresh.
        nonlocal received
        received += len(server.requests)
        server.clear_requests()
        return received

    try:
        serve_commands({"url": server.url, "token": server.token}, requests)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
