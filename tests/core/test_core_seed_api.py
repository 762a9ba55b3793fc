"""The seed's async API, end to end against the local server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _core_support import AGENT_VERSION, spans_by_id

from prefactor_core import (
    AgentInstanceHandle,
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    PrefactorCoreClient,
    SchemaRegistry,
    SpanNotFoundError,
)
from prefactor_core.managers.agent_instance import AgentInstanceManager
from prefactor_local.server import LocalServer


async def test_seed_example_runs_as_written_and_is_stored(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    async with core_client.create_agent_instance(agent_version=AGENT_VERSION) as instance:
        await instance.start()

        async with instance.span("agent:llm") as span:
            span.set_payload({"model": "gpt-4"})
            # ... do work ...

        await instance.finish()

    assert await core_client.flush(10)
    stored = local_server.store.get_instance(instance.id)
    assert stored is not None
    assert stored["status"] == "complete"
    assert stored["started_at"] is not None and stored["finished_at"] is not None
    spans = local_server.store.list_spans(instance.id)
    assert [(s["schema_name"], s["status"], s["payload"]) for s in spans] == [
        ("agent:llm", "complete", {"model": "gpt-4"})
    ]
    assert spans[0]["parent_span_id"] is None
    assert core_client.stats().failed == 0


async def test_create_agent_instance_can_be_awaited(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(
        AGENT_VERSION, purpose="eval", external_identifier="run-42"
    )
    assert isinstance(instance, AgentInstanceHandle)
    await instance.start()
    span_id = await instance.create_span("agent:step", payload={"n": 1})
    await instance.finish_span(span_id, {"ok": True}, status="failed")
    await instance.finish("cancelled")
    assert await core_client.flush(10)
    stored = local_server.store.get_instance(instance.id)
    assert stored is not None
    assert (stored["status"], stored["purpose"], stored["external_identifier"]) == (
        "cancelled",
        "eval",
        "run-42",
    )
    span = spans_by_id(local_server, instance.id)[span_id]
    assert (span["status"], span["payload"], span["result_payload"]) == (
        "failed",
        {"n": 1},
        {"ok": True},
    )


async def test_async_with_finishes_the_instance_failed_when_the_body_raises(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with core_client.create_agent_instance(AGENT_VERSION) as instance:
            await instance.start()
            raise RuntimeError("boom")
    async with core_client.create_agent_instance(AGENT_VERSION) as quiet:
        await quiet.start()
    assert await core_client.flush(10)
    failed = local_server.store.get_instance(instance.id)
    completed = local_server.store.get_instance(quiet.id)
    assert failed is not None and failed["status"] == "failed"
    assert completed is not None and completed["status"] == "complete"


async def test_async_with_finish_starts_an_instance_that_was_never_started(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    async with core_client.create_agent_instance(AGENT_VERSION) as instance:
        pass
    assert await core_client.flush(10)
    stored = local_server.store.get_instance(instance.id)
    assert stored is not None
    assert stored["status"] == "complete" and stored["started_at"] is not None


async def test_instance_id_is_forwarded_and_honoured(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    async with core_client.create_agent_instance(
        AGENT_VERSION, instance_id="my-own-instance-id"
    ) as instance:
        await instance.start()
    assert instance.id == "my-own-instance-id"
    assert await core_client.flush(10)
    stored = local_server.store.get_instance("my-own-instance-id")
    assert stored is not None and stored["status"] == "complete"


async def test_exception_in_span_is_recorded_failed(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    class AgentError(Exception):
        pass

    error = AgentError("the tool broke")
    async with core_client.create_agent_instance(AGENT_VERSION) as instance:
        await instance.start()
        with pytest.raises(AgentError) as caught:
            async with instance.span("agent:tool", payload={"tool": "search"}) as span:
                span.set_result({"partial": 1})
                raise error
        assert caught.value is error  # propagated unchanged
    assert await core_client.flush(10)
    [stored] = local_server.store.list_spans(instance.id)
    assert stored["status"] == "failed"
    result = stored["result_payload"]
    assert result["partial"] == 1
    assert result["error_type"] == "AgentError"
    assert result["message"] == "the tool broke"
    assert "raise error" in result["stacktrace"]


async def test_cancellation_inside_a_span_is_recorded_cancelled(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    entered = asyncio.Event()

    async def work() -> None:
        async with instance.span("agent:long"):
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(work())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await instance.finish()
    assert await core_client.flush(10)
    [stored] = local_server.store.list_spans(instance.id)
    assert stored["status"] == "cancelled"
    assert stored["result_payload"]["error_type"] == "CancelledError"


async def test_span_context_complete_fail_and_cancel(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    async with instance.span("a") as first:
        await first.complete({"answer": 42})
        await first.fail()  # already finished: no effect
    async with instance.span("b") as second:
        await second.fail({"why": "bad input"})
    async with instance.span("c") as third:
        await third.cancel()
    await instance.finish()
    assert await core_client.flush(10)
    stored = {s["schema_name"]: s for s in local_server.store.list_spans(instance.id)}
    assert (stored["a"]["status"], stored["a"]["result_payload"]) == ("complete", {"answer": 42})
    assert (stored["b"]["status"], stored["b"]["result_payload"]) == (
        "failed",
        {"why": "bad input"},
    )
    assert stored["c"]["status"] == "cancelled"


async def test_nested_spans_take_the_enclosing_span_as_parent(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    async with instance.span("agent:run") as run:
        async with instance.span("agent:llm") as llm:
            pass
        step = await instance.create_span("agent:step")
        inner = await instance.create_span("agent:inner")
        await instance.finish_span(inner)
        await instance.finish_span(step)
        explicit = await instance.create_span("agent:explicit", parent_span_id=llm.id)
        await instance.finish_span(explicit)
    await instance.finish()
    assert await core_client.flush(10)
    stored = spans_by_id(local_server, instance.id)
    assert stored[run.id]["parent_span_id"] is None
    assert stored[llm.id]["parent_span_id"] == run.id
    assert stored[step]["parent_span_id"] == run.id
    assert stored[inner]["parent_span_id"] == step
    assert stored[explicit]["parent_span_id"] == llm.id


async def test_set_payload_after_a_child_was_created_keeps_the_sent_payload(
    core_client: PrefactorCoreClient, local_server: LocalServer, caplog: Any
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    async with instance.span("outer", payload={"a": 1}) as outer:
        outer.set_payload({"b": 2})
        async with instance.span("inner"):
            pass
        outer.set_payload({"c": 3})  # too late: the create went out with the child
    await instance.finish()
    assert await core_client.flush(10)
    stored = spans_by_id(local_server, instance.id)[outer.id]
    assert stored["payload"] == {"a": 1, "b": 2}
    assert "already sent" in caplog.text


async def test_record_quality_is_stored(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    await instance.record_quality("accuracy", {"score": 0.9})
    await core_client.record_quality(instance.id, "latency", {"ms": 12})
    await instance.finish()
    assert await core_client.flush(10)
    stored = local_server.store.get_instance(instance.id)
    assert stored is not None
    assert stored["quality_payloads"] == {"accuracy": {"score": 0.9}, "latency": {"ms": 12}}


async def test_argument_errors_raise_at_the_boundary(core_client: PrefactorCoreClient) -> None:
    instance = await core_client.create_agent_instance(AGENT_VERSION)
    span_id = await instance.create_span("x")
    with pytest.raises(ValueError, match="status"):
        await instance.finish_span(span_id, status="done")  # type: ignore[arg-type]
    with pytest.raises(SpanNotFoundError):
        await instance.finish_span("never-issued-span-id")
    with pytest.raises(ValueError, match="status"):
        await instance.finish("succeeded")  # type: ignore[arg-type]
    await instance.finish_span(span_id)
    await instance.finish_span(span_id)  # already finished: ignored, not an error


async def test_client_must_be_initialized_once(core_config: Any) -> None:
    client = PrefactorCoreClient(core_config)
    with pytest.raises(ClientNotInitializedError):
        client.create_agent_instance(AGENT_VERSION)
    await client.initialize()
    with pytest.raises(ClientAlreadyInitializedError):
        await client.initialize()
    await client.close()


async def test_manager_register_awaits_the_api_and_forwards_instance_id(
    core_client: PrefactorCoreClient, local_server: LocalServer
) -> None:
    manager = core_client.instance_manager
    assert isinstance(manager, AgentInstanceManager)
    instance_id = await manager.register(
        agent_id="agent-one",
        agent_version=AGENT_VERSION,
        agent_schema_version={"external_identifier": "schema-1"},
        instance_id="forwarded-id",
    )
    assert instance_id == "forwarded-id"
    stored = local_server.store.get_instance(instance_id)  # stored before register returned
    assert stored is not None and stored["status"] == "pending"
    assert stored["agent_id"] == "agent-one"
    generated = await manager.register(
        "agent-one", AGENT_VERSION, {"external_identifier": "schema-1"}
    )
    assert local_server.store.get_instance(generated) is not None

    await manager.start_with_idempotency_key(instance_id, "start-key-0001")
    await manager.start_with_idempotency_key(instance_id, "start-key-0001")
    await manager.finish_with_idempotency_key(instance_id, "finish-key-001", status="failed")
    await manager.start(generated)
    await manager.finish(generated)
    assert await core_client.flush(10)
    first = local_server.store.get_instance(instance_id)
    second = local_server.store.get_instance(generated)
    assert first is not None and second is not None
    assert first["status"] == "failed"
    assert first["replays"] >= 1  # the repeated start was a replay, not a second start
    assert second["status"] == "complete"
    assert core_client.stats().failed == 0


async def test_schema_registry_version_is_the_same_on_every_run(
    core_config: Any, local_server: LocalServer
) -> None:
    for _ in range(2):
        registry = SchemaRegistry()
        registry.register_type("agent:llm", {"type": "object"}, {"type": "object"}, title="LLM")
        core_config.schema_registry = registry
        async with (
            PrefactorCoreClient(core_config) as client,
            client.create_agent_instance(AGENT_VERSION) as instance,
        ):
            await instance.start()
    assert local_server.store.counts()["agent_schema_versions"] == 1
    assert local_server.store.counts()["agent_instances"] == 2


@pytest.mark.parametrize("stop", [SystemExit(0), KeyboardInterrupt()], ids=type)
async def test_a_clean_shutdown_inside_a_span_and_an_instance_is_recorded_cancelled(
    core_client: PrefactorCoreClient, local_server: LocalServer, stop: BaseException
) -> None:
    with pytest.raises(type(stop)):
        async with (
            core_client.create_agent_instance(agent_version=AGENT_VERSION) as instance,
            instance.span("agent:step"),
        ):
            raise stop
    assert await core_client.flush(10)
    [stored] = local_server.store.list_spans(instance.id)
    assert stored["status"] == "cancelled"
    assert stored["result_payload"]["error_type"] == type(stop).__name__
    row = local_server.store.get_instance(instance.id)
    assert row is not None and row["status"] == "cancelled"
