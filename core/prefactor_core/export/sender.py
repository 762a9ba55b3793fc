"""`ApiSender`: how a request reaches the API, behind the smallest interface the pipe needs.

The pipe decides what to send and what an answer means; a sender only carries bytes. The one
here, `HttpSender`, keeps one keep-alive `Http1Connection` per I/O thread (a request costs
about a sixth of the CPU of the standard library's ``http.client``, a twentieth of a pooled
async client's), or, when the environment names a proxy for the API, an ``httpx.Client``,
which speaks every kind of proxy.
Another sender (a durable spool, a second destination) plugs in without touching the pipe.
"""

from __future__ import annotations

import contextlib
import encodings.idna  # noqa: F401 - the first connect imports it otherwise (see below)
import logging
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from prefactor_core.export.http1 import Http1Connection, StaleConnection
from prefactor_http._version import __version__
from prefactor_http.client import proxy_for, shared_tls_context
from prefactor_http.config import HttpClientConfig
from prefactor_http.retry import parse_retry_after

__all__ = ["ApiSender", "HttpSender", "Reply", "never_reached"]

logger = logging.getLogger("prefactor_core.export")


@dataclass(frozen=True)
class Reply:
    """What came back: an HTTP ``status`` with its ``body``, or (``status`` 0) the transport
    ``error`` that kept any answer from arriving."""

    status: int
    body: bytes = b""
    retry_after: float | None = None
    location: str | None = None
    error: BaseException | None = None


class ApiSender(Protocol):
    """Carries one request and returns its reply; called from the pipe's I/O threads, one
    request per thread at a time. Never raises: a failure is a `Reply` with ``error``."""

    def send(self, method: str, path: str, body: bytes | None, sdk_header: str) -> Reply:
        """Send ``body`` to ``path`` (below the API URL) and wait for the answer."""
        ...

    def close(self) -> None:
        """Close every connection."""
        ...


# Imported here, in the importing thread, rather than by the first connect in an I/O thread:
# a process forked while a background thread is half-way through an import finds that
# module broken (or its import lock held) in the child.
#
# A process forked while another thread is inside getaddrinfo() can inherit the C library's
# resolver locks held by a thread it does not have, and every lookup in the child then waits
# for ever. So connecting (which looks the host up) is fenced, and os.fork() waits briefly
# for the connects under way.
_FORK_WAIT = 1.0
_connects = threading.Condition()
_connecting = 0
_forking = False


@contextlib.contextmanager
def _lookup_fence() -> Iterator[None]:
    global _connecting
    with _connects:
        while _forking:
            _connects.wait()
        _connecting += 1
    try:
        yield
    finally:
        with _connects:
            _connecting -= 1
            _connects.notify_all()


def _before_fork() -> None:
    global _forking
    with _connects:
        _forking = True
        _connects.wait_for(lambda: _connecting == 0, timeout=_FORK_WAIT)


def _after_fork_in_parent() -> None:
    global _forking
    with _connects:
        _forking = False
        _connects.notify_all()


def _after_fork_in_child() -> None:
    global _connects, _connecting, _forking
    _connects = threading.Condition()
    _connecting = 0
    _forking = False


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


class HttpSender:
    """`ApiSender` over HTTP(S) keep-alive connections, one per calling thread."""

    def __init__(self, config: HttpClientConfig) -> None:
        parts = urlsplit(config.api_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._connect_timeout = config.connect_timeout
        self._timeout = config.request_timeout
        self._headers = {
            "Authorization": f"Bearer {config.api_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"prefactor-core/{__version__}",
        }
        host = f"[{self._host}]" if ":" in self._host else self._host.encode("idna").decode()
        default_port = 443 if self._https else 80
        self._fixed = _header_lines(
            {"Host": host if self._port == default_port else f"{host}:{self._port}"} | self._headers
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Http1Connection] = []
        proxy = proxy_for(config.api_url)
        self._proxied: httpx.Client | None = None
        if proxy is not None:
            self._proxied = httpx.Client(
                base_url=config.api_url.rstrip("/"),
                proxy=proxy,
                verify=shared_tls_context(),
                timeout=httpx.Timeout(self._timeout, connect=self._connect_timeout),
                trust_env=False,
            )
        self._tls = shared_tls_context() if self._https else None
        port = f":{parts.port}" if parts.port is not None else ""
        self.address = f"{parts.scheme}://{self._host}{port}"  # no user info, never the token
        self.answered = False  # whether any HTTP answer ever arrived
        self.last_failure: str | None = None  # the latest request no answer came back to
        self._warned = False

    def send(self, method: str, path: str, body: bytes | None, sdk_header: str) -> Reply:
        """See `ApiSender.send`."""
        try:
            reply = self._carry(method, path, body, sdk_header)
        except Exception as exc:  # a failure no branch below foresaw: still only a reply
            reply = Reply(0, error=exc)
        if reply.status:
            self.answered = True
        else:
            self._no_answer(reply.error)
        return reply

    def _no_answer(self, error: BaseException | None) -> None:
        """Keep the cause; say it once, at the first failure, with the host it was for."""
        cause = "no answer" if error is None else f"{type(error).__name__}: {error}"
        self.last_failure = cause
        with self._lock:
            if self._warned:
                return
            self._warned = True
        logger.warning(
            "Prefactor export: cannot reach the API at %s (%s); telemetry stays in memory and "
            "is retried in the background. Check PREFACTOR_API_URL and the network.",
            self.address,
            cause,
        )

    def _carry(self, method: str, path: str, body: bytes | None, sdk_header: str) -> Reply:
        if self._proxied is not None:
            headers = dict(self._headers)
            headers["X-Prefactor-SDK"] = sdk_header
            return self._send_proxied(method, path, body, headers)
        content = body or b""
        head = b"".join(
            (
                f"{method} {self._base}{path} HTTP/1.1\r\n".encode("latin-1"),
                self._fixed,
                _header_lines({"X-Prefactor-SDK": sdk_header}),
                b"Content-Length: %d\r\n\r\n" % len(content),
            )
        )
        connection = self._connection()
        for attempt in (0, 1):
            try:
                if not connection.is_open:
                    with _lookup_fence():
                        connection.connect()
                response = connection.request(head, content)
            except StaleConnection as exc:
                if attempt == 0:
                    continue  # closed while idle: nothing was processed
                return Reply(0, error=exc)
            except OSError as exc:
                return Reply(0, error=exc)
            headers = response.headers
            return Reply(
                response.status,
                response.body,
                parse_retry_after(headers.get("retry-after")),
                headers.get("location"),
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _connection(self) -> Http1Connection:
        connection: Http1Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = Http1Connection(
                self._host,
                self._port,
                tls=self._tls,
                connect_timeout=self._connect_timeout,
                timeout=self._timeout,
            )
            self._local.connection = connection
            with self._lock:
                self._open.append(connection)
        return connection

    def _send_proxied(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        assert self._proxied is not None
        try:
            with _lookup_fence():
                response = self._proxied.request(method, path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return Reply(0, error=exc)
        return Reply(
            response.status_code,
            response.content,
            parse_retry_after(response.headers.get("Retry-After")),
            response.headers.get("Location"),
        )

    def close(self) -> None:
        """See `ApiSender.close`."""
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.close()
        if self._proxied is not None:
            self._proxied.close()


def never_reached(sender: ApiSender) -> str | None:
    """Why ``sender`` has never reached its API, if it tried and no answer ever came back
    (None when it got an answer, has not failed yet, or is not an `HttpSender`)."""
    if isinstance(sender, HttpSender) and not sender.answered and sender.last_failure:
        return f"the API at {sender.address} was never reached ({sender.last_failure})"
    return None


def _header_lines(headers: dict[str, str]) -> bytes:
    """``headers`` as request header lines; a value that could end the line early (CR, LF)
    is refused rather than sent."""
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise ValueError(f"the {name} header would hold a line break")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1", "replace")


def is_certificate_error(error: BaseException | None) -> bool:
    """Whether ``error`` is a TLS certificate the client refused (not worth retrying)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False
