"""A flaky API (errors, rate limits, hanging requests) under LangChain agents: every span
arrives exactly once and in order."""

from __future__ import annotations

from typing import Any

import pytest
from _rel_support import (
    ANSWER,
    QUESTION,
    answer_of,
    check_runs,
    fast_http,
    make_agent,
    make_client,
    report,
)

from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

RUNS = 12


def _processing_order(server: LocalServer) -> dict[tuple[str, str], int]:
    """Position of each mutation the server carried out (replays are not repeated there)."""
    with server.store.read() as conn:
        rows = conn.execute(
            "SELECT route, resource_id FROM idempotency_keys ORDER BY rowid"
        ).fetchall()
    order: dict[tuple[str, str], int] = {}
    for index, row in enumerate(rows):
        route, resource = str(row["route"]), str(row["resource_id"])
        if route == "POST /api/v1/agent_spans":
            kind = "span_create"
        elif route.startswith("POST /api/v1/agent_spans/"):
            kind = "span_finish"
        else:
            kind = route.rsplit("/", 1)[-1]  # register, start, finish
        assert (kind, resource) not in order, f"{kind} of {resource} was carried out twice"
        order[(kind, resource)] = index
    return order


@pytest.mark.parametrize("bulk_max_items", [3, 0], ids=["bulk", "single"])
def test_flaky_api_stores_every_span_once_and_in_order(
    local_server: LocalServer, bulk_max_items: int
) -> None:
    faults = local_server.faults
    faults.seed = 20240601
    faults.error_rate = 0.30
    faults.error_statuses = (500, 502, 503, 504, 429)
    faults.hang_rate = 0.05
    faults.hang_seconds = 1.0  # longer than the request timeout: the client gives up and retries
    client = make_client(
        fast_http(local_server, request_timeout=0.4),
        bulk_max_items=bulk_max_items,  # small batches: many requests, so faults are met
        linger=0.001,
    )
    handler = PrefactorCallbackHandler(client, agent_name="flaky-agent")
    agent = make_agent()

    answers = [answer_of(agent.invoke(QUESTION, {"callbacks": [handler]})) for _ in range(4)]
    batch: list[Any] = agent.batch([QUESTION] * (RUNS - 4), {"callbacks": [handler]})
    answers += [answer_of(result) for result in batch]

    assert answers == [ANSWER] * RUNS
    assert handler.flush(timeout=60), client.stats()
    stats = client.stats()
    assert stats.failed == 0 and stats.dropped == 0, stats
    injected = local_server.injected_faults
    assert injected["error"] > 0 and injected["hang"] > 0, injected
    assert stats.retried >= injected["error"]
    counted = check_runs(local_server, RUNS)
    assert counted.duplicated == 0 and counted.lost == 0

    order = _processing_order(local_server)
    for instance in local_server.store.list_instances():
        iid = instance["id"]
        spans = local_server.store.list_spans(iid)
        registered, started = order[("register", iid)], order[("start", iid)]
        finished = order[("finish", iid)]
        assert registered < started < finished
        for span in spans:
            created = order[("span_create", span["id"])]
            done = order.get(("span_finish", span["id"]), created)  # one call when coalesced
            # Causal order: spans need their instance registered, not yet started.
            assert registered < created <= done < finished
            if span["parent_span_id"] is not None:
                assert order[("span_create", span["parent_span_id"])] < created
    report("flaky: 30% 5xx/429, 5% hangs, 12 runs", stats.queued, counted)
    handler.close(timeout=5)
    client.tracer.close(timeout=5)
