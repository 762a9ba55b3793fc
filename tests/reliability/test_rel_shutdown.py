"""A server too slow to drain at shutdown: ``close()`` and interpreter exit keep to the
shutdown timeout and say what was not delivered."""

from __future__ import annotations

import logging
import re
import signal
import textwrap
import time
from typing import Any

import pytest
from _rel_support import (
    AGENT_OUTLINE,
    QUESTION,
    fast_http,
    make_agent,
    make_client,
    outline,
    run_script,
    start_script,
)

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


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    from _rel_support import QUESTION, make_agent
    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    if {own_handler}:  # the application's own handler, installed before ours could be
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(3))
    client = PrefactorCoreClient(PrefactorCoreConfig.from_env(agent_id=None))
    handler = PrefactorCallbackHandler(client, agent_name="sigterm-agent")
    agent = make_agent()
    for _ in range(3):
        agent.invoke(QUESTION, {{"callbacks": [handler]}})
    # A run of the core API still open when the process is told to stop.
    job = {{"name": "job", "external_identifier": "v1"}}
    open_run = client.tracer.start_instance(agent_version=job)
    client.tracer.create_span(open_run, "agent:step")
    print(open_run, flush=True)
    time.sleep(60)
    """
)


def _sigterm(server: LocalServer, *, own_handler: bool = False, **env: str) -> tuple[int, str]:
    """Run the script, SIGTERM it once its runs are queued; its exit code and open run."""
    server.faults.latency_ms = 100  # so that the runs are still waiting when the signal comes
    process = start_script(SIGTERM_SCRIPT.format(own_handler=own_handler), server, **env)
    assert process.stdout is not None
    open_run = process.stdout.readline().strip()
    assert open_run, process.communicate(timeout=30)[1]
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    return process.returncode, open_run


@pytest.mark.parametrize("own_handler", [False, True], ids=["default", "application's handler"])
def test_sigterm_drains_finishes_open_runs_and_exits_as_asked(
    local_server: LocalServer, own_handler: bool
) -> None:
    code, open_run = _sigterm(local_server, own_handler=own_handler)

    # Ours re-raises the signal after the drain; the application's own handler is left alone
    # (it exits with 3 here) and the drain happens at interpreter exit instead.
    assert code == (3 if own_handler else -signal.SIGTERM)
    instances = {i["id"]: i for i in local_server.store.list_instances()}
    assert instances[open_run]["status"] == "cancelled"
    assert [s["status"] for s in local_server.store.list_spans(open_run)] == ["cancelled"]
    agent_runs = [i for iid, i in instances.items() if iid != open_run]
    assert len(agent_runs) == 3
    for instance in agent_runs:
        assert instance["status"] == "complete"
        assert outline(local_server.store.list_spans(str(instance["id"]))) == AGENT_OUTLINE


def test_the_sigterm_handler_can_be_turned_off(local_server: LocalServer) -> None:
    code, open_run = _sigterm(local_server, PREFACTOR_SIGTERM_HANDLER="0")

    assert code == -signal.SIGTERM  # killed at once, by the default action
    row = local_server.store.get_instance(open_run)
    assert row is None or row["status"] != "cancelled"
