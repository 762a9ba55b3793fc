"""The exporter against the real local server: latency independence, order, exactly-once,
bounds, and coalescing."""

from __future__ import annotations

import asyncio
import gc
import random
import time
import tracemalloc

from _core_support import (
    AGENT_VERSION,
    config_for,
    http_config,
    processing_log,
    spans_by_id,
    unreachable_url,
)

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_local.server import LocalServer


async def test_span_creation_never_waits_for_the_network(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 500
    config = config_for(local_server, export_concurrency=100, termination_poll_interval=None)
    async with PrefactorCoreClient(config) as client:
        started = time.perf_counter()
        instance = await client.create_agent_instance(AGENT_VERSION)
        await instance.start()
        span_ids = []
        for index in range(1000):
            span_id = await instance.create_span("agent:step", payload={"index": index})
            await instance.finish_span(span_id, {"done": index})
            span_ids.append(span_id)
        await instance.finish()
        elapsed = time.perf_counter() - started
        # Generous bound: each round trip alone takes 0.5 s.
        assert elapsed < 0.9, f"1,000 span pairs took {elapsed:.2f} s on the caller's side"

        assert await client.flush(60)
        stats = client.stats()
    stored = spans_by_id(local_server, instance.id)
    assert set(stored) == set(span_ids)
    assert all(span["status"] == "complete" for span in stored.values())
    assert stored[span_ids[7]]["payload"] == {"index": 7}
    assert stored[span_ids[7]]["result_payload"] == {"done": 7}
    instance_row = local_server.store.get_instance(instance.id)
    assert instance_row is not None and instance_row["status"] == "complete"
    assert stats.failed == 0 and stats.dropped == 0
    assert stats.coalesced > 0  # finishes rode along with their creates


async def _build_tree(client: PrefactorCoreClient, seed: int) -> tuple[str, dict[str, str | None]]:
    """One instance with a random span tree built by several concurrent tasks."""
    rng = random.Random(seed)
    instance = await client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    parents: dict[str, str | None] = {}

    async def branch(parent: str | None, depth: int) -> None:
        span_id = await instance.create_span("agent:node", parent_span_id=parent)
        parents[span_id] = parent
        if depth < 3:
            await asyncio.gather(*(branch(span_id, depth + 1) for _ in range(rng.randint(1, 3))))
        await asyncio.sleep(rng.random() * 0.01)
        await instance.finish_span(span_id, {"depth": depth})

    await asyncio.gather(*(branch(None, 0) for _ in range(3)))
    await instance.finish()
    return instance.id, parents


async def test_order_is_kept_per_instance_under_concurrency(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 10
    config = config_for(local_server, num_workers=4, export_concurrency=16)
    async with PrefactorCoreClient(config) as client:
        trees = await asyncio.gather(*(_build_tree(client, seed) for seed in range(5)))
        assert await client.flush(60)
        stats = client.stats()
    assert stats.failed == 0, stats
    log = processing_log(local_server)
    position: dict[tuple[str, str], int] = {}
    for index, (route, resource) in enumerate(log):
        kind = route.rsplit("/", 1)[-1]
        if route.endswith("/agent_spans"):
            kind = "span_create"
        elif "/agent_spans/" in route:
            kind = "span_finish"
        else:
            kind = "instance_" + kind
        position.setdefault((kind, resource), index)
    for instance_id, parents in trees:
        started = position[("instance_start", instance_id)]
        finished = position[("instance_finish", instance_id)]
        assert position[("instance_register", instance_id)] < started
        stored = spans_by_id(local_server, instance_id)
        assert set(stored) == set(parents)
        for span_id, parent in parents.items():
            assert stored[span_id]["parent_span_id"] == parent
            assert stored[span_id]["status"] == "complete"
            created = position[("span_create", span_id)]
            assert started < created
            if parent is not None:
                assert position[("span_create", parent)] < created
            done = position.get(("span_finish", span_id), created)  # coalesced: one call
            assert created <= done < finished


async def test_buffer_is_bounded_when_the_server_is_unreachable() -> None:
    url = unreachable_url()
    config = PrefactorCoreConfig(
        http_config=http_config(
            url, "token", max_retries=3, initial_retry_delay=5.0, max_retry_delay=5.0
        ),
        queue_config=QueueConfig(max_buffered_operations=500, shutdown_timeout=0.5),
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    tracer = client.tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    payload = {"text": "x" * 200}

    def burst(count: int) -> None:
        for _ in range(count):
            span_id = tracer.create_span(instance_id, "agent:step", payload=payload)
            tracer.finish_span(span_id, result_payload=payload)

    burst(2_000)  # well past the bound
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    pending_before = client.stats().pending
    burst(6_000)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    stats = client.stats()
    assert pending_before <= 500 + 64 and stats.pending <= 500 + 64
    assert stats.dropped >= 12_000  # creates and finishes refused while full, and counted
    assert growth < 1_000_000, f"memory grew by {growth} bytes"
    assert tracer.open_span_count == 0
    assert not client.tracer.flush(0.1)
    lost = await client.tracer.aclose(timeout=0.2)
    assert lost > 0
    assert client.stats().failed >= lost


async def test_instance_lifecycle_survives_a_full_buffer() -> None:
    config = PrefactorCoreConfig(
        http_config=http_config(
            unreachable_url(), "token", initial_retry_delay=5.0, max_retry_delay=5.0
        ),
        queue_config=QueueConfig(max_buffered_operations=10, shutdown_timeout=0.1),
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    tracer = client.tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    for _ in range(50):
        tracer.create_span(instance_id, "agent:step")
    queued_before = client.stats().queued
    tracer.finish_instance(instance_id)  # the spans are cancelled (dropped), the finish fits
    stats = client.stats()
    assert stats.queued == queued_before + 1
    assert stats.dropped >= 40
    await client.tracer.aclose(timeout=0.1)


async def test_create_and_finish_are_coalesced_into_one_call(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    async with instance.span("agent:quick", payload={"q": 1}) as span:
        span.set_result({"a": 2})
    await instance.finish()
    assert await core_client.flush(10)
    log = processing_log(local_server)
    assert [route for route, resource in log if resource == span.id] == ["POST /api/v1/agent_spans"]
    stored = spans_by_id(local_server, instance.id)[span.id]
    assert (stored["status"], stored["payload"], stored["result_payload"]) == (
        "complete",
        {"q": 1},
        {"a": 2},
    )
    assert stored["finished_at"] is not None and stored["started_at"] is not None
    assert core_client.stats().coalesced >= 1


def test_children_of_a_dropped_span_attach_to_its_parent(local_server: LocalServer) -> None:
    config = config_for(local_server, max_buffered_operations=3, drop_policy="drop_newest")
    client = PrefactorCoreClient(config)
    tracer = client.tracer
    local_server.faults.latency_ms = 200
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    root = tracer.create_span(instance_id, "agent:root")  # fills the buffer (3 operations)
    dropped = tracer.create_span(instance_id, "agent:dropped", parent_span_id=root)
    assert client.stats().dropped == 1
    assert tracer.flush(10)
    local_server.faults.latency_ms = 0
    child = tracer.create_span(instance_id, "agent:child", parent_span_id=dropped)
    tracer.finish_span(child)
    assert tracer.flush(10)
    tracer.finish_span(dropped)  # its create never left: the finish is dropped too
    tracer.finish_span(root)
    tracer.finish_instance(instance_id)
    assert tracer.flush(10)
    stored = spans_by_id(local_server, instance_id)
    assert set(stored) == {root, child}
    assert stored[child]["parent_span_id"] == root
    stats = client.stats()
    assert (stats.dropped, stats.failed) == (2, 0)
    tracer.close()
