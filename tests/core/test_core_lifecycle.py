"""Client lifecycle, shutdown, fork, and contained failures."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _core_support import AGENT_VERSION, config_for, http_config, spans_by_id

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig, flush_all
from prefactor_http.config import HttpClientConfig
from prefactor_local.server import LocalServer


async def test_close_then_initialize_works(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server))
    ids = []
    for _ in range(2):
        await client.initialize()
        async with client.create_agent_instance(AGENT_VERSION) as instance:
            await instance.start()
            async with instance.span("agent:step"):
                pass
        ids.append(instance.id)
        await client.close()
    for instance_id in ids:
        row = local_server.store.get_instance(instance_id)
        assert row is not None and row["status"] == "complete"
        assert len(local_server.store.list_spans(instance_id)) == 1
    assert client.stats().health == "closed"


async def test_close_finishes_open_spans_and_instances(local_server: LocalServer) -> None:
    client = PrefactorCoreClient(config_for(local_server))
    await client.initialize()
    instance = await client.create_agent_instance(AGENT_VERSION)
    await instance.start()
    open_span = await instance.create_span("agent:never-finished")
    await client.close()
    row = local_server.store.get_instance(instance.id)
    assert row is not None and row["status"] == "cancelled"
    assert spans_by_id(local_server, instance.id)[open_span]["status"] == "cancelled"


async def test_close_waits_for_operations_in_retry_backoff(local_server: LocalServer) -> None:
    faults = local_server.faults
    faults.error_rate = 1.0
    faults.error_statuses = (503,)
    faults.max_faults = 4  # the first four requests fail, then the server recovers
    config = config_for(
        local_server,
        http={"max_retries": 1, "initial_retry_delay": 0.1, "max_retry_delay": 0.1},
        max_retries=5,
        retry_delay_base=0.1,
    )
    client = PrefactorCoreClient(config)
    await client.initialize()
    async with client.create_agent_instance(AGENT_VERSION) as instance:
        await instance.start()
        async with instance.span("agent:step"):
            pass
    await client.close()  # must not cancel what is sleeping between retries
    row = local_server.store.get_instance(instance.id)
    assert row is not None and row["status"] == "complete"
    assert len(local_server.store.list_spans(instance.id)) == 1
    stats = client.stats()
    assert stats.retried >= 4 and stats.failed == 0


def test_pending_operations_are_delivered_at_interpreter_exit(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 100
    script = textwrap.dedent(
        f"""
        from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
        from prefactor_http.config import HttpClientConfig

        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(
                api_url={local_server.url!r}, api_token={local_server.token!r}
            ),
        )
        tracer = PrefactorCoreClient(config).tracer
        instance_id = tracer.start_instance(agent_version={{"name": "exit-agent"}})
        for index in range(20):
            span_id = tracer.create_span(instance_id, "agent:step", payload={{"i": index}})
            tracer.finish_span(span_id)
        tracer.finish_instance(instance_id)
        print(instance_id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    instance_id = done.stdout.strip()
    row = local_server.store.get_instance(instance_id)
    assert row is not None and row["status"] == "complete"
    assert len(local_server.store.list_spans(instance_id)) == 20


def test_undelivered_operations_are_reported_at_exit(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import logging
        from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
        from prefactor_http.config import HttpClientConfig

        logging.basicConfig(level=logging.WARNING)
        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(
                api_url="http://127.0.0.1:9", api_token="t", initial_retry_delay=5.0
            ),
            queue_config=QueueConfig(shutdown_timeout=0.3),
        )
        tracer = PrefactorCoreClient(config).tracer
        instance_id = tracer.start_instance(agent_version={"name": "exit-agent"})
        tracer.finish_instance(instance_id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "operation(s) could not be delivered before shutdown" in done.stderr


def test_fork_gives_the_child_a_fresh_exporter(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 200
    client = PrefactorCoreClient(config_for(local_server))
    tracer = client.tracer
    parent_instance = tracer.start_instance(agent_version=AGENT_VERSION)
    parent_spans = [tracer.create_span(parent_instance, "parent:step") for _ in range(5)]
    for span_id in parent_spans:
        tracer.finish_span(span_id)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: trace its own run, flush, report, and leave without cleanup
        code = 1
        try:
            os.close(read_end)
            child_instance = tracer.start_instance(agent_version=AGENT_VERSION)
            child_span = tracer.create_span(child_instance, "child:step")
            tracer.finish_span(child_span)
            tracer.finish_instance(child_instance)
            ok = tracer.flush(30) and client.stats().queued == 5
            os.write(write_end, f"{child_instance} {child_span} {ok}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_instance, child_span, child_ok = pipe.read().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_ok == "True"
    tracer.finish_instance(parent_instance)
    assert tracer.flush(30)
    assert set(spans_by_id(local_server, child_instance)) == {child_span}
    stored = spans_by_id(local_server, parent_instance)
    assert set(stored) == set(parent_spans)
    assert all(span["replays"] == 0 for span in stored.values())  # sent once, by the parent
    assert local_server.store.counts()["agent_instances"] == 2
    tracer.close()


async def test_refused_token_stops_export_with_one_error_line(
    local_server: LocalServer, caplog: Any
) -> None:
    config = PrefactorCoreConfig(
        http_config=http_config(local_server.url, "not-the-token"),
        queue_config=QueueConfig(retry_delay_base=0.01),
        termination_poll_interval=None,
    )
    caplog.set_level(logging.WARNING, logger="prefactor_core")
    async with PrefactorCoreClient(config) as client:
        for _ in range(3):
            async with client.create_agent_instance(AGENT_VERSION) as instance:
                await instance.start()
                async with instance.span("agent:step"):
                    pass
        assert not await client.flush(10)
        stats = client.stats()
        assert stats.export_stopped and stats.health == "stopped"
        assert stats.failed > 0 and stats.pending == 0
        assert "PREFACTOR_API_TOKEN" in (stats.last_error or "")
        async with client.create_agent_instance(AGENT_VERSION) as later:  # never raises
            await later.start()
        assert client.stats().dropped > 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "refused the token" in errors[0].getMessage()
    assert "not-the-token" not in caplog.text
    assert local_server.store.counts()["agent_instances"] == 0


async def test_backend_errors_never_reach_the_agent(local_server: LocalServer, caplog: Any) -> None:
    local_server.faults.error_rate = 1.0
    local_server.faults.error_statuses = (503,)
    config = config_for(local_server, retry_budget=0.5)
    caplog.set_level(logging.WARNING, logger="prefactor_core")
    async with PrefactorCoreClient(config) as client:
        for _ in range(5):
            async with client.create_agent_instance(AGENT_VERSION) as instance:
                await instance.start()
                async with instance.span("agent:llm") as span:
                    span.set_result({"answer": 1})
                await instance.finish()
        assert not await client.flush(10)
        stats = client.stats()
    assert stats.failed > 0 and stats.pending == 0
    assert stats.health == "degraded"
    warnings = [r.getMessage() for r in caplog.records if r.name == "prefactor_core.export"]
    assert len(warnings) == len(set(warnings))  # each kind of failure is logged once
    assert any("REGISTER_AGENT_INSTANCE" in message for message in warnings)


async def test_retry_on_status_codes_is_honoured(local_server: LocalServer) -> None:
    local_server.faults.error_rate = 1.0
    local_server.faults.error_statuses = (500,)
    local_server.faults.max_faults = 1
    config = config_for(
        local_server, http={"retry_on_status_codes": (503,)}, termination_poll_interval=None
    )
    async with PrefactorCoreClient(config) as client:
        client.tracer.start_instance(agent_version=AGENT_VERSION)
        assert not await client.flush(10)
        stats = client.stats()
    assert stats.retried == 0  # a 500 is not in retry_on_status_codes
    assert stats.failed >= 1


async def test_flush_all_drains_every_client(local_server: LocalServer) -> None:
    local_server.faults.latency_ms = 100
    first = PrefactorCoreClient(config_for(local_server))
    second = PrefactorCoreClient(config_for(local_server))
    ids = [client.tracer.start_instance(agent_version=AGENT_VERSION) for client in (first, second)]
    assert flush_all(10)
    assert all(local_server.store.get_instance(i) is not None for i in ids)
    for client in (first, second):
        await client.close()


async def test_failed_create_never_leaves_a_stale_parent(local_server: LocalServer) -> None:
    async with PrefactorCoreClient(config_for(local_server)) as client:
        instance = await client.create_agent_instance(AGENT_VERSION)
        await instance.start()
        root = await instance.create_span("agent:root")
        # The server rejects a schema name over 255 characters: this create fails for good.
        broken = await instance.create_span("x" * 300, parent_span_id=root)
        child = await instance.create_span("agent:child", parent_span_id=broken)
        await instance.finish_span(child)
        await instance.finish_span(broken)
        await instance.finish_span(root)
        after = await instance.create_span("agent:after")
        await instance.finish_span(after)
        await instance.finish()
        assert not await client.flush(10)
        stats = client.stats()
    stored = spans_by_id(local_server, instance.id)
    assert set(stored) == {root, child, after}
    assert stored[child]["parent_span_id"] == root  # moved up to the nearest surviving span
    assert stored[after]["parent_span_id"] is None
    assert (stats.failed, stats.skipped) == (2, 0)  # the create, carrying its finish
    row = local_server.store.get_instance(instance.id)
    assert row is not None and row["status"] == "complete"


@pytest.mark.parametrize("bulk_max_items", [500, 0], ids=["bulk", "single"])
async def test_a_garbled_answer_is_retried_without_a_duplicate(
    local_server: LocalServer, bulk_max_items: int
) -> None:
    async with PrefactorCoreClient(
        config_for(local_server, bulk_max_items=bulk_max_items)
    ) as client:
        first = client.tracer.start_instance(agent_version=AGENT_VERSION)
        span_id = client.tracer.create_span(first, "agent:step")
        client.tracer.finish_span(span_id)
        client.tracer.finish_instance(first)
        assert await client.flush(10)  # verifies the bulk endpoint first
        # The server stores the work, then answers 200 with a body that is not JSON.
        local_server.faults.garble_rate = 1.0
        local_server.faults.max_faults = 3
        second = client.tracer.start_instance(agent_version=AGENT_VERSION)
        span_id = client.tracer.create_span(second, "agent:step")
        client.tracer.finish_span(span_id)
        client.tracer.finish_instance(second)
        assert await client.flush(10)
        stats = client.stats()
    assert local_server.injected_faults["garble"] == 3
    assert not stats.export_stopped and stats.failed == 0 and stats.retried > 0
    row = local_server.store.get_instance(second)
    assert row is not None and row["status"] == "complete"
    assert list(spans_by_id(local_server, second)) == [span_id]


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", "https://api.example.com")
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "secret-token")
    monkeypatch.setenv("PREFACTOR_AGENT_ID", "agent-7")
    monkeypatch.delenv("PREFACTOR_ENVIRONMENT_ID", raising=False)
    config = PrefactorCoreConfig.from_env()
    assert config.http_config.api_url == "https://api.example.com"
    assert (config.agent_id, config.environment_id) == ("agent-7", None)
    assert "secret-token" not in repr(config)
    monkeypatch.setenv("PREFACTOR_ENVIRONMENT_ID", "env-1")
    assert PrefactorCoreConfig.from_env().environment_id == "env-1"
    monkeypatch.delenv("PREFACTOR_AGENT_ID")
    with pytest.raises(ValueError, match="PREFACTOR_AGENT_ID"):
        PrefactorCoreConfig.from_env()
    assert PrefactorCoreConfig.from_env(agent_id=None).agent_id is None


def test_queue_config_defaults_and_bounds() -> None:
    config = QueueConfig()
    assert (config.num_workers, config.max_retries, config.retry_delay_base) == (3, 3, 1.0)
    assert config.max_buffered_operations == 100_000
    assert config.max_buffered_bytes == 64 * 1024 * 1024
    assert (config.bulk_max_items, config.max_requests_in_flight) == (500, 2)
    assert (config.retry_budget, config.shutdown_timeout) == (600.0, 10.0)
    assert config.drop_policy == "drop_spans_first"
    for bad in (
        {"num_workers": 0},
        {"num_workers": 21},
        {"max_retries": -1},
        {"max_buffered_bytes": 0},
        {"bulk_max_items": -1},
        {"max_requests_in_flight": 0},
        {"linger": -1.0},
        {"retry_budget": float("inf")},
    ):
        with pytest.raises(ValueError):
            QueueConfig(**bad)
    with pytest.raises(ValueError):
        QueueConfig(retry_delay_base=0)
    with pytest.raises(ValueError):
        QueueConfig(drop_policy="block")  # type: ignore[arg-type]
    core = PrefactorCoreConfig(http_config=HttpClientConfig(api_url="http://x", api_token="t"))
    assert core.queue_config == QueueConfig() and core.schema_registry is None
