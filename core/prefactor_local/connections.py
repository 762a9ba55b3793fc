"""How the server treats connections: Nagle off, a connection limit, head and body deadlines.

uvicorn bounds what it can on its own (`timeout_keep_alive` closes idle keep-alive
connections, h11's incomplete-event limit answers an oversized request head with 400), but
it has no deadline for a request head or body and its `limit_concurrency` only answers once a
request head has arrived, so connections that never send one (idle or slowloris clients) hold
file descriptors until the process runs out and stops accepting. The protocol here adds:

- a connection limit below the file-descriptor limit; at the limit the connection waiting
  longest for a request (idle keep-alive, or still sending its head) is closed to make room,
  and only when every connection has a request in flight is the new one refused with a 503
  in the API's error envelope;
- a deadline for the first request head (408 in the error envelope, then close) and one for
  each request body (the connection is closed; the app sees the client gone).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

_FD_RESERVE_FRACTION = 8  # 1/8 of the descriptors stay free for the database, logs and refusals
_MIN_FD_RESERVE = 32
_MAX_DEFAULT_CONNECTIONS = 1000
_REFUSAL_LINGER_SECONDS = 1.0  # a refused client gets this long to read the 503


def default_max_connections() -> int:
    """The default connection limit: the open-file limit less a reserve, at most 1000."""
    if sys.platform == "win32":
        return _MAX_DEFAULT_CONNECTIONS
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_DEFAULT_CONNECTIONS
    reserve = max(_MIN_FD_RESERVE, soft // _FD_RESERVE_FRACTION)
    return max(1, min(_MAX_DEFAULT_CONNECTIONS, soft - reserve))


@dataclass(frozen=True)
class ConnectionLimits:
    """Connection limits of the local server (seconds for timeouts).

    `max_connections=None` picks `default_max_connections()`. `keep_alive_timeout` (whole
    seconds) is uvicorn's `timeout_keep_alive`.
    """

    max_connections: int | None = None
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: int = 5

    def __post_init__(self) -> None:
        if self.max_connections is not None and (
            isinstance(self.max_connections, bool)
            or not isinstance(self.max_connections, int)
            or self.max_connections < 1
        ):
            raise ValueError(
                "max_connections must be a whole number of at least 1, "
                f"got {self.max_connections!r}"
            )
        keep_alive = self.keep_alive_timeout
        if isinstance(keep_alive, bool) or not isinstance(keep_alive, int) or keep_alive < 1:
            raise ValueError(
                f"keep_alive_timeout must be a whole number of seconds of at least 1, "
                f"got {keep_alive!r}"
            )
        for name in ("header_timeout", "body_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number of seconds above 0, got {value!r}")

    @property
    def connections(self) -> int:
        """The connection limit in effect."""
        return self.max_connections or default_max_connections()


def _error_response(status: int, reason: str, code: str, message: str, retry: bool) -> bytes:
    body = json.dumps({"status": "error", "code": code, "message": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
        + ("retry-after: 1\r\n" if retry else "")
        + "\r\n"
    )
    return head.encode("latin-1") + body


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP/1.1 protocol with Nagle's algorithm off.

    Accepted sockets do not always inherit TCP_NODELAY, and uvicorn writes the head and the body
    of a response separately, so without this every keep-alive request waits for the client's
    delayed ACK (about 40 ms).
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)


class GuardedHTTPProtocol(NoDelayHTTPProtocol):
    """`NoDelayHTTPProtocol` with the limits of `ConnectionLimits` (see the module docstring)."""

    limits = ConnectionLimits()
    max_connections = limits.connections

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._timed_cycle: Any = None
        self._waiting_since = 0.0
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._waiting_since = self.loop.time()
        if len(self.connections) > self.max_connections and not self._evict_one():
            self._refuse()
            return
        self._arm(self.limits.header_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped, so closing later sends no reset over the 503
        super().data_received(data)
        cycle: Any = self.cycle
        if cycle is None or self.transport.is_closing():
            return
        if cycle is not self._timed_cycle:
            # A new request head arrived: its body gets its own deadline.
            self._timed_cycle = cycle
            self._disarm()
            if cycle.more_body:
                self._arm(self.limits.body_timeout, self._body_timed_out)
        elif not cycle.more_body:
            self._disarm()

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().eof_received()

    def on_response_complete(self) -> None:
        self._waiting_since = self.loop.time()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    # -- limits -------------------------------------------------------------------------------

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request; False if none is idle."""
        idle = [
            other
            for other in self.connections
            if other is not self
            and isinstance(other, GuardedHTTPProtocol)
            and not other.transport.is_closing()
            and (other.cycle is None or other.cycle.response_complete)
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda other: other._waiting_since)
        oldest.transport.close()
        self.connections.discard(oldest)  # its slot is free now, not when the loop gets to it
        return True

    def _refuse(self) -> None:
        self._refused = True
        self.connections.discard(self)
        message = (
            f"The local server is at its limit of {self.max_connections} connections, "
            "all with a request in flight; retry shortly"
        )
        self.transport.write(
            _error_response(503, "Service Unavailable", "too_many_connections", message, True)
        )
        self.transport.write_eof()
        self._arm(_REFUSAL_LINGER_SECONDS, self.transport.close)

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.cycle is not None or self.transport.is_closing():
            return
        message = f"No complete request head within {self.limits.header_timeout:g} s"
        self.transport.write(
            _error_response(408, "Request Timeout", "request_timeout", message, False)
        )
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self.transport.close()

    def _arm(self, delay: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHTTPProtocol]:
    """The protocol class uvicorn should use for these limits."""
    return type(
        "GuardedHTTPProtocol",
        (GuardedHTTPProtocol,),
        {"limits": limits, "max_connections": limits.connections},
    )
