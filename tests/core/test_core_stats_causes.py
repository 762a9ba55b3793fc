"""``stats()`` keeps the causes of loss apart: operations dropped by a full buffer, operations
the API refused, and operations skipped because one they depend on was lost."""

from __future__ import annotations

import logging

import pytest
from _core_support import AGENT_VERSION, http_config

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_core.tracer import Tracer
from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


def _run(tracer: Tracer, steps: int) -> str:
    instance = tracer.start_instance(agent_version=AGENT_VERSION)
    root = tracer.create_span(instance, "agent:run")
    children = [
        tracer.create_span(instance, "agent:step", parent_span_id=root) for _ in range(steps)
    ]
    for child in children:
        tracer.finish_span(child)
    tracer.finish_span(root)
    tracer.finish_instance(instance)
    return instance


def test_dropped_failed_and_skipped_are_counted_apart(
    local_server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    config = PrefactorCoreConfig(
        http_config=http_config(local_server.url, local_server.token),
        # One request per operation, gathered until flush(): the buffer fills deterministically.
        queue_config=QueueConfig(
            max_buffered_operations=6, drop_policy="drop_newest", linger=60, bulk_max_items=0
        ),
        termination_poll_interval=None,
    )
    client = PrefactorCoreClient(config)
    tracer = client.tracer

    # The API refuses this run's register for good: the rest of the run cannot be sent.
    local_server.faults = FaultConfig(
        error_rate=1.0,
        error_statuses=(400,),
        path_prefix="/api/v1/agent_instance/register",
        max_faults=1,
    )
    refused = _run(tracer, steps=0)
    assert not tracer.flush(10)
    first = client.stats()
    assert (first.failed, first.skipped, first.dropped) == (1, first.queued - 1, 0), first
    assert first.skipped > 0

    # A run larger than the buffer: what does not fit is dropped, nothing fails because of it.
    kept = _run(tracer, steps=5)
    assert tracer.flush(10)
    second = client.stats()
    tracer.close()
    assert second.dropped > 0
    assert (second.failed, second.skipped) == (1, first.skipped), second
    assert second.sent == second.queued - second.failed - second.skipped
    assert local_server.store.get_instance(refused) is None
    stored = local_server.store.get_instance(kept)
    assert stored is not None and stored["span_counts"]["total"] > 0
