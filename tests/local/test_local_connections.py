"""Connections the local server bounds: idle and slow clients, a connection limit, fd exhaustion.

Everything runs on loopback; socket timeouts only keep a broken server from hanging the test.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from prefactor_local.connections import ConnectionLimits
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer

PING_HEAD = b"GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n"


def _ping(port: int, token: str, timeout: float = 5.0) -> int | str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/v1/ping", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError as exc:
        return repr(exc)
    finally:
        conn.close()


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _envelope(raw: bytes) -> tuple[str, dict[str, str], dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return status, headers, json.loads(body)


def test_a_request_head_that_never_completes_gets_408_and_is_closed() -> None:
    limits = ConnectionLimits(header_timeout=0.3)
    with LocalServer(connection_limits=limits) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(PING_HEAD)  # never the blank line that ends the head
            status, headers, body = _envelope(_read_all(sock))
        assert status == "HTTP/1.1 408 Request Timeout"
        assert headers["connection"] == "close"
        assert body == {
            "status": "error",
            "code": "request_timeout",
            "message": "No complete request head within 0.3 s",
        }
        assert _ping(server.port, server.token) == 200


def test_a_request_body_that_stops_arriving_is_cut_off() -> None:
    limits = ConnectionLimits(body_timeout=0.3)
    with LocalServer(connection_limits=limits) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                b"POST /api/v1/agent_spans HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {server.token}\r\n".encode()
                + b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"details":'
            )
            assert _read_all(sock) == b""  # closed without an answer
        assert _ping(server.port, server.token) == 200


def test_at_the_limit_with_every_connection_busy_a_new_one_gets_a_clear_503() -> None:
    limits = ConnectionLimits(max_connections=2)
    faults = FaultConfig(hang_rate=1, hang_seconds=30, path_prefix="/api/v1/agent_spans")
    with LocalServer(connection_limits=limits, faults=faults) as server:
        busy = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(
                b"POST /api/v1/agent_spans HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                + f"Authorization: Bearer {server.token}\r\n\r\n{{}}".encode()
            )
            busy.append(sock)
        while server.injected_faults.get("hang", 0) < 2:
            time.sleep(0.01)
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(PING_HEAD + b"\r\n")
                status, headers, body = _envelope(_read_all(sock))
        finally:
            for sock in busy:
                sock.close()
        assert status == "HTTP/1.1 503 Service Unavailable"
        assert headers["retry-after"] == "1"
        assert body == {
            "status": "error",
            "code": "too_many_connections",
            "message": "The local server is at its limit of 2 connections, all with a request "
            "in flight; retry shortly",
        }
        assert _ping(server.port, server.token) == 200  # the hung ones left: a slot again


def test_it_keeps_serving_other_clients_during_a_slowloris() -> None:
    limits = ConnectionLimits(max_connections=20, header_timeout=2)
    with LocalServer(connection_limits=limits) as server:
        attackers: list[socket.socket] = []
        try:
            for round_ in range(3):
                for _ in range(30):  # more than the limit, each sending its head a line at a time
                    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                    sock.sendall(PING_HEAD)
                    attackers.append(sock)
                for sock in attackers:
                    try:
                        sock.sendall(f"X-Slow-{round_}: 1\r\n".encode())
                    except OSError:
                        pass  # evicted to make room for a newer connection
                for _ in range(5):
                    assert _ping(server.port, server.token) == 200
            # The oldest slow connections were closed to make room; none of them got an answer.
            evicted = 0
            for sock in attackers[:60]:
                sock.settimeout(5)
                try:
                    evicted += sock.recv(1) == b""
                except ConnectionResetError:
                    evicted += 1
            assert evicted == 60
        finally:
            for sock in attackers:
                sock.close()


def _limit_fds(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextmanager
def _serve_with_fd_limit(tmp_path: Path, limit: int) -> Iterator[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    env["PREFACTOR_API_TOKEN"] = "fd-token"
    options = [
        "--port",
        "0",
        "--no-access-log",
        "--log-level",
        "critical",
        "--header-timeout",
        "60",
    ]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefactor_local",
            "serve",
            "--db",
            str(tmp_path / "fd.db"),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=lambda: _limit_fds(limit),
    )
    assert process.stdout is not None
    port = None
    for line in process.stdout:
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
            break
    assert port is not None
    threading.Thread(target=process.stdout.read, daemon=True).start()
    try:
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_more_idle_connections_than_file_descriptors_do_not_wedge_it(tmp_path: Path) -> None:
    limit = 256
    with _serve_with_fd_limit(tmp_path, limit) as port:
        assert _ping(port, "fd-token") == 200
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(limit + 100)]
        try:
            # Served while every idle client is still connected: the oldest idle ones are
            # closed to make room (after a pause of the accept loop if descriptors ran out).
            answers = [_ping(port, "fd-token", timeout=3) for _ in range(10)]
            assert 200 in answers, answers
            assert answers[-1] == 200, answers
        finally:
            for sock in idle:
                sock.close()
        assert [_ping(port, "fd-token", timeout=5) for _ in range(3)] == [200, 200, 200]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_connections", 0, "max_connections must be a whole number of at least 1, got 0"),
        ("header_timeout", 0, "header_timeout must be a number of seconds above 0, got 0"),
        ("body_timeout", "5", "body_timeout must be a number of seconds above 0, got '5'"),
        (
            "keep_alive_timeout",
            0.5,
            "keep_alive_timeout must be a whole number of seconds of at least 1, got 0.5",
        ),
    ],
)
def test_bad_connection_limits_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        ConnectionLimits(**{field: value})  # type: ignore[arg-type]
    assert str(error.value) == message
