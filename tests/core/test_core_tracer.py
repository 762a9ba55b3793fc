"""The synchronous `Tracer`: no event loop, inside a running loop, and from many threads."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from _core_support import AGENT_VERSION, config_for, spans_by_id

from prefactor_core import PrefactorCoreClient, SpanContextStack, SpanNotFoundError
from prefactor_core.ids import is_pfid, issued_here, new_pfid, pfid_partition
from prefactor_core.tracer import Tracer
from prefactor_local.server import LocalServer


def _run_agent(tracer: Tracer, label: str) -> tuple[str, dict[str, str | None]]:
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    root = tracer.create_span(instance_id, "agent:run", payload={"label": label})
    llm = tracer.create_span(instance_id, "agent:llm", parent_span_id=root)
    tool = tracer.create_span(instance_id, "agent:tool", parent_span_id=llm)
    tracer.finish_span(tool, result_payload={"tool": label})
    tracer.finish_span(llm, status="failed", result_payload={"error": "x"})
    tracer.finish_span(root)
    tracer.finish_instance(instance_id)
    return instance_id, {root: None, llm: root, tool: llm}


def _check(server: LocalServer, instance_id: str, parents: dict[str, str | None]) -> None:
    stored = spans_by_id(server, instance_id)
    assert {span_id: span["parent_span_id"] for span_id, span in stored.items()} == parents
    row = server.store.get_instance(instance_id)
    assert row is not None and row["status"] == "complete"


def test_tracer_works_from_sync_code_without_an_event_loop(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server))  # never initialised
    tracer = client.tracer
    instance_id, parents = _run_agent(tracer, "sync")
    assert tracer.flush(10)
    _check(local_server, instance_id, parents)
    assert client.stats().failed == 0
    assert tracer.close() == 0


async def test_tracer_works_inside_a_running_loop(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server))
    instance_id, parents = _run_agent(client.tracer, "in-loop")
    assert await client.tracer.aflush(10)
    _check(local_server, instance_id, parents)
    await client.tracer.aclose()


def test_tracer_works_from_eight_threads_at_once(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server, num_workers=8))
    tracer = client.tracer
    barrier = threading.Barrier(8)

    def worker(index: int) -> list[tuple[str, dict[str, str | None]]]:
        barrier.wait()
        return [_run_agent(tracer, f"{index}-{n}") for n in range(5)]

    with ThreadPoolExecutor(8) as pool:
        runs = [run for batch in pool.map(worker, range(8)) for run in batch]
    assert tracer.flush(30)
    assert len({instance_id for instance_id, _ in runs}) == 40
    for instance_id, parents in runs:
        _check(local_server, instance_id, parents)
    stats = client.stats()
    assert (stats.failed, stats.dropped, stats.pending) == (0, 0, 0)
    assert stats.queued == 40 * 9  # register, start, 3 creates, 3 finishes, finish
    tracer.close()


def test_threads_do_not_share_parents(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server))
    tracer = client.tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    seen: dict[int, tuple[str, str]] = {}
    barrier = threading.Barrier(4)

    def worker(index: int) -> None:
        outer = tracer.create_span(instance_id, "outer")
        SpanContextStack.push(outer)
        barrier.wait()
        inner = tracer.create_span(instance_id, "inner")  # parent from this thread's context
        seen[index] = (outer, inner)
        tracer.finish_span(inner)
        tracer.finish_span(outer)
        SpanContextStack.pop()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tracer.finish_instance(instance_id)
    assert tracer.flush(10)
    stored = spans_by_id(local_server, instance_id)
    for outer, inner in seen.values():
        assert stored[inner]["parent_span_id"] == outer
    tracer.close()


async def test_parent_comes_from_the_current_task_context(local_server: LocalServer) -> None:
    async with PrefactorCoreClient(config_for(local_server)) as client:
        instance = await client.create_agent_instance(AGENT_VERSION)
        await instance.start()
        pairs: list[tuple[str, str]] = []

        async def task(index: int) -> None:
            async with instance.span("agent:task") as outer:
                await asyncio.sleep(0.01 * (index % 3))
                async with instance.span("agent:child") as child:
                    await asyncio.sleep(0)
                pairs.append((outer.id, child.id))

        await asyncio.gather(*(task(i) for i in range(10)))

        # A thread started from a task sees the task's current span.
        async with instance.span("agent:executor") as around:
            in_thread = await asyncio.to_thread(client.tracer.create_span, instance.id, "t")
            client.tracer.finish_span(in_thread)
        await instance.finish()
        assert await client.flush(10)
    stored = spans_by_id(local_server, instance.id)
    for outer, child in pairs:
        assert stored[outer]["parent_span_id"] is None
        assert stored[child]["parent_span_id"] == outer
    assert stored[in_thread]["parent_span_id"] == around.id


def test_stack_entries_of_other_instances_and_finished_spans_are_skipped(
    local_server: LocalServer,
) -> None:
    tracer = PrefactorCoreClient(config_for(local_server)).tracer
    first = tracer.start_instance(agent_version=AGENT_VERSION)
    second = tracer.start_instance(agent_version=AGENT_VERSION)

    def body() -> tuple[str, str, str]:
        outer = tracer.create_span(first, "outer")
        SpanContextStack.push(outer)
        finished = tracer.create_span(first, "finished")
        SpanContextStack.push(finished)
        tracer.finish_span(finished)  # stays on the stack, but is closed
        other = tracer.create_span(second, "other")
        SpanContextStack.push(other)
        child = tracer.create_span(first, "child")
        for span_id in (child, other, outer):
            tracer.finish_span(span_id)
        return outer, other, child

    outer, other, child = contextvars.copy_context().run(body)
    tracer.finish_instance(first)
    tracer.finish_instance(second)
    assert tracer.flush(10)
    assert spans_by_id(local_server, first)[child]["parent_span_id"] == outer
    assert spans_by_id(local_server, second)[other]["parent_span_id"] is None
    tracer.close()


def test_instance_of_resolves_open_spans_only(local_server: LocalServer) -> None:
    tracer = PrefactorCoreClient(config_for(local_server)).tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    span_id = tracer.create_span(instance_id, "x")
    assert tracer.instance_of(span_id) == instance_id
    tracer.finish_span(span_id)
    assert tracer.instance_of(span_id) is None
    assert tracer.instance_of("unknown") is None
    tracer.close()


def test_timestamps_are_taken_on_the_callers_side(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 300
    tracer = PrefactorCoreClient(config_for(local_server)).tracer
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    began = datetime.now(timezone.utc)
    span_id = tracer.create_span(instance_id, "agent:llm")
    time.sleep(0.2)
    tracer.finish_span(span_id)
    naive_start = datetime(2030, 1, 2, 3, 4, 5)  # naive: taken as UTC
    explicit = tracer.create_span(instance_id, "agent:explicit", started_at=naive_start)
    tracer.finish_span(explicit, finished_at=naive_start + timedelta(seconds=3))
    tracer.finish_instance(instance_id)
    assert tracer.flush(30)
    stored = spans_by_id(local_server, instance_id)

    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    started = parse(stored[span_id]["started_at"])
    finished = parse(stored[span_id]["finished_at"])
    assert abs((started - began).total_seconds()) < 0.1
    assert 0.15 < (finished - started).total_seconds() < 2.0
    assert parse(stored[explicit]["started_at"]) == naive_start.replace(tzinfo=timezone.utc)
    assert (parse(stored[explicit]["finished_at"]) - parse(stored[explicit]["started_at"])) == (
        timedelta(seconds=3)
    )
    tracer.close()


def test_tracer_rejects_bad_arguments(local_server: LocalServer) -> None:
    tracer = PrefactorCoreClient(config_for(local_server)).tracer
    with pytest.raises(TypeError):
        tracer.start_instance(agent_version="v1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="purpose"):
        tracer.start_instance(agent_version=AGENT_VERSION, purpose="prod")
    instance_id = tracer.start_instance(agent_version=AGENT_VERSION)
    with pytest.raises(ValueError, match="schema_name"):
        tracer.create_span(instance_id, "")
    span_id = tracer.create_span(instance_id, "ok")
    with pytest.raises(ValueError, match="status"):
        tracer.finish_span(span_id, status="ok")
    with pytest.raises(SpanNotFoundError):
        tracer.finish_span("0" * 32)
    with pytest.raises(ValueError, match="status"):
        tracer.finish_instance(instance_id, status="terminated")
    tracer.finish_instance(instance_id)
    assert tracer.flush(10)
    tracer.close()


async def test_spans_of_two_clients_nest_and_stay_in_order(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 20
    user = PrefactorCoreClient(config_for(local_server), sdk_header_entry="my-app@1.0")
    adapter = PrefactorCoreClient(config_for(local_server), sdk_header_entry="an-adapter@2.0")
    await user.initialize()
    instance = await user.create_agent_instance(AGENT_VERSION)
    await instance.start()
    async with instance.span("app:request") as outer:  # held back until it has a child
        # A framework adapter with its own client finds the instance and the parent:
        ambient = SpanContextStack.peek()
        assert ambient == outer.id
        assert adapter.tracer.instance_of(ambient) == instance.id
        inner = adapter.tracer.create_span(instance.id, "adapter:llm")
        adapter.tracer.finish_span(inner)
    await instance.finish()
    assert await user.flush(10) and await adapter.tracer.aflush(10)
    stored = spans_by_id(local_server, instance.id)
    assert stored[inner]["parent_span_id"] == outer.id
    assert user.stats().failed == adapter.stats().failed == 0
    assert adapter.stats().queued == 2
    await adapter.close()
    await user.close()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_first_use_set_up_happens_before_the_run_starts(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Attaching to the exporter is the first use's set-up: slow it down, and the stored run
    # must still start after it, so its waterfall does not begin with that set-up.
    from prefactor_core.export.thread import Exporter

    attach = Exporter.attach
    attached: list[datetime] = []

    def slow_attach(self: Exporter, *args: object, **kwargs: object) -> object:
        time.sleep(0.3)
        pipe = attach(self, *args, **kwargs)  # type: ignore[arg-type]
        attached.append(datetime.now(timezone.utc))
        return pipe

    monkeypatch.setattr(Exporter, "attach", slow_attach)
    tracer = PrefactorCoreClient(config_for(local_server)).tracer
    instance_id, parents = _run_agent(tracer, "first")
    assert tracer.flush(10)
    _check(local_server, instance_id, parents)
    row = local_server.store.get_instance(instance_id)
    assert row is not None and attached
    set_up_done = attached[0].replace(microsecond=attached[0].microsecond // 1000 * 1000)
    run_start = _parse(row["started_at"])
    assert run_start >= set_up_done
    spans = spans_by_id(local_server, instance_id)
    root = next(span for span in spans.values() if span["parent_span_id"] is None)
    assert _parse(root["started_at"]) >= run_start
    tracer.close()


def test_constructing_a_client_does_the_first_runs_set_up() -> None:
    # In a fresh process: the TLS context (tens of milliseconds to build) exists once a client
    # was made, before anything was traced; no export thread was started for it.
    script = textwrap.dedent(
        """
        import threading
        import prefactor_http.client as http_client
        from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
        from prefactor_http.config import HttpClientConfig

        assert http_client._tls_context is None
        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(api_url="http://127.0.0.1:9", api_token="t")
        )
        PrefactorCoreClient(config)
        assert http_client._tls_context is not None
        assert not any(t.name.startswith("prefactor") for t in threading.enumerate())
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_span_ids_keep_their_instance_partition_and_times_reach_the_wire(
    local_server: LocalServer,
) -> None:
    tracer = PrefactorCoreClient(config_for(local_server)).tracer
    began = datetime.now(timezone.utc)
    pfid_instance, _ = _run_agent(tracer, "pfid")
    chosen = tracer.start_instance(agent_version=AGENT_VERSION, instance_id="my-own-instance-id")
    chosen_spans = [tracer.create_span(chosen, "agent:step") for _ in range(3)]
    for span_id in chosen_spans:
        tracer.finish_span(span_id)
    tracer.finish_instance(chosen)
    ended = datetime.now(timezone.utc)
    assert tracer.flush(10)
    spans = spans_by_id(local_server, pfid_instance)
    assert all(is_pfid(span_id) and issued_here(span_id) for span_id in spans)
    assert {pfid_partition(span_id) for span_id in spans} == {pfid_partition(pfid_instance)}
    # An instance id of the caller's own (no PFID): its spans still share one partition.
    assert len({pfid_partition(span_id) for span_id in chosen_spans}) == 1
    assert set(spans_by_id(local_server, chosen)) == set(chosen_spans)
    for span in spans.values():
        started, finished = _parse(span["started_at"]), _parse(span["finished_at"])
        assert started.tzinfo is not None
        assert began - timedelta(milliseconds=1) <= started <= finished <= ended
    tracer.close()


@pytest.mark.skipif(
    not hasattr(os, "fork"), reason="os.fork exists only on POSIX systems (not on Windows)"
)
def test_ids_made_in_a_forked_child_are_its_own() -> None:
    before = new_pfid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            made = [new_pfid() for _ in range(3)]
            os.write(write_end, " ".join([str(issued_here(before)), *made]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        parent_known, *child_ids = pipe.read().split()
    os.waitpid(pid, 0)
    assert parent_known == "True"  # ids made before the fork are still recognised
    ours = [new_pfid() for _ in range(3)]
    assert len(set(child_ids) | set(ours) | {before}) == 7
    assert all(is_pfid(value) and not issued_here(value) for value in child_ids)
