"""Outages and bounds against the real local server: an outage that fits in the buffer loses
nothing; past the buffer whole newer runs are dropped, logged and counted; the byte budget
holds with large payloads while the server is down."""

from __future__ import annotations

import gc
import logging
import threading
import time
import tracemalloc
from typing import Any

import pytest
from _core_support import AGENT_VERSION, http_config, spans_by_id

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_core.tracer import Tracer
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer

SPANS_PER_RUN = 3


def _config(server: LocalServer, **policy: Any) -> PrefactorCoreConfig:
    return PrefactorCoreConfig(
        http_config=http_config(
            server.url, server.token, initial_retry_delay=0.05, max_retry_delay=0.5
        ),
        queue_config=QueueConfig(**{"retry_budget": 120.0, **policy}),
        termination_poll_interval=None,
    )


def _run(tracer: Tracer, payload: Any = None) -> tuple[str, list[str]]:
    """One agent run: a root span with two children, all finished, then the instance."""
    instance = tracer.start_instance(agent_version=AGENT_VERSION)
    root = tracer.create_span(instance, "agent:run", payload=payload)
    children = []
    for step in range(SPANS_PER_RUN - 1):
        child = tracer.create_span(instance, "agent:step", parent_span_id=root, payload=payload)
        tracer.finish_span(child, result_payload={"step": step})
        children.append(child)
    tracer.finish_span(root)
    tracer.finish_instance(instance)
    return instance, [root, *children]


def _assert_whole(server: LocalServer, runs: list[tuple[str, list[str]]]) -> None:
    for instance, spans in runs:
        row = server.store.get_instance(instance)
        assert row is not None and row["status"] == "complete", (instance, row)
        stored = spans_by_id(server, instance)
        assert set(stored) == set(spans)
        assert all(span["status"] == "complete" for span in stored.values())


@pytest.mark.parametrize("outage", ["connection refused", "503 to everything"])
def test_an_outage_that_fits_in_the_buffer_loses_nothing(
    local_server: LocalServer, outage: str
) -> None:
    client = PrefactorCoreClient(_config(local_server))
    tracer = client.tracer
    runs: list[tuple[str, list[str]]] = []
    stop = threading.Event()

    def produce() -> None:  # 10 runs a second, through the outage and after it
        while not stop.is_set():
            runs.append(_run(tracer))
            time.sleep(0.1)

    _run(tracer)
    assert tracer.flush(10)  # the bulk endpoint is verified before the outage
    producer = threading.Thread(target=produce)
    if outage == "connection refused":
        producer.start()
        local_server.restart(downtime=4.0)
    else:
        local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,))
        producer.start()
        time.sleep(4.0)
        local_server.faults = FaultConfig()
    time.sleep(0.5)
    stop.set()
    producer.join()
    assert tracer.flush(60)
    stats = client.stats()
    tracer.close(timeout=5)

    assert len(runs) >= 35
    assert stats.failed == 0 and stats.dropped == 0, stats
    assert stats.retried > 0
    _assert_whole(local_server, runs)


def test_past_the_buffer_whole_newer_runs_are_dropped_logged_and_counted(
    local_server: LocalServer, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="prefactor_core.export")
    local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,))
    client = PrefactorCoreClient(_config(local_server, max_buffered_operations=100))
    tracer = client.tracer
    runs = [_run(tracer) for _ in range(30)]  # 9 operations each: three times the buffer
    stats = client.stats()
    local_server.faults = FaultConfig()
    assert tracer.flush(30)
    after = client.stats()
    tracer.close(timeout=5)

    stored = [run for run in runs if local_server.store.get_instance(run[0]) is not None]
    assert 0 < len(stored) < len(runs)
    assert stats.dropped_runs == len(runs) - len(stored)
    assert stats.dropped == stats.dropped_runs * 9  # every operation of a refused run
    assert after.failed == 0
    assert stored == runs[: len(stored)]  # the newer runs are the ones dropped
    _assert_whole(local_server, stored)
    warnings = [r.getMessage() for r in caplog.records if "dropped telemetry" in r.message]
    assert warnings and "runs refused while the buffer is full" in warnings[0]


def test_the_byte_budget_holds_while_the_server_is_down(local_server: LocalServer) -> None:
    budget = 2_000_000
    local_server.faults = FaultConfig(error_rate=1.0, error_statuses=(503,))
    client = PrefactorCoreClient(
        _config(local_server, max_buffered_bytes=budget, bulk_max_bytes=256 * 1024)
    )
    tracer = client.tracer
    _run(tracer)  # warm up: imports and connections are not what is measured
    gc.collect()
    tracemalloc.start(30)
    runs = []
    for index in range(40):  # about 40 * 3 * 90 KB = 11 MB of payloads
        payload = {f"part{n}": f"{index}-{n}-" + "x" * 9_000 for n in range(10)}
        runs.append(_run(tracer, payload))
        del payload
    time.sleep(0.5)  # every operation is taken in and prepared while the server is down
    gc.collect()
    # What this process holds for the agent, less what the in-process test server keeps.
    ours = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, "*/prefactor_local/*", all_frames=True)]
    )
    retained = sum(stat.size for stat in ours.statistics("filename"))
    tracemalloc.stop()
    pipe = tracer._export.pipe
    assert pipe is not None
    held = pipe.bytes
    stats = client.stats()
    local_server.faults = FaultConfig()
    assert tracer.flush(30)
    tracer.close(timeout=5)

    assert held <= budget * 1.1, held
    # The prepared bytes, the bodies of the requests being retried, and little else.
    assert retained < budget * 1.5, retained
    assert stats.dropped_runs > 0 or stats.truncated > 0, stats
    stored = [run for run in runs if local_server.store.get_instance(run[0]) is not None]
    assert stored
    _assert_whole(local_server, stored)
