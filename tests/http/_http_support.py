"""Helpers for the prefactor_http tests.

`WireRecorder` is an httpx transport that forwards every request to the real server and keeps a
copy of what went over the wire. `ScriptedServer` is a tiny raw-ASGI app served by uvicorn on
loopback that answers with canned bytes; it exists only for responses our local server never
produces (bodies that are not JSON, or not an object).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from prefactor_http import HttpClientConfig

# Retry delays stay tiny so retry tests take milliseconds.
FAST_RETRIES: dict[str, Any] = {
    "initial_retry_delay": 0.01,
    "max_retry_delay": 0.05,
    "request_timeout": 5.0,
    "connect_timeout": 2.0,
}

ConfigFactory = Callable[..., HttpClientConfig]


class WireRecorder(httpx.AsyncBaseTransport):
    """Forward to the real server over TCP, recording each request."""

    def __init__(self, *, strip_headers: tuple[str, ...] = ()) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._strip = strip_headers
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for name in self._strip:
            if name in request.headers:
                del request.headers[name]
        self.requests.append(request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def bodies(self, path: str | None = None) -> list[bytes]:
        """Request bodies, optionally only those sent to ``path``."""
        return [r.content for r in self.requests if path is None or r.url.path == path]


@dataclass
class Canned:
    """One scripted response."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class ScriptedServer:
    """Answers each request with the next canned response (the last one repeats)."""

    def __init__(self, *responses: Canned) -> None:
        self.responses: deque[Canned] = deque(responses)
        self.requests: list[tuple[str, str, bytes]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self._app, interface="asgi3", lifespan="off", log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append((scope["method"], scope["path"], body))
        canned = self.responses[0] if len(self.responses) == 1 else self.responses.popleft()
        headers = [(b"content-type", canned.content_type.encode())]
        headers += [(k.encode(), v.encode()) for k, v in canned.headers.items()]
        await send({"type": "http.response.start", "status": canned.status, "headers": headers})
        await send({"type": "http.response.body", "body": canned.body})

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("scripted server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


AGENT_VERSION: dict[str, Any] = {
    "name": "support-bot",
    "external_identifier": "support-bot-v1",
    "description": "Answers support tickets",
}
SCHEMA_VERSION: dict[str, Any] = {
    "external_identifier": "schema-0001",
    "span_type_schemas": [
        {"name": "demo:llm", "params_schema": {"type": "object"}},
        {"name": "demo:tool", "params_schema": {"type": "object"}},
    ],
}
