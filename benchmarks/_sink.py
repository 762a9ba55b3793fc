"""`SinkProcess`: an HTTP server in a child process that answers any request with 200 and ``{}``.

The peers' exporters send to it. It reads each request's body whole and answers at once, so
what a peer costs the benchmark process is its own work, not its server's.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from benchmarks._child import ChildServer, serve_commands

__all__ = ["SinkProcess"]

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


class SinkProcess(ChildServer):
    """A sink on a loopback port, in a child process."""

    def __init__(self) -> None:
        super().__init__("benchmarks._sink")


class _Sink:
    """The ASGI app: 200 ``{}`` to anything, counting the requests."""

    def __init__(self) -> None:
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body", False):
            pass
        self.requests += 1
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": b"{}"})


def main() -> int:
    """Serve on a free loopback port until standard input closes."""
    sink = _Sink()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(sink, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            return 1
        time.sleep(0.005)
    try:
        serve_commands({"url": f"http://127.0.0.1:{sock.getsockname()[1]}"}, lambda: sink.requests)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
