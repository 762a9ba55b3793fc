"""Self-contained pieces: ids, the queue and executor, the schema registry, the context stack,
and the published names and module paths."""

from __future__ import annotations

import asyncio
import importlib
import threading

import pytest

from prefactor_core import (
    InMemoryQueue,
    QueueClosedError,
    SchemaRegistry,
    SpanContextStack,
    TaskExecutor,
    generate_idempotency_key,
    validate_idempotency_key,
)
from prefactor_core.ids import is_pfid, issued_here, new_pfid, pfid_partition
from prefactor_local.pfid import is_pfid as server_accepts_pfid
from prefactor_local.pfid import pfid_partition as server_partition


def test_pfids_are_well_formed_and_recognised() -> None:
    ids = {new_pfid() for _ in range(2_000)}
    assert len(ids) == 2_000
    sample = next(iter(ids))
    assert len(sample) == 32 and sample == sample.lower()
    assert is_pfid(sample) and server_accepts_pfid(sample)
    span = new_pfid(pfid_partition(sample))
    assert pfid_partition(span) == pfid_partition(sample) == server_partition(sample)
    assert issued_here(sample)
    assert not issued_here("not-a-pfid") and not is_pfid("x" * 32)
    forged = sample[:-4] + ("0000" if sample[-4:] != "0000" else "1111")
    assert not issued_here(forged)


def test_idempotency_key_helpers() -> None:
    key = generate_idempotency_key()
    assert len(key) == 36 and validate_idempotency_key(key) == key
    with pytest.raises(ValueError, match="empty"):
        validate_idempotency_key("")
    with pytest.raises(ValueError, match="64"):
        validate_idempotency_key("k" * 65)


def test_in_memory_queue_is_bounded_and_thread_safe() -> None:
    queue: InMemoryQueue[int] = InMemoryQueue(maxsize=1_000, reserve=10)
    barrier = threading.Barrier(8)
    accepted = [0] * 8

    def producer(index: int) -> None:
        barrier.wait()
        for value in range(500):
            if queue.put_nowait(index * 1_000 + value):
                accepted[index] += 1

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(accepted) == queue.accepted == 1_000
    assert queue.dropped == 3_000
    assert queue.size() == queue.unfinished == 1_000
    assert queue.put_nowait(-1, essential=True)  # the reserve
    items = queue.drain()
    assert len(items) == len(set(items)) == 1_001
    assert not queue.put_nowait(-2)  # still unfinished: the bound holds
    assert not queue.join(0.01)
    queue.task_done(1_001)
    assert queue.join(0) and queue.put_nowait(-3)


async def test_in_memory_queue_wakes_async_getters_from_other_threads() -> None:
    queue: InMemoryQueue[str] = InMemoryQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    threading.Thread(target=queue.put_nowait, args=("hello",)).start()
    assert await asyncio.wait_for(getter, 5) == "hello"
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    queue.close()
    with pytest.raises(QueueClosedError):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(QueueClosedError):
        await queue.put("late")


async def test_task_executor_retries_and_drains_on_stop() -> None:
    queue: InMemoryQueue[int] = InMemoryQueue()
    done: list[int] = []
    attempts: dict[int, int] = {}

    async def handler(item: int) -> None:
        attempts[item] = attempts.get(item, 0) + 1
        if item % 5 == 0 and attempts[item] < 3:
            raise ConnectionError("flaky")
        if item == 7:
            raise ValueError("permanent")
        await asyncio.sleep(0.001)
        done.append(item)

    executor: TaskExecutor[int] = TaskExecutor(
        queue,
        handler,
        2,
        3,
        is_retryable=lambda exc: isinstance(exc, ConnectionError),
        retry_delay_base=0.01,
    )
    executor.start()
    for item in range(20):
        await queue.put(item)
    assert await executor.stop(timeout=10)
    assert sorted(done) == [i for i in range(20) if i != 7]
    assert attempts[7] == 1 and attempts[5] == 3
    assert (executor.processed, executor.failed, executor.retried) == (19, 1, 8)


def test_schema_registry_published_api() -> None:
    registry = SchemaRegistry()
    registry.register("agent:llm", {"type": "object"})
    registry.register_result("agent:llm", {"type": "object", "title": "result"})
    registry.register_type("agent:tool", {"type": "object"}, title="Tool", template=None)
    registry.register_quality_schema("accuracy", {"type": "number"}, description="How right")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("agent:llm", {})
    with pytest.raises(ValueError, match="already registered"):
        registry.register_type("agent:tool", {})
    with pytest.raises(ValueError, match="already registered"):
        registry.register_quality_schema("accuracy", {})
    registry.register_unsafe("agent:llm", {"type": "object", "v": 2})
    assert registry.get("agent:llm") == {"type": "object", "v": 2}
    assert registry.list_schemas() == ["agent:llm"]
    assert registry.has_schema("agent:tool") and not registry.has_schema("nope")
    version = registry.to_agent_schema_version()
    assert version["external_identifier"].startswith("sha256:")
    assert version["span_type_schemas"] == [
        {"name": "agent:tool", "params_schema": {"type": "object"}, "title": "Tool"}
    ]
    assert version["quality_schemas"] == [
        {"name": "accuracy", "schema": {"type": "number"}, "description": "How right"}
    ]
    assert registry.to_agent_schema_version("fixed")["external_identifier"] == "fixed"

    same = SchemaRegistry()
    same.register_unsafe("agent:llm", {"v": 2, "type": "object"})
    same.register_result("agent:llm", {"title": "result", "type": "object"})
    same.register_type("agent:tool", {"type": "object"}, title="Tool")
    same.register_quality_schema("accuracy", {"type": "number"}, description="How right")
    assert same.to_agent_schema_version() == version  # content hash: same schemas, same id

    other = SchemaRegistry()
    other.register_type("agent:tool", {"type": "string"})
    with pytest.raises(ValueError, match=r"span_type_schemas/agent:tool"):
        registry.merge(other)
    extra = SchemaRegistry()
    extra.register_type("agent:retriever", {"type": "object"})
    registry.merge(extra)
    assert registry.has_span_type("agent:retriever")
    assert SchemaRegistry().to_agent_schema_version() == {
        "external_identifier": SchemaRegistry().content_hash()
    }


async def test_context_stack_is_per_task() -> None:
    SpanContextStack.push("root")

    async def task(name: str) -> list[str]:
        SpanContextStack.push(name)
        await asyncio.sleep(0.01)
        seen = SpanContextStack.get_stack()
        assert SpanContextStack.pop() == name
        return seen

    first, second = await asyncio.gather(task("a"), task("b"))
    assert (first, second) == (["root", "a"], ["root", "b"])
    assert SpanContextStack.peek() == "root" and SpanContextStack.depth() == 1
    SpanContextStack.push("x")
    SpanContextStack.push("y")
    assert SpanContextStack.remove("x") and SpanContextStack.get_stack() == ["root", "y"]
    SpanContextStack.clear()
    assert SpanContextStack.is_empty() and SpanContextStack.pop() is None


def test_published_names_and_module_paths() -> None:
    for module in (
        "client",
        "config",
        "context_stack",
        "exceptions",
        "models",
        "operations",
        "schema_registry",
        "span_context",
        "utils",
        "_version",
        "queue.base",
        "queue.memory",
        "queue.executor",
        "managers.agent_instance",
        "managers.span",
        "monitoring.termination_monitor",
        "tracer",
        "payloads",
    ):
        importlib.import_module(f"prefactor_core.{module}")
    import prefactor_core
    from prefactor_core.managers import AgentInstanceManager  # noqa: F401
    from prefactor_core.monitoring import TerminationMonitor  # noqa: F401

    # The published names are checked one by one in test_core_published_compat.py.
    for name in [
        "Tracer",
        "PayloadPolicy",
        "flush_all",
    ]:
        assert hasattr(prefactor_core, name), name
    error = prefactor_core.OperationError("failed", "CREATE_SPAN")
    assert error.operation_type == "CREATE_SPAN"
    environment = prefactor_core.build_runtime_environment(["prefactor-langchain@1.0"])
    assert environment["agent_sdk"] == ["prefactor-langchain@1.0"]
