"""Fault injection for tests: latency, error statuses, hangs, dropped connections, bad bodies.

Everything is off by default. Faults only touch the mutating `/api/v1` routes and ping, never
the admin routes or the GET reads, so a test can always inspect the server it is breaking.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import threading
from dataclasses import dataclass, fields
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from prefactor_local.asgi import RECORD, buffer_body, drop_connection, extension
from prefactor_local.errors import validation_error

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ADMIN_PREFIX = "/api/v1/_admin"
FAULT_KINDS = ("drop", "hang", "error", "bad_json", "non_object", "drop_response", "garble")


@dataclass
class FaultConfig:
    """Which faults to inject; every rate is a probability per eligible request (0 to 1).

    - `latency_ms`: added to every eligible request before anything else.
    - `error_rate` / `error_statuses`: answer with one of these statuses (an error envelope)
      without doing the work; a 429 carries `Retry-After: retry_after` when that is set.
    - `hang_rate` / `hang_seconds`: wait that long, then do the work and answer (so a client
      timeout fires first).
    - `drop_rate`: close the connection without any response and without doing the work.
    - `drop_response_rate`: do the work, then close the connection without answering (a lost
      response: the retry must be answered by an idempotent replay).
    - `bad_json_rate` / `non_object_rate`: answer 200 with a malformed JSON body, or a JSON
      body that is not an object, without doing the work.
    - `garble_rate`: do the work, then answer 200 with a malformed JSON body (the retry must
      be answered by an idempotent replay).
    - `path_prefix`: only requests whose path starts with it are eligible.
    - `max_faults`: how many more faults may fire (decremented as they do); None = unlimited.
    - `seed`: makes the random choices reproducible (re-seeded whenever the seed changes).
    """

    latency_ms: float = 0
    error_rate: float = 0
    error_statuses: tuple[int, ...] = (500, 502, 503, 429)
    retry_after: float | None = None
    hang_rate: float = 0
    hang_seconds: float = 60
    drop_rate: float = 0
    path_prefix: str | None = None
    seed: int | None = None
    drop_response_rate: float = 0
    bad_json_rate: float = 0
    non_object_rate: float = 0
    garble_rate: float = 0
    max_faults: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The configuration as a JSON object."""
        data = dataclasses.asdict(self)
        data["error_statuses"] = list(self.error_statuses)
        return data

    @classmethod
    def from_json(cls, data: Any) -> FaultConfig:
        """Build from a JSON object; unknown fields or bad values raise a 422 ApiError."""
        if not isinstance(data, dict):
            raise validation_error({"body": ["must be a JSON object"]})
        known = {item.name for item in fields(cls)}
        errors: dict[str, list[str]] = {}
        for name in data:
            if name not in known:
                errors[name] = ["is not a fault setting"]
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known or value is None:
                continue
            problem = _check(name, value)
            if problem:
                errors[name] = [problem]
            else:
                values[name] = tuple(value) if name == "error_statuses" else value
        if errors:
            raise validation_error(errors)
        return cls(**values)


def _check(name: str, value: Any) -> str | None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if name.endswith("_rate"):
        return None if number and 0 <= value <= 1 else "must be a number from 0 to 1"
    if name in ("latency_ms", "hang_seconds", "retry_after"):
        return None if number and value >= 0 else "must be a non-negative number"
    if name == "error_statuses":
        ok = (
            isinstance(value, list)
            and value
            and all(isinstance(code, int) and 400 <= code <= 599 for code in value)
        )
        return None if ok else "must be a non-empty list of HTTP statuses from 400 to 599"
    if name in ("seed", "max_faults"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "must be a non-negative integer"
    if name == "path_prefix":
        return None if isinstance(value, str) else "must be a string"
    return None


@dataclass
class _Decision:
    kind: str | None
    status: int = 0


class FaultInjector:
    """ASGI middleware applying the live `config` (replace it, or mutate it in place)."""

    def __init__(
        self, app: ASGIApp, config: FaultConfig | None = None, *, max_body_bytes: int = 1 << 26
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._config = config or FaultConfig()
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._seeded: tuple[int, int | None] | None = None
        self.injected: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.closing = False

    @property
    def config(self) -> FaultConfig:
        """The fault configuration in force."""
        return self._config

    @config.setter
    def config(self, value: FaultConfig) -> None:
        with self._lock:
            self._config = value
            self._seeded = None

    def reset(self) -> None:
        """Switch every fault off."""
        self.config = FaultConfig()

    def eligible(self, scope: Scope) -> bool:
        """Whether faults may apply to this request."""
        if scope["type"] != "http":
            return False
        path: str = scope["path"]
        method: str = scope["method"]
        if not path.startswith("/api/v1/") or path.startswith(ADMIN_PREFIX):
            return False
        if method not in MUTATING_METHODS and not (method == "GET" and path == "/api/v1/ping"):
            return False
        prefix = self._config.path_prefix
        return prefix is None or path.startswith(prefix)

    def decide(self) -> _Decision:
        """Draw the fault for one request (one random number per kind, in a fixed order)."""
        with self._lock:
            config = self._config
            marker = (id(config), config.seed)
            if self._seeded != marker:
                self._rng = random.Random(config.seed)
                self._seeded = marker
            rates = (
                ("drop", config.drop_rate),
                ("hang", config.hang_rate),
                ("error", config.error_rate),
                ("bad_json", config.bad_json_rate),
                ("non_object", config.non_object_rate),
                ("drop_response", config.drop_response_rate),
                ("garble", config.garble_rate),
            )
            if not any(rate for _, rate in rates):
                return _Decision(None)
            draws = [(kind, rate, self._rng.random()) for kind, rate in rates]
            status = self._rng.choice(config.error_statuses) if config.error_statuses else 500
            if config.max_faults is not None and config.max_faults <= 0:
                return _Decision(None)
            for kind, rate, draw in draws:
                if draw < rate:
                    if config.max_faults is not None:
                        config.max_faults -= 1
                    self.injected[kind] += 1
                    return _Decision(kind, status)
            return _Decision(None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.eligible(scope):
            await self.app(scope, receive, send)
            return
        config = self._config
        if config.latency_ms > 0:
            # Take the body first: a client that gives up while we wait must not leave a
            # half-read request behind; the work is still done, as a real server would.
            _, receive = await buffer_body(receive, self.max_body_bytes)
            if not await self._hang(config.latency_ms / 1000):
                await drop_connection(scope, send)  # the server is stopping
                return
        decision = self.decide()
        record = extension(scope, RECORD)
        if record is not None and decision.kind is not None:
            record.fault = decision.kind
        if decision.kind is None:
            await self.app(scope, receive, send)
        elif decision.kind == "drop":
            await drop_connection(scope, send)
        elif decision.kind == "hang":
            _, receive = await buffer_body(receive, self.max_body_bytes)
            if await self._hang(config.hang_seconds):
                await self.app(scope, receive, send)
            else:
                await drop_connection(scope, send)
        elif decision.kind == "error":
            await self._send_error(send, decision.status, config.retry_after)
        elif decision.kind == "bad_json":
            await _send_raw(send, 200, _GARBLED)
        elif decision.kind == "non_object":
            await _send_raw(send, 200, b'["status", "success"]')
        elif decision.kind == "garble":
            await self.app(scope, receive, _swallow)
            await _send_raw(send, 200, _GARBLED)
        else:
            await self.app(scope, receive, _swallow)
            await drop_connection(scope, send)

    async def _hang(self, seconds: float) -> bool:
        """Sleep `seconds` in small steps; False when the server is shutting down meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(remaining, 0.05))
        return False

    @staticmethod
    async def _send_error(send: Send, status: int, retry_after: float | None) -> None:
        body = json.dumps(
            {
                "status": "error",
                "code": "injected_fault",
                "message": f"Injected fault: HTTP {status}",
            }
        ).encode()
        headers = [(b"content-type", b"application/json")]
        if status == 429 and retry_after is not None:
            text = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            headers.append((b"retry-after", text.encode()))
        await _send_raw(send, status, body, headers)


_GARBLED = b'{"status": "success", "details": {"id": '


async def _send_raw(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": headers or [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _swallow(message: Any) -> None:
    """A `send` that discards the response."""
