"""Code written for the published prefactor-core 0.5 keeps working: its names, its queue,
executor, schema registry and termination monitor behave as they did there."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections import deque
from typing import Any

import pytest

from prefactor_core import (
    InMemoryQueue,
    Queue,
    QueueClosedError,
    SchemaRegistry,
    TaskExecutor,
    build_runtime_environment,
    warn_missing_adaptor_config,
)
from prefactor_core.monitoring import TerminationMonitor

# The public names of each module of the published prefactor-core 0.5.3 wheel.
PUBLISHED_NAMES: dict[str, list[str]] = {
    "prefactor_core": [
        "PrefactorCoreClient",
        "PrefactorCoreConfig",
        "QueueConfig",
        "SpanContext",
        "SpanContextStack",
        "PrefactorCoreError",
        "ClientNotInitializedError",
        "ClientAlreadyInitializedError",
        "OperationError",
        "InstanceNotFoundError",
        "SpanNotFoundError",
        "PrefactorTelemetryFailureError",
        "PrefactorTerminatedError",
        "AgentInstance",
        "Span",
        "Operation",
        "OperationType",
        "Queue",
        "QueueClosedError",
        "InMemoryQueue",
        "TaskExecutor",
        "AgentInstanceHandle",
        "build_runtime_environment",
        "SchemaRegistry",
        "generate_idempotency_key",
        "validate_idempotency_key",
        "warn_missing_adaptor_config",
        "__version__",
    ],
    "prefactor_core._version": ["PACKAGE_NAME", "PACKAGE_VERSION", "__version__"],
    "prefactor_core.client": ["PrefactorCoreClient"],
    "prefactor_core.config": ["QueueConfig", "PrefactorCoreConfig"],
    "prefactor_core.context_stack": ["SpanContextStack"],
    "prefactor_core.exceptions": [
        "PrefactorCoreError",
        "ClientNotInitializedError",
        "ClientAlreadyInitializedError",
        "OperationError",
        "InstanceNotFoundError",
        "SpanNotFoundError",
        "PrefactorTelemetryFailureError",
        "PrefactorTerminatedError",
    ],
    "prefactor_core.managers": ["AgentInstanceManager", "AgentInstanceHandle", "SpanManager"],
    "prefactor_core.managers.agent_instance": ["AgentInstanceManager", "AgentInstanceHandle"],
    "prefactor_core.managers.span": ["SpanManager"],
    "prefactor_core.models": ["AgentInstance", "Span"],
    "prefactor_core.monitoring": ["TerminationMonitor"],
    "prefactor_core.monitoring.termination_monitor": ["TerminationMonitor"],
    "prefactor_core.operations": ["OperationType", "Operation"],
    "prefactor_core.queue": ["Queue", "QueueClosedError", "InMemoryQueue", "TaskExecutor"],
    "prefactor_core.queue.base": ["Queue", "QueueClosedError"],
    "prefactor_core.queue.executor": ["TaskExecutor"],
    "prefactor_core.queue.memory": ["InMemoryQueue"],
    "prefactor_core.runtime": ["build_runtime_environment"],
    "prefactor_core.schema_registry": ["SchemaRegistry"],
    "prefactor_core.span_context": ["SpanContext"],
    "prefactor_core.utils": [
        "generate_idempotency_key",
        "validate_idempotency_key",
        "warn_missing_adaptor_config",
    ],
}

CASES = [(module, name) for module, names in PUBLISHED_NAMES.items() for name in names]


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}.{n}" for m, n in CASES])
def test_every_published_name_imports_from_its_published_module(module: str, name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from {module} import {name}", namespace)
    assert namespace[name] is getattr(importlib.import_module(module), name)


# -- schema registry ------------------------------------------------------------------------


def test_merge_refuses_a_quality_schema_both_registries_define() -> None:
    mine, theirs = SchemaRegistry(), SchemaRegistry()
    for registry in (mine, theirs):
        registry.register_quality_schema("accuracy", {"type": "number"})
    theirs.register_type("agent:tool", {"type": "object"})
    with pytest.raises(ValueError, match=r"quality_schemas/accuracy"):
        mine.merge(theirs)
    assert not mine.has_span_type("agent:tool"), "a refused merge changes nothing"


def test_merge_lists_every_conflict_at_once() -> None:
    mine, theirs = SchemaRegistry(), SchemaRegistry()
    for registry in (mine, theirs):
        registry.register("agent:llm", {"type": "object"})
        registry.register_result("agent:llm", {"type": "object"})
        registry.register_type("agent:tool", {"type": "object"})
    with pytest.raises(ValueError) as caught:
        mine.merge(theirs)
    message = str(caught.value)
    assert message.startswith("Cannot merge registries - conflicting schemas:")
    for conflict in (
        "span_schemas/agent:llm",
        "span_result_schemas/agent:llm",
        "span_type_schemas/agent:tool",
    ):
        assert conflict in message


def test_merge_copies_the_other_registry_in() -> None:
    mine, theirs = SchemaRegistry(), SchemaRegistry()
    mine.register_quality_schema("accuracy", {"type": "number"})
    theirs.register_quality_schema("tone", {"type": "string"})
    theirs.register_type("agent:tool", {"type": "object"}, title="Tool")
    mine.merge(theirs)
    version = mine.to_agent_schema_version("v1")
    assert [entry["name"] for entry in version["quality_schemas"]] == ["accuracy", "tone"]
    assert version["span_type_schemas"] == [
        {"name": "agent:tool", "params_schema": {"type": "object"}, "title": "Tool"}
    ]


# -- queue and executor ---------------------------------------------------------------------


async def test_closed_queue_refuses_puts_and_still_hands_out_what_it_holds() -> None:
    queue: InMemoryQueue[str] = InMemoryQueue()
    await queue.put("first")
    await queue.put("second")
    await queue.close()  # the published queue's close is awaited
    assert queue.closed
    with pytest.raises(QueueClosedError, match="Cannot put to closed queue"):
        await queue.put("late")
    assert [await queue.get(), await queue.get()] == ["first", "second"]
    with pytest.raises(QueueClosedError, match="Queue is closed and empty"):
        await queue.get()
    assert queue.size() == 0


async def test_close_without_await_closes_at_once() -> None:
    queue: InMemoryQueue[int] = InMemoryQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.close(num_waiters=1)
    assert queue.closed
    with pytest.raises(QueueClosedError):
        await asyncio.wait_for(waiter, 5)


async def test_executor_takes_num_workers_and_max_retries_positionally() -> None:
    queue: InMemoryQueue[int] = InMemoryQueue()

    async def handler(item: int) -> None:
        return None

    executor: TaskExecutor[int] = TaskExecutor(queue, handler, 1, 0)
    assert (executor._num_workers, executor._max_retries) == (1, 0)
    assert executor._queue is queue and executor._handler is handler
    assert (
        TaskExecutor(queue, handler)._num_workers,
        TaskExecutor(queue, handler)._max_retries,
    ) == (
        3,
        3,
    )


async def test_executor_with_no_retries_tries_a_failing_item_once() -> None:
    queue: InMemoryQueue[int] = InMemoryQueue()
    attempts: list[int] = []

    async def handler(item: int) -> None:
        attempts.append(item)
        raise ConnectionError("down")

    executor: TaskExecutor[int] = TaskExecutor(queue, handler, 1, 0)
    executor.start()
    await queue.put(1)
    await executor.stop()
    assert attempts == [1]
    assert executor.failed == 1


class PublishedStyleQueue(Queue[int]):
    """A user queue written for the published SDK: ``close`` is a coroutine."""

    def __init__(self) -> None:
        self.items: deque[int] = deque()
        self.wakeup = asyncio.Event()
        self._closed = False

    async def put(self, item: int) -> None:
        if self._closed:
            raise QueueClosedError("closed")
        self.items.append(item)
        self.wakeup.set()

    async def get(self) -> int:
        while not self.items:
            if self._closed:
                raise QueueClosedError("closed")
            self.wakeup.clear()
            await self.wakeup.wait()
        return self.items.popleft()

    def size(self) -> int:
        return len(self.items)

    async def close(self, num_waiters: int = 1) -> None:
        self._closed = True
        self.wakeup.set()

    @property
    def closed(self) -> bool:
        return self._closed


async def test_executor_stops_a_queue_whose_close_is_async() -> None:
    queue = PublishedStyleQueue()
    handled: list[int] = []

    async def handler(item: int) -> None:
        handled.append(item)

    executor: TaskExecutor[int] = TaskExecutor(queue, handler, 2, 0)
    executor.start()
    for item in range(5):
        await queue.put(item)
    assert await executor.stop(timeout=5)
    assert queue.closed and sorted(handled) == [0, 1, 2, 3, 4]
    assert not executor.running


# -- termination monitor --------------------------------------------------------------------


class FakeInstance:
    def __init__(self) -> None:
        self.status = "active"
        self.termination_reason: str | None = None


def polling_monitor(instance: FakeInstance, fetched: list[str]) -> TerminationMonitor:
    async def fetch(instance_id: str) -> FakeInstance:
        fetched.append(instance_id)
        return instance

    return TerminationMonitor(fetch, poll_interval=0.01)


async def test_sync_none_stops_the_poll() -> None:
    fetched: list[str] = []
    monitor = polling_monitor(FakeInstance(), fetched)
    monitor.sync("inst-1")
    task = monitor._poll_task
    assert task is not None
    await asyncio.sleep(0.05)
    assert fetched and set(fetched) == {"inst-1"}
    monitor.sync(None)
    await asyncio.sleep(0)
    assert task.cancelled() and monitor._poll_task is None
    count = len(fetched)
    await asyncio.sleep(0.05)
    assert len(fetched) == count


async def test_the_poll_stops_once_termination_is_detected() -> None:
    instance = FakeInstance()
    fetched: list[str] = []
    monitor = polling_monitor(instance, fetched)
    calls: list[str] = []
    monitor.subscribe(lambda: calls.append("published form"))
    monitor.subscribe(lambda reason: calls.append(f"reason={reason}"))
    monitor.sync("inst-1")
    task = monitor._poll_task
    assert task is not None
    event = monitor.get_termination_event()
    instance.status, instance.termination_reason = "terminated", "over budget"
    await asyncio.wait_for(event.wait(), 5)
    await asyncio.sleep(0)
    assert task.done() and monitor._poll_task is None
    assert monitor.termination_reason == "over budget"
    assert calls == ["published form", "reason=over budget"]
    count = len(fetched)
    monitor.sync("inst-1")  # the client's sync loop keeps calling: no new poll
    await asyncio.sleep(0.05)
    assert monitor._poll_task is None and len(fetched) == count


async def test_reset_cancels_the_poll_and_a_new_instance_can_be_terminated() -> None:
    instance = FakeInstance()
    fetched: list[str] = []
    monitor = polling_monitor(instance, fetched)
    calls: list[str | None] = []
    monitor.subscribe(calls.append)
    monitor.sync("inst-1")
    monitor.detect_termination("first")
    assert calls == ["first"]
    monitor.sync("inst-1")
    monitor.reset()
    assert monitor._poll_task is None and monitor.termination_reason is None
    assert not monitor.get_termination_event().is_set()
    monitor.sync("inst-2")
    task = monitor._poll_task
    assert task is not None
    event = monitor.get_termination_event()
    instance.status, instance.termination_reason = "terminated", "second"
    await asyncio.wait_for(event.wait(), 5)
    assert calls == ["first", "second"], "callbacks are kept across reset"
    assert "inst-2" in fetched
    monitor.reset()
    await asyncio.sleep(0)
    assert task.done()


async def test_reset_cancels_a_running_poll_task() -> None:
    fetched: list[str] = []
    monitor = polling_monitor(FakeInstance(), fetched)
    monitor.sync("inst-1")
    task = monitor._poll_task
    assert task is not None
    monitor.reset()
    await asyncio.sleep(0)
    assert task.cancelled()


def test_a_fence_blocks_detection_until_sync_names_an_instance() -> None:
    monitor = TerminationMonitor(lambda instance_id: None)  # type: ignore[arg-type,return-value]
    calls: list[str] = []
    monitor.subscribe(lambda: calls.append("fired"))
    monitor.reset()
    monitor.detect_termination("late signal of the finished run")
    assert not monitor.get_termination_event().is_set() and calls == []
    monitor.sync(None)
    monitor.detect_termination("still fenced")
    assert calls == []
    monitor.sync("inst-2")
    monitor.detect_termination("new run")
    assert monitor.get_termination_event().is_set()
    assert calls == ["fired"] and monitor.termination_reason == "new run"


def test_callbacks_fire_in_order_and_a_raising_one_does_not_stop_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = TerminationMonitor(lambda instance_id: None)  # type: ignore[arg-type,return-value]
    calls: list[int] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    monitor.subscribe(lambda: calls.append(1))
    monitor.subscribe(broken)
    monitor.subscribe(lambda: calls.append(3))
    unsubscribe = monitor.subscribe(lambda: calls.append(4))
    unsubscribe()
    with caplog.at_level(logging.WARNING, logger="prefactor_core.monitoring"):
        monitor.detect_termination("stop")
    assert calls == [1, 3]
    assert "termination callback raised" in caplog.text
    monitor.detect_termination("again")
    assert calls == [1, 3], "termination is signalled once"


def test_destroy_silences_the_monitor() -> None:
    monitor = TerminationMonitor(lambda instance_id: None)  # type: ignore[arg-type,return-value]
    calls: list[str] = []
    monitor.subscribe(lambda: calls.append("fired"))
    monitor.destroy()
    monitor.sync("inst-1")
    monitor.detect_termination("too late")
    assert calls == [] and not monitor.get_termination_event().is_set()


# -- helpers --------------------------------------------------------------------------------


def test_runtime_environment_takes_the_published_header_string() -> None:
    environment = build_runtime_environment("prefactor-langchain@0.3.0 prefactor-core@0.5.3")
    assert environment["agent_sdk"] == ["prefactor-langchain@0.3.0"]
    assert build_runtime_environment(None)["agent_sdk"] == []
    assert build_runtime_environment(["prefactor-langchain@0.3.0"]) == environment
    assert set(environment) == {"agent_sdk", "os", "prefactor_sdk", "runtime"}
    assert environment["os"] and environment["os"] == environment["os"].lower()


def test_warn_missing_adaptor_config_takes_the_published_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="prefactor_core"):
        warn_missing_adaptor_config(
            "inst-early", "compat-test adaptor", "CompatAdaptor.create_client(config)"
        )
        warn_missing_adaptor_config("inst-later", "compat-test adaptor", "ignored")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1, "warned once per adaptor"
    assert "inst-early" in messages[0] and "compat-test adaptor" in messages[0]
    assert "CompatAdaptor.create_client(config)" in messages[0]
