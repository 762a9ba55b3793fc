"""Delivery against the real local server, in both ways of sending: whole runs per bulk
request (the default) and one request per operation (``bulk_max_items=0``, or a server
without the bulk endpoint). Everything is stored exactly once and in order with faults on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from _core_support import (
    AGENT_VERSION,
    api_requests,
    config_for,
    http_config,
    processing_log,
    spans_by_id,
)

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_core.operations import Operation, OperationType
from prefactor_core.utils import utc_now
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


def _positions(server: LocalServer) -> dict[tuple[str, str], int]:
    """Where each (kind, resource id) was first processed by the server."""
    position: dict[tuple[str, str], int] = {}
    for index, (route, resource) in enumerate(processing_log(server)):
        if route.endswith("/agent_spans"):
            kind = "span_create"
        elif "/agent_spans/" in route:
            kind = "span_finish"
        else:
            kind = "instance_" + route.rsplit("/", 1)[-1]
        position.setdefault((kind, resource), index)
    return position


def _build(client: PrefactorCoreClient, runs: int, steps: int) -> dict[str, dict[str, Any]]:
    """``runs`` instances of a root span with ``steps`` children (each with one grandchild)."""
    tracer = client.tracer
    trees: dict[str, dict[str, Any]] = {}
    for run in range(runs):
        instance = tracer.start_instance(agent_version=AGENT_VERSION)
        root = tracer.create_span(instance, "agent:run", payload={"run": run})
        parents: dict[str, str | None] = {root: None}
        for step in range(steps):
            child = tracer.create_span(
                instance, "agent:step", parent_span_id=root, payload={"step": step}
            )
            leaf = tracer.create_span(instance, "agent:tool", parent_span_id=child)
            tracer.finish_span(leaf, result_payload={"ok": step})
            tracer.finish_span(child)
            parents[child], parents[leaf] = root, child
        tracer.finish_span(root, result_payload={"done": run})
        tracer.record_quality(instance, "score", {"run": run})
        tracer.finish_instance(instance)
        trees[instance] = parents
    return trees


@pytest.mark.parametrize("bulk_max_items", [25, 0], ids=["bulk", "single"])
def test_everything_is_stored_once_in_order_despite_faults(
    local_server: LocalServer, bulk_max_items: int
) -> None:
    local_server.faults = FaultConfig(
        seed=99,
        error_rate=0.3,
        error_statuses=(500, 503, 429),
        hang_rate=0.05,
        hang_seconds=1.0,
        drop_response_rate=0.1,
    )
    config = PrefactorCoreConfig(
        http_config=http_config(local_server.url, local_server.token, request_timeout=0.5),
        queue_config=QueueConfig(bulk_max_items=bulk_max_items, linger=0.001, retry_budget=60),
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    trees = _build(client, runs=6, steps=8)
    assert client.tracer.flush(90)
    stats = client.stats()
    client.tracer.close(timeout=5)
    local_server.faults = FaultConfig()

    assert stats.failed == 0 and stats.dropped == 0, stats
    injected = local_server.injected_faults
    assert injected["error"] > 0 and injected["hang"] + injected["drop_response"] > 0, injected
    sent = api_requests(local_server)
    bulk_requests = [r for r in sent if r.path == "/api/v1/bulk"]
    if bulk_max_items:
        assert {r.path for r in sent} == {"/api/v1/bulk"}
        assert max(len(r.json()["items"]) for r in bulk_requests) > 1
    else:
        assert not bulk_requests
    # A lost answer was retried as a whole: what it carried was replayed, not stored again.
    replays = [s["replays"] for i in trees for s in local_server.store.list_spans(i)]
    replays += [local_server.store.get_instance(i)["replays"] for i in trees]  # type: ignore[index]
    assert sum(replays) > 0

    position = _positions(local_server)
    expected_spans = sum(len(parents) for parents in trees.values())
    assert local_server.store.counts()["agent_spans"] == expected_spans
    for instance_id, parents in trees.items():
        row = local_server.store.get_instance(instance_id)
        assert row is not None and row["status"] == "complete"
        assert row["quality_payloads"] == {"score": {"run": list(trees).index(instance_id)}}
        started = position[("instance_start", instance_id)]
        finished = position[("instance_finish", instance_id)]
        assert position[("instance_register", instance_id)] < started < finished
        stored = spans_by_id(local_server, instance_id)
        assert set(stored) == set(parents)
        for span_id, parent in parents.items():
            assert stored[span_id]["status"] == "complete"
            assert stored[span_id]["parent_span_id"] == parent
            created = position[("span_create", span_id)]
            assert position[("instance_register", instance_id)] < created
            if parent is not None:
                assert position[("span_create", parent)] < created
            assert created <= position.get(("span_finish", span_id), created) < finished


def test_one_run_goes_out_in_one_request(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server, termination_poll_interval=None))
    trees = _build(client, runs=1, steps=3)
    assert client.tracer.flush(10)
    stats = client.stats()
    client.tracer.close(timeout=5)

    (request,) = api_requests(local_server)
    assert request.path == "/api/v1/bulk"
    items = request.json()["items"]
    # register, start, then each span created with its end (coalesced), quality, finish
    kinds = [item["_type"] for item in items]
    assert kinds[:2] == ["agent_instances/register", "agent_instances/start"]
    assert kinds[-2:] == ["agent_instances/record_quality", "agent_instances/finish"]
    assert kinds[2:-2] == ["agent_spans/create"] * 7
    assert all(item["status"] == "complete" for item in items[2:-2])
    assert stats.requests == 1 and stats.sent == len(items) and stats.coalesced == 7
    (instance_id,) = trees
    assert set(spans_by_id(local_server, instance_id)) == set(trees[instance_id])


async def test_an_item_the_server_refuses_does_not_hold_back_the_rest(
    local_server: LocalServer,
) -> None:
    client = PrefactorCoreClient(config_for(local_server, bulk_max_items=50))
    tracer = client.tracer
    instance = tracer.start_instance(agent_version=AGENT_VERSION)
    finished = tracer.create_span(instance, "agent:step")
    tracer.finish_span(finished)
    assert tracer.flush(10)
    local_server.clear_requests()

    # A second finish of a finished span: the bulk item is answered 409 ("already finished",
    # so done) and the items after it, which the server did not run, are sent again.
    again = {"span_id": finished, "instance_id": instance, "status": "failed"}
    tracer.submit(Operation(OperationType.FINISH_SPAN, again, utc_now()))
    later = [tracer.create_span(instance, "agent:step", payload={"n": n}) for n in range(10)]
    for span_id in later:
        tracer.finish_span(span_id)
    tracer.finish_instance(instance)
    assert tracer.flush(20)
    stats = client.stats()
    tracer.close(timeout=5)

    assert stats.failed == 0, stats
    assert [r.path for r in api_requests(local_server)] == ["/api/v1/bulk"] * 2
    stored = spans_by_id(local_server, instance)
    assert set(stored) == {finished, *later}
    assert stored[finished]["status"] == "complete"  # the refused finish changed nothing
    assert all(stored[span_id]["status"] == "complete" for span_id in later)
    assert local_server.store.get_instance(instance)["status"] == "complete"  # type: ignore[index]


def test_a_server_without_bulk_is_detected_and_served_per_operation(
    tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="prefactor_core.export")
    with LocalServer(db_path=tmp_path / "no-bulk.db", bulk=False) as server:
        client = PrefactorCoreClient(config_for(server))
        trees = _build(client, runs=3, steps=4)
        assert client.tracer.flush(30)
        stats = client.stats()
        client.tracer.close(timeout=5)

        assert stats.failed == 0, stats
        requests = api_requests(server)
        paths = [r.path for r in requests]
        assert paths[0] == "/api/v1/bulk" and "/api/v1/bulk" not in paths[1:]
        assert requests[0].status == 404
        for instance_id, parents in trees.items():
            assert set(spans_by_id(server, instance_id)) == set(parents)
            row = server.store.get_instance(instance_id)
            assert row is not None and row["status"] == "complete"
    warnings = [r.getMessage() for r in caplog.records if "one request per operation" in r.message]
    assert len(warnings) == 1 and "answered HTTP 404" in warnings[0]
