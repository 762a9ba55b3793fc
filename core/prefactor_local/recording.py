"""An in-memory log of the HTTP requests a `LocalServer` received (for tests of clients).

Every request is recorded, including the ones a fault cut short, with its headers, body and
the status it was answered with (None when the connection was dropped).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prefactor_local.asgi import RAW_SEND, RECORD, buffer_body, with_extensions


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes = b""
    status: int | None = None
    fault: str | None = None
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        """The body parsed as JSON (None for an empty body)."""
        return json.loads(self.body) if self.body.strip() else None


class RequestRecorder:
    """Outermost ASGI layer: records requests into a bounded deque."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_entries: int = 10_000) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._entries: deque[RecordedRequest] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    @property
    def entries(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._entries.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        entry = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
        )
        body, replay = await buffer_body(receive, self.max_body_bytes)
        if len(body) <= self.max_body_bytes:
            entry.body = body
        with self._lock:
            self._entries.append(entry)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        inner = with_extensions(scope, **{RAW_SEND: send, RECORD: entry})
        await self.app(inner, replay, recording_send)
