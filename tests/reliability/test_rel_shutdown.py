"""A server too slow to drain at shutdown: ``close()`` and interpreter exit keep to the
shutdown timeout and say what was not delivered."""

from __future__ import annotations

import logging
import re
import textwrap
import time
from typing import Any

from _rel_support import QUESTION, fast_http, make_agent, make_client, run_script

from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

SHUTDOWN_TIMEOUT = 1.0
# Generous: the timeout itself, then cancelling what is in flight and stopping the thread.
MARGIN = 2.5


def _slow(server: LocalServer) -> None:
    server.faults.latency_ms = 5_000  # every write takes five seconds


def _close_line(caplog: Any) -> re.Match[str]:
    lines = [r.getMessage() for r in caplog.records if "not delivered before close" in r.message]
    assert len(lines) == 1, lines
    match = re.search(r"(\d+) operation\(s\).*sent=(\d+), failed=(\d+), dropped=(\d+)", lines[0])
    assert match is not None, lines[0]
    return match


def test_close_keeps_to_the_shutdown_timeout_and_reports_the_loss(
    local_server: LocalServer, caplog: Any
) -> None:
    _slow(local_server)
    client = make_client(
        fast_http(local_server, request_timeout=30.0), shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    handler = PrefactorCallbackHandler(client, agent_name="slow-agent")
    agent = make_agent()
    for _ in range(3):
        agent.invoke(QUESTION, {"callbacks": [handler]})
    caplog.set_level(logging.WARNING)

    started = time.monotonic()
    assert handler.close(timeout=0.5) is False  # bounded too, and says not everything went
    lost = client.tracer.close()
    elapsed = time.monotonic() - started

    assert elapsed < 0.5 + SHUTDOWN_TIMEOUT + MARGIN, elapsed
    stats = client.stats()
    assert lost > 0 and stats.pending == 0 and stats.sent == 0
    assert stats.failed == lost and stats.health == "closed"
    counts = _close_line(caplog)
    assert int(counts[1]) == lost
    assert (int(counts[2]), int(counts[3]), int(counts[4])) == (0, lost, 0)


async def test_async_close_keeps_to_the_shutdown_timeout(
    local_server: LocalServer, caplog: Any
) -> None:
    _slow(local_server)
    client = make_client(
        fast_http(local_server, request_timeout=30.0), shutdown_timeout=SHUTDOWN_TIMEOUT
    )
    await client.initialize()
    handler = PrefactorCallbackHandler(client, agent_name="slow-agent")
    await make_agent().ainvoke(QUESTION, {"callbacks": [handler]})
    caplog.set_level(logging.WARNING)

    started = time.monotonic()
    await client.close()
    elapsed = time.monotonic() - started

    assert elapsed < SHUTDOWN_TIMEOUT + MARGIN, elapsed
    stats = client.stats()
    assert stats.failed > 0 and stats.pending == 0
    assert int(_close_line(caplog)[1]) == stats.failed


EXIT_SCRIPT = textwrap.dedent(
    """
    import time
    from _rel_support import QUESTION, make_agent
    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
    from prefactor_http.config import HttpClientConfig
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    config = PrefactorCoreConfig(
        http_config=HttpClientConfig.from_env(request_timeout=30.0),
        queue_config=QueueConfig(shutdown_timeout={timeout}),
    )
    handler = PrefactorCallbackHandler(PrefactorCoreClient(config), agent_name="slow-exit")
    agent = make_agent()
    for _ in range(3):
        agent.invoke(QUESTION, {{"callbacks": [handler]}})
    print(time.time(), flush=True)
    """
)


def test_interpreter_exit_keeps_to_the_shutdown_timeout_and_reports_the_loss(
    local_server: LocalServer,
) -> None:
    _slow(local_server)
    done = run_script(EXIT_SCRIPT.format(timeout=SHUTDOWN_TIMEOUT), local_server)
    exited = time.time()

    assert done.returncode == 0, done.stderr
    ran = float(done.stdout.split()[-1])
    assert exited - ran < SHUTDOWN_TIMEOUT + MARGIN, exited - ran
    match = re.search(
        r"Prefactor: (\d+) operation\(s\) could not be delivered before shutdown "
        r"\(sent=(\d+), failed=(\d+), dropped=(\d+)\)",
        done.stderr,
    )
    assert match is not None, done.stderr
    lost = int(match[1])
    assert lost > 0 and (int(match[2]), int(match[3]), int(match[4])) == (0, lost, 0)


STUCK_LOOKUP_SCRIPT = textwrap.dedent(
    """
    import socket, time
    from _rel_support import QUESTION, make_agent
    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
    from prefactor_http.config import HttpClientConfig
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    def stuck_lookup(*args, **kwargs):  # a name server that never answers
        time.sleep(120)
        raise OSError("no answer")

    socket.getaddrinfo = stuck_lookup
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig.from_env(connect_timeout=60.0),
        queue_config=QueueConfig(shutdown_timeout={timeout}),
    )
    handler = PrefactorCallbackHandler(PrefactorCoreClient(config), agent_name="no-dns")
    make_agent().invoke(QUESTION, {{"callbacks": [handler]}})
    print(time.time(), flush=True)
    """
)


def test_a_stuck_name_lookup_does_not_hold_up_interpreter_exit(local_server: LocalServer) -> None:
    done = run_script(
        STUCK_LOOKUP_SCRIPT.format(timeout=SHUTDOWN_TIMEOUT),
        local_server,
        PREFACTOR_API_URL=local_server.url.replace("127.0.0.1", "localhost"),
    )
    exited = time.time()

    assert done.returncode == 0, done.stderr
    assert exited - float(done.stdout.split()[-1]) < SHUTDOWN_TIMEOUT + MARGIN
    assert "could not be delivered before shutdown" in done.stderr, done.stderr
