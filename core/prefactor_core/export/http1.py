"""`Http1Connection`: one keep-alive HTTP/1.1 connection, just what the exporter's requests need.

The exporter sends small JSON POSTs, one at a time per connection, and reads short JSON answers.
The standard library's ``http.client`` spends about 160 µs of CPU on such a request (its headers
go through the ``email`` parser, and the request leaves in two writes, which also meets the
Nagle / delayed-ACK stall); this connection spends about 25: the request is one write and the
answer is parsed with a few byte-string splits. It speaks HTTP/1.1 as RFC 9112 has it for a
client that never pipelines: ``Content-Length`` and ``chunked`` bodies, a body ended by the
server closing, interim ``1xx`` answers skipped, ``Connection: close`` honoured.
"""

from __future__ import annotations

import socket
import ssl

__all__ = ["Http1Connection", "Response", "StaleConnection"]

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
_READ = 65536


class StaleConnection(ConnectionError):
    """A reused connection the server had closed before answering: nothing was processed,
    so the request may be sent again on a new connection."""


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 this client can read."""


class Response:
    """A status, the headers (names lower-case) and the whole body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Http1Connection:
    """A connection to ``host``:``port`` (TLS when ``tls`` is given), opened on first use and
    again after the server closes it."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._answered = 0  # answers read on the open socket: a closed reused one is stale

    @property
    def is_open(self) -> bool:
        """Whether a socket is open (it may still turn out to be closed by the server)."""
        return self._sock is not None

    def connect(self) -> None:
        """Open the socket (and the TLS session)."""
        sock = socket.create_connection((self.host, self.port), timeout=self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self._timeout)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._buffer = b""
        self._answered = 0

    def close(self) -> None:
        """Close the socket; the next request opens a new one."""
        sock, self._sock = self._sock, None
        self._buffer = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def request(self, head: bytes, body: bytes) -> Response:
        """Send ``head`` (request line and headers, ending with the blank line) and ``body``
        in one write and read the answer. Raises `StaleConnection` when a reused
        connection turns out closed before any answer, ``OSError`` on any other failure;
        the connection is closed then."""
        if self._sock is None:
            self.connect()
        reused = self._answered > 0
        sock = self._sock
        assert sock is not None
        try:
            try:
                sock.sendall(head + body if len(body) < _READ else head)
                if len(body) >= _READ:
                    sock.sendall(body)
                status, headers = self._read_head(reused)
                while 100 <= status < 200 and status != 101:
                    status, headers = self._read_head(False)
            except (BrokenPipeError, ConnectionResetError) as exc:
                if reused:
                    raise StaleConnection(str(exc)) from exc
                raise
            body_out = self._read_body(status, headers)
        except BaseException:
            self.close()
            raise
        self._answered += 1
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body_out)

    # -- reading ----------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read more into the buffer; False when the server closed the connection."""
        assert self._sock is not None
        data = self._sock.recv(_READ)
        if not data:
            return False
        self._buffer += data
        return True

    def _read_head(self, reused: bool) -> tuple[int, dict[str, str]]:
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end > MAX_HEADER_BYTES or (end < 0 and len(self._buffer) > MAX_HEADER_BYTES):
                raise ProtocolError("the answer's headers exceed 64 KiB")
            if end >= 0:
                break
            if not self._fill():
                if reused and not self._buffer:
                    raise StaleConnection("the server closed the idle connection")
                raise ProtocolError("the server closed the connection before answering")
        head = self._buffer[:end].decode("latin-1")
        self._buffer = self._buffer[end + 4 :]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"not a header line: {line[:80]!r}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return int(parts[1]), headers

    def _read_body(self, status: int, headers: dict[str, str]) -> bytes:
        if status in (204, 304):
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_BODY_BYTES:
                raise ProtocolError(f"unusable Content-Length: {length[:40]!r}")
            return self._read_exactly(int(length))
        # No length: the body ends when the server closes the connection.
        while self._fill():
            if len(self._buffer) > MAX_BODY_BYTES:
                raise ProtocolError("the answer exceeds 64 MiB")
        body, self._buffer = self._buffer, b""
        self.close()
        return body

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill():
                raise ProtocolError("the server closed the connection within the answer")
        body, self._buffer = self._buffer[:size], self._buffer[size:]
        return body

    def _read_line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
                return line
            if len(self._buffer) > MAX_HEADER_BYTES or not self._fill():
                raise ProtocolError("unreadable chunked answer")

    def _read_chunked(self) -> bytes:
        pieces: list[bytes] = []
        total = 0
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size: {size_text[:20]!r}") from None
            if size == 0:
                while self._read_line():  # trailer fields, up to the blank line
                    pass
                return b"".join(pieces)
            total += size
            if total > MAX_BODY_BYTES:
                raise ProtocolError("the answer exceeds 64 MiB")
            pieces.append(self._read_exactly(size))
            if self._read_line():
                raise ProtocolError("a chunk does not end where its size says")
