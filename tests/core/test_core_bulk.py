"""The opt-in bulk transport (``QueueConfig.bulk_max_items``) against the real local server:
everything stored exactly once, in order, with faults on; refused items and refused bulk
requests fall back to single requests."""

from __future__ import annotations

from typing import Any

from _core_support import AGENT_VERSION, config_for, http_config, processing_log, spans_by_id

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


async def test_bulk_mode_stores_everything_once_in_order_despite_faults(
    local_server: LocalServer,
) -> None:
    local_server.faults = FaultConfig(
        seed=99, error_rate=0.3, error_statuses=(500, 503, 429), drop_response_rate=0.3
    )
    config = PrefactorCoreConfig(
        http_config=http_config(
            local_server.url, local_server.token, request_timeout=2.0, max_retries=6
        ),
        queue_config=QueueConfig(max_retries=6, retry_delay_base=0.02, bulk_max_items=25),
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
    assert injected["error"] > 0 and injected["drop_response"] > 0, injected
    bulk_requests = [r for r in local_server.requests if r.path == "/api/v1/bulk"]
    assert bulk_requests and max(len(r.json()["items"]) for r in bulk_requests) > 1
    # A lost answer was retried as a whole: its items were replayed, not stored again.
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
            assert started < created
            if parent is not None:
                assert position[("span_create", parent)] < created
            assert created <= position.get(("span_finish", span_id), created) < finished


async def test_an_item_the_server_refuses_is_retried_on_its_own(
    local_server: LocalServer,
) -> None:
    client = PrefactorCoreClient(config_for(local_server, bulk_max_items=50))
    tracer = client.tracer
    instance = tracer.start_instance(agent_version=AGENT_VERSION)
    finished = tracer.create_span(instance, "agent:step")
    tracer.finish_span(finished)
    assert tracer.flush(10)
    local_server.clear_requests()

    # A second finish of a finished span: the bulk item is answered 409 and the items after it
    # are not run; alone, the 409 means "already finished", and the others go through.
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
    paths = [r.path for r in local_server.requests]
    assert "/api/v1/bulk" in paths, paths
    assert f"/api/v1/agent_spans/{finished}/finish" in paths, paths
    stored = spans_by_id(local_server, instance)
    assert set(stored) == {finished, *later}
    assert stored[finished]["status"] == "complete"  # the refused finish changed nothing
    assert all(stored[span_id]["status"] == "complete" for span_id in later)
    assert local_server.store.get_instance(instance)["status"] == "complete"  # type: ignore[index]


async def test_a_server_without_bulk_gets_single_requests(local_server: LocalServer) -> None:
    local_server.faults = FaultConfig(
        error_rate=1.0, error_statuses=(404,), path_prefix="/api/v1/bulk"
    )
    client = PrefactorCoreClient(config_for(local_server, bulk_max_items=50))
    trees = _build(client, runs=3, steps=4)
    assert client.tracer.flush(30)
    stats = client.stats()
    client.tracer.close(timeout=5)

    assert stats.failed == 0, stats
    assert local_server.injected_faults["error"] > 0
    for instance_id, parents in trees.items():
        assert set(spans_by_id(local_server, instance_id)) == set(parents)
        row = local_server.store.get_instance(instance_id)
        assert row is not None and row["status"] == "complete"
