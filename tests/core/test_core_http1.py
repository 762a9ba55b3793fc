"""The exporter's HTTP/1.1 connection against a server that answers exactly as scripted:
the framings a real API or proxy may use, connections closed under it, and what goes out."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from prefactor_core.export.sender import HttpSender
from prefactor_http.config import HttpClientConfig

Answer = Callable[[bytes], bytes | None]
"""Given one request (head and body), the bytes to write back (the server closes after an
answer saying ``Connection: close``); None closes the connection without answering."""


class ScriptedServer:
    """A loopback server that reads one request at a time and writes what ``answer`` says."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                request, buffer = head + b"\r\n\r\n" + rest[:length], rest[length:]
                self.requests.append(request)
                reply = self.answer(request)
                if reply is None:
                    return
                conn.sendall(reply)
                if b"Connection: close" in reply:
                    return

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[ScriptedServer, HttpSender]]]:
    made: list[tuple[ScriptedServer, HttpSender]] = []

    def start(answer: Answer) -> tuple[ScriptedServer, HttpSender]:
        server = ScriptedServer(answer)
        config = HttpClientConfig(
            api_url=f"http://127.0.0.1:{server.port}/base",
            api_token="test-token-123",
            request_timeout=5.0,
        )
        made.append((server, HttpSender(config)))
        return made[-1]

    yield start
    for server, sender in made:
        sender.close()
        server.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_the_request_goes_out_whole_with_its_headers(serve) -> None:
    server, sender = serve(lambda request: _ok(b'{"status":"success"}'))
    reply = sender.send("POST", "/api/v1/bulk", b'{"items":[]}', "prefactor-core@1, x@2")
    assert (reply.status, reply.body) == (200, b'{"status":"success"}')
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /base/api/v1/bulk HTTP/1.1"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    assert headers[b"host"] == b"127.0.0.1:%d" % server.port
    assert headers[b"authorization"] == b"Bearer test-token-123"
    assert headers[b"x-prefactor-sdk"] == b"prefactor-core@1, x@2"
    assert headers[b"content-length"] == b"12"
    assert body == b'{"items":[]}'


def test_answers_in_every_framing_are_read_whole(serve) -> None:
    payload = b'{"status":"success","outputs":{}}'
    chunked = b"".join(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"5;ext=1\r\n" + payload[:5] + b"\r\n",
            b"%x\r\n" % len(payload[5:]) + payload[5:] + b"\r\n",
            b"0\r\nX-Trailer: 1\r\n\r\n",
        ]
    )
    answers = iter(
        [
            b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(payload),
            chunked,
            _ok(payload, b"Retry-After: 7\r\nLocation: /elsewhere\r\n"),
        ]
    )
    server, sender = serve(lambda request: next(answers))
    for _ in range(3):
        reply = sender.send("POST", "/x", b"{}", "sdk")
        assert (reply.status, reply.body) == (200, payload)
    assert (reply.retry_after, reply.location) == (7.0, "/elsewhere")
    assert server.connections == 1  # one keep-alive connection carried all three


def test_a_body_ended_by_closing_and_connection_close_open_a_new_connection(serve) -> None:
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}",  # no length: read to the close
            _ok(b"{}", b"Connection: close\r\n"),
            _ok(b'{"n":3}'),
        ]
    )
    server, sender = serve(lambda request: next(answers))
    assert sender.send("POST", "/a", b"{}", "sdk").body == b"{}"
    assert sender.send("POST", "/b", b"{}", "sdk").body == b"{}"
    assert sender.send("POST", "/c", b"{}", "sdk").body == b'{"n":3}'
    assert server.connections == 3


def test_an_idle_connection_the_server_closed_is_replaced_without_a_failure(serve) -> None:
    calls = iter([_ok(b"{}"), None, _ok(b'{"again":1}')])
    server, sender = serve(lambda request: next(calls))
    assert sender.send("POST", "/a", b"{}", "sdk").status == 200
    # The server closes the kept connection when the next request arrives, before answering.
    reply = sender.send("POST", "/b", b"{}", "sdk")
    assert (reply.status, reply.body) == (200, b'{"again":1}')
    assert server.connections == 2


@pytest.mark.parametrize(
    "bad",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nine\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["status line", "length", "chunk size", "huge headers"],
)
def test_an_unreadable_answer_is_a_failed_attempt_not_a_crash(serve, bad: bytes) -> None:
    answers = iter([bad, _ok(b"{}")])
    _server, sender = serve(lambda request: next(answers))
    reply = sender.send("POST", "/a", b"{}", "sdk")
    assert reply.status == 0 and isinstance(reply.error, OSError)
    # The connection was dropped; the next request works on a new one.
    assert sender.send("POST", "/a", b"{}", "sdk").status == 200


def test_a_refused_connection_is_a_failed_attempt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = HttpSender(HttpClientConfig(api_url=f"http://127.0.0.1:{port}", api_token="t-123456"))
    reply = sender.send("POST", "/a", b"{}", "sdk")
    assert reply.status == 0 and isinstance(reply.error, ConnectionRefusedError)
