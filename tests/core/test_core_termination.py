"""Termination by the platform: per instance, seen on responses and by polling."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from _core_support import AGENT_VERSION, config_for

from prefactor_core import PrefactorCoreClient, PrefactorTerminatedError
from prefactor_core.monitoring.termination_monitor import TerminationMonitor
from prefactor_local.server import LocalServer


def _wait_until(predicate: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_control_signal_on_span_create_marks_only_that_instance(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server, termination_poll_interval=None))
    tracer = client.tracer
    doomed = tracer.start_instance(agent_version=AGENT_VERSION)
    other = tracer.start_instance(agent_version=AGENT_VERSION)
    assert tracer.flush(10)
    reasons: list[str | None] = []
    tracer.on_termination(doomed, reasons.append)
    local_server.terminate(doomed, reason="policy violation")
    assert not tracer.is_terminated(doomed)  # polling is off: only a response can tell

    span_id = tracer.create_span(doomed, "agent:llm")
    assert tracer.flush(10)
    assert tracer.is_terminated(doomed)
    assert tracer.termination_reason(doomed) == "policy violation"
    assert reasons == ["policy violation"]
    assert not tracer.is_terminated(other)
    with pytest.raises(PrefactorTerminatedError, match="policy violation") as caught:
        tracer.raise_if_terminated(doomed)
    assert caught.value.reason == "policy violation"
    tracer.raise_if_terminated(other)

    tracer.finish_span(span_id)
    tracer.finish_instance(doomed)  # answered 409: already ended, which is fine
    tracer.finish_instance(other)
    assert tracer.flush(10)
    assert client.stats().failed == 0
    assert tracer.is_terminated(doomed)  # still reported after the finish
    tracer.close()


def test_termination_poll_detects_a_terminated_open_instance(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server, termination_poll_interval=1.0))
    tracer = client.tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    other = tracer.start_instance(agent_version=AGENT_VERSION)
    assert tracer.flush(10)
    fired = threading.Event()
    tracer.termination_monitor(instance_id).subscribe(lambda reason: fired.set())
    local_server.terminate(instance_id, reason="stopped by operator")
    assert fired.wait(10)
    assert tracer.termination_reason(instance_id) == "stopped by operator"
    assert not tracer.is_terminated(other)
    tracer.finish_instance(other)
    tracer.finish_instance(instance_id)
    tracer.close()


async def test_handle_reports_termination_and_adapters_can_raise(local_server: LocalServer) -> None:
    async with PrefactorCoreClient(config_for(local_server)) as client:
        instance = await client.create_agent_instance(AGENT_VERSION)
        await instance.start()
        assert await client.flush(10)
        event = instance.termination_monitor.get_termination_event()
        local_server.terminate(instance.id)
        async with instance.span("agent:llm"):
            pass
        await asyncio.wait_for(event.wait(), 10)
        assert instance.terminated
        assert instance.termination_reason is None
        with pytest.raises(PrefactorTerminatedError, match=r"terminated by Prefactor$"):
            instance.raise_if_terminated()
        await instance.finish()


def test_termination_monitor_is_per_instance_and_thread_safe() -> None:
    monitor = TerminationMonitor(instance_id="inst-1")
    calls: list[str | None] = []
    unsubscribe = monitor.subscribe(calls.append)
    monitor.subscribe(lambda reason: (_ for _ in ()).throw(RuntimeError("bad callback")))
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def race() -> None:
        barrier.wait()
        results.append(monitor.detect_termination("why"))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1  # marked once, whatever the race
    assert calls == ["why"]  # the failing callback did not stop the others
    assert monitor.is_terminated and monitor.wait(0)
    late: list[str | None] = []
    monitor.subscribe(late.append)
    assert late == ["why"]  # a late subscriber hears at once
    unsubscribe()
    monitor.reset()
    assert not monitor.is_terminated and monitor.termination_reason is None


async def test_termination_monitor_can_poll_by_itself() -> None:
    class Instance:
        status = "active"
        termination_reason: str | None = None

    instance = Instance()

    async def fetch(instance_id: str) -> Instance:
        return instance

    monitor = TerminationMonitor(fetch, poll_interval=0.01)
    monitor.sync("inst-1")
    event = monitor.get_termination_event()
    await asyncio.sleep(0.05)
    assert not monitor.is_terminated
    instance.status, instance.termination_reason = "terminated", "quota"
    await asyncio.wait_for(event.wait(), 5)
    assert monitor.termination_reason == "quota"
    monitor.destroy()
