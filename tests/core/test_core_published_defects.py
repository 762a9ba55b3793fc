"""Each weakness of the published SDK (published-sdk.md §5) has a test here or nearby.

§5.1  1 test_span_creation_never_waits_for_the_network (test_core_export),
        test_registration_and_initialize_never_wait_for_the_network
      2 test_backend_errors_never_reach_the_agent (test_core_lifecycle),
        test_permanent_failure_is_never_raised_into_later_calls
      3 test_sync_calls_never_block_on_a_slow_server
§5.2  4 test_finished_spans_are_forgotten, test_span_ids_never_change,
        test_buffer_is_bounded_when_the_server_is_unreachable,
        test_children_of_a_dropped_span_attach_to_its_parent (test_core_export),
        test_long_strings_are_cut_with_their_original_size (test_core_payloads)
      5 test_order_is_kept_per_instance_under_concurrency (test_core_export),
        test_spans_of_two_clients_nest_and_stay_in_order (test_core_tracer)
§5.3  6 test_close_waits_for_operations_in_retry_backoff,
        test_pending_operations_are_delivered_at_interpreter_exit,
        test_flush_all_drains_every_client (test_core_lifecycle)
      7 test_exhausted_transient_failures_are_counted
§5.4  8 test_parent_comes_from_the_current_task_context (test_core_tracer)
      9 test_failed_create_never_leaves_a_stale_parent (test_core_lifecycle)
     10 test_exception_in_span_is_recorded_failed (test_core_seed_api)
     11 test_close_finishes_open_spans_and_instances (test_core_lifecycle),
        test_instance_finish_cancels_its_open_spans
     12 test_tracer_works_from_sync_code_without_an_event_loop,
        test_timestamps_are_taken_on_the_callers_side, test_threads_do_not_share_parents
        (test_core_tracer)
§5.5 13 test_concurrent_initialize_is_refused_cleanly
     14 test_in_memory_queue_is_bounded_and_thread_safe (test_core_units),
        test_termination_monitor_is_per_instance_and_thread_safe (test_core_termination)
§5.6 15 test_control_signal_on_span_create_marks_only_that_instance,
        test_termination_poll_detects_a_terminated_open_instance (test_core_termination),
        test_finishing_an_instance_keeps_other_instances_termination_state
§5.7 16 test_retry_on_status_codes_is_honoured (test_core_lifecycle),
        test_queue_retry_settings_are_used, test_operation_idempotency_key_and_metadata_are_used,
        test_finish_span_can_set_a_status
     17 test_seed_example_runs_as_written_and_is_stored (test_core_seed_api),
        test_create_agent_instance_works_without_a_schema_registry
     19 test_schema_registry_version_is_the_same_on_every_run (test_core_seed_api)
     20 test_unreadable_response_fails_one_operation_only (test_core_lifecycle)
     21 test_close_then_initialize_works (test_core_lifecycle),
        test_timestamps_are_taken_on_the_callers_side (naive datetimes, test_core_tracer)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from _core_support import AGENT_VERSION, config_for, http_config, spans_by_id, unreachable_url

from prefactor_core import (
    ClientAlreadyInitializedError,
    Operation,
    OperationType,
    PayloadPolicy,
    PrefactorCoreClient,
    PrefactorCoreConfig,
    QueueConfig,
)
from prefactor_core.utils import utc_now
from prefactor_local.server import LocalServer


async def test_registration_and_initialize_never_wait_for_the_network(
    local_server: LocalServer,
) -> None:
    local_server.faults.latency_ms = 1_000
    client = PrefactorCoreClient(config_for(local_server, termination_poll_interval=None))
    started = time.perf_counter()
    await client.initialize()
    async with client.create_agent_instance(AGENT_VERSION) as instance:
        await instance.start()
        async with instance.span("agent:llm") as span:
            span.set_payload({"model": "m"})
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.2f} s with a 1 s server"  # generous bound
    local_server.faults.latency_ms = 0
    assert await client.flush(20)
    await client.close()
    assert len(local_server.store.list_spans(instance.id)) == 1


async def test_permanent_failure_is_never_raised_into_later_calls(
    local_server: LocalServer,
) -> None:
    local_server.faults.error_rate = 1.0
    local_server.faults.error_statuses = (500,)
    config = config_for(
        local_server,
        http={"retry_on_status_codes": (503,)},  # so the 500s count as permanent
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    await client.initialize()
    for _ in range(3):
        async with client.create_agent_instance(AGENT_VERSION) as instance:
            await instance.start()
            async with instance.span("agent:llm"):
                pass
            span_id = await instance.create_span("agent:tool")
            await instance.finish_span(span_id, {"result": 1})
            await client.flush(5)  # failures have happened by now
    await client.close()  # no latched error surfaces here either
    assert client.stats().failed > 0


def test_sync_calls_never_block_on_a_slow_server(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 1_000
    client = PrefactorCoreClient(config_for(local_server, termination_poll_interval=None))
    tracer = client.tracer
    started = time.perf_counter()
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    for _ in range(100):
        span_id = tracer.create_span(instance_id, "agent:step")
        tracer.finish_span(span_id)
    tracer.finish_instance(instance_id)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.2f} s with a 1 s server"  # generous bound
    local_server.faults.latency_ms = 0
    assert tracer.flush(30)
    tracer.close()


async def test_finished_spans_are_forgotten(core_client: PrefactorCoreClient) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    tracer = core_client.tracer
    for _ in range(100):  # 200 finished spans
        async with instance.span("agent:step"):
            pass
        span_id = await instance.create_span("agent:other")
        await instance.finish_span(span_id)
    assert tracer.open_span_count == 0
    assert core_client._spans.get_span(span_id) is None
    await instance.finish()
    assert tracer.open_instance_count == 0
    assert await core_client.flush(20)


async def test_span_ids_never_change(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    async with instance.span("agent:llm") as span:
        before = span.id
        await span.start()
        child = await instance.create_span("agent:child")
        await instance.finish_span(child)
    assert span.id == before
    await instance.finish()
    assert await core_client.flush(10)
    stored = spans_by_id(local_server, instance.id)
    assert set(stored) == {before, child}
    assert stored[child]["parent_span_id"] == before


async def test_exhausted_transient_failures_are_counted(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="prefactor_core")
    config = PrefactorCoreConfig(
        http_config=http_config(unreachable_url(), "token"),
        queue_config=QueueConfig(retry_budget=0.3),
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    instance_id = client.tracer.start_instance(agent_version=AGENT_VERSION)
    client.tracer.finish_instance(instance_id)
    assert not await client.flush(10)
    stats = client.stats()
    assert stats.failed == 3 and stats.pending == 0  # register, and what depended on it
    assert stats.retried > 3  # retried until the budget ran out
    assert stats.health == "degraded" and "ConnectionRefused" in (stats.last_error or "")
    assert "REGISTER_AGENT_INSTANCE operation given up after its retry budget of 0.3 s" in (
        caplog.text
    )
    await client.close()


async def test_instance_finish_cancels_its_open_spans(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    outer = await instance.create_span("agent:outer")
    inner = await instance.create_span("agent:inner")
    await instance.finish("failed")
    await instance.finish_span(inner)  # late: ignored
    assert await core_client.flush(10)
    stored = spans_by_id(local_server, instance.id)
    assert stored[outer]["status"] == stored[inner]["status"] == "cancelled"
    row = local_server.store.get_instance(instance.id)
    assert row is not None and row["status"] == "failed"


async def test_concurrent_initialize_is_refused_cleanly(core_config: Any) -> None:
    client = PrefactorCoreClient(core_config)
    results = await asyncio.gather(client.initialize(), client.initialize(), return_exceptions=True)
    assert results.count(None) == 1
    assert sum(isinstance(r, ClientAlreadyInitializedError) for r in results) == 1
    await client.close()
    assert not client.initialized


async def test_finishing_an_instance_keeps_other_instances_termination_state(
    local_server: LocalServer,
) -> None:
    async with PrefactorCoreClient(config_for(local_server)) as client:
        first = await client.create_agent_instance(AGENT_VERSION)
        second = await client.create_agent_instance(AGENT_VERSION)
        await first.start()
        await second.start()
        assert await client.flush(10)
        local_server.terminate(first.id, reason="r1")
        async with first.span("agent:step"):
            pass
        assert await client.flush(10)
        assert first.terminated
        await second.finish()
        assert await client.flush(10)
        assert first.terminated and first.termination_reason == "r1"
        assert not second.terminated
        await first.finish()


async def test_retry_settings_are_used(local_server: LocalServer) -> None:
    local_server.faults.error_rate = 1.0
    local_server.faults.error_statuses = (503,)
    config = config_for(
        local_server,
        http={"initial_retry_delay": 30.0, "max_retry_delay": 60.0},
        shutdown_timeout=0.2,
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    client.tracer.start_instance(agent_version=AGENT_VERSION)
    await asyncio.sleep(0.5)
    # One request carried the register and the start; both wait out the 30 s backoff.
    assert client.stats().retried == 2
    assert local_server.injected_faults["error"] == 1
    await client.close()


async def test_operation_idempotency_key_and_metadata_are_used(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    tracer = core_client.tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    for _ in range(2):
        tracer.submit(
            Operation(
                OperationType.RECORD_QUALITY,
                {"instance_id": instance_id, "name": "score", "payload": {"note": "private"}},
                utc_now(),
                idempotency_key="quality-key-0001",
                metadata={"policy": PayloadPolicy(capture_content=False)},
            )
        )
    tracer.finish_instance(instance_id)
    assert await core_client.flush(10)
    row = local_server.store.get_instance(instance_id)
    assert row is not None
    assert row["quality_payloads"] == {"score": {"note": "[7 chars]"}}
    assert row["replays"] >= 1  # the second one was answered as a replay of the first


async def test_finish_span_can_set_a_status(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    span_ids = {}
    for status in ("complete", "failed", "cancelled"):
        span_id = await core_client.create_span(instance.id, "agent:step")
        await core_client.finish_span(span_id, {"s": status}, status=status)
        span_ids[span_id] = status
    with pytest.raises(ValueError):
        await core_client.finish_span(span_id, status="terminated")
    await instance.finish()
    assert await core_client.flush(10)
    stored = spans_by_id(local_server, instance.id)
    assert {span_id: stored[span_id]["status"] for span_id in span_ids} == span_ids


async def test_create_agent_instance_works_without_a_schema_registry(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    assert core_client.config.schema_registry is None
    async with core_client.create_agent_instance(agent_version={"name": "no-registry"}) as one:
        await one.start()
    async with core_client.create_agent_instance(agent_version={"name": "no-registry"}) as two:
        await two.start()
    assert await core_client.flush(10)
    for instance in (one, two):
        row = local_server.store.get_instance(instance.id)
        assert row is not None and row["status"] == "complete"
    assert local_server.store.counts()["agent_schema_versions"] == 1
