"""The API goes away for ten seconds in the middle of twenty agent runs, then comes back."""

from __future__ import annotations

import threading
import time

from _rel_support import (
    ANSWER,
    QUESTION,
    answer_of,
    check_runs,
    make_agent,
    report,
)

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_http.config import HttpClientConfig
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer, ping

OUTAGE_SECONDS = 10.0


def _wait_until_down(server: LocalServer) -> None:
    deadline = time.monotonic() + 10
    while ping(server.url, server.token, timeout=0.5) is not None:
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(0.02)


def test_default_retry_settings_ride_out_a_ten_second_outage(local_server: LocalServer) -> None:
    # Nothing but the URL and the token: the retry settings are the defaults.
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=local_server.url, api_token=local_server.token)
    )
    client = PrefactorCoreClient(config)
    handler = PrefactorCallbackHandler(client, agent_name="outage-agent")
    agent = make_agent()
    answers: list[str] = []

    def run() -> None:
        answers.append(answer_of(agent.invoke(QUESTION, {"callbacks": [handler]})))

    for _ in range(5):
        run()
    outage = threading.Thread(target=local_server.restart, kwargs={"downtime": OUTAGE_SECONDS})
    outage.start()
    _wait_until_down(local_server)
    down_since = time.monotonic()
    for _ in range(10):  # spread over most of the outage
        run()
        time.sleep(0.5)
    assert ping(local_server.url, local_server.token, timeout=0.5) is None, "outage ended early"
    outage.join()
    assert time.monotonic() - down_since >= OUTAGE_SECONDS - 0.5
    for _ in range(5):
        run()

    assert answers == [ANSWER] * 20  # every run completed, unchanged, without an exception
    assert handler.flush(timeout=60), client.stats()
    stats = client.stats()
    assert stats.retried > 0  # the outage was seen, and ridden out
    assert stats.failed == 0 and stats.dropped == 0 and stats.pending == 0, stats
    assert stats.queued <= QueueConfig().max_buffered_operations
    counted = check_runs(local_server, 20)
    assert counted.stored == counted.expected and counted.duplicated == 0 and counted.lost == 0
    report("outage 10 s, 20 agent runs, default retries", stats.queued, counted)
    handler.close(timeout=5)
    client.tracer.close(timeout=5)
