"""1. LangChain overhead: what tracing adds to one agent run.

``langchain.agents.create_agent`` with a fake tool-calling model (two model calls, one tool call
per run), run with no callbacks, with a no-op ``BaseCallbackHandler`` and with our
``PrefactorCallbackHandler`` sending to a local server on loopback (in its own process), once
with the default transport, once with the bulk transport and once with the aiohttp
transport. The modes are interleaved in
one process. The exporter thread works while the agent runs, so its share of the interpreter
is part of what is measured; whatever it still has to send after a sample is drained untimed
before the next sample, and reported separately. The CPU time of the agent's threads and of
the exporter's thread are reported apart.

The same comparison is repeated with a model that takes ``MODEL_LATENCY`` per reply, as any
hosted model does: the exporter then works while the agent waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks._agents import INPUT, NoopHandler, build_agent
from benchmarks._common import Mode, Row, Settings, fmt_ms, fmt_us, interleave, median, verdict
from benchmarks._server import ServerProcess, make_client
from prefactor_core import PrefactorCoreClient

NAME = "langchain"
TITLE = "1 LangChain overhead"
TARGET_SECONDS = 1.0e-3
BULK_ITEMS = 100
MODEL_LATENCY = 0.02

__all__ = ["NAME", "TITLE", "run"]


def _drainer(client: PrefactorCoreClient) -> Callable[[], float]:
    def drain() -> float:
        start = time.perf_counter()
        client.tracer.flush(120)
        return time.perf_counter() - start

    return drain


def _invoker(agent: Any, callbacks: list[Any] | None) -> Callable[[], Any]:
    config: Any = {"callbacks": callbacks} if callbacks else None
    return lambda: agent.invoke(INPUT, config=config)


def _warm(modes: list[Mode], runs: int) -> None:
    for mode in modes:
        for _ in range(runs):
            mode.run()
        if mode.after is not None:
            mode.after()


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per mode."""
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    agent = build_agent()
    slow_agent = build_agent(model_latency=MODEL_LATENCY)
    warmup = 2 if settings.quick else 10
    with ServerProcess() as server, ServerProcess() as bulk_server, ServerProcess() as aio_server:
        client = make_client(server.url, server.token)
        bulk_client = make_client(bulk_server.url, bulk_server.token, bulk_max_items=BULK_ITEMS)
        aio_client = make_client(aio_server.url, aio_server.token, transport="aiohttp")
        ours = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        ours_bulk = PrefactorCallbackHandler(bulk_client, agent_name="benchmark-agent")
        ours_aio = PrefactorCallbackHandler(aio_client, agent_name="benchmark-agent")
        modes = [
            Mode("none", _invoker(agent, None)),
            Mode("noop", _invoker(agent, [NoopHandler()])),
            Mode("ours", _invoker(agent, [ours]), after=_drainer(client)),
            Mode("bulk", _invoker(agent, [ours_bulk]), after=_drainer(bulk_client)),
            Mode("aiohttp", _invoker(agent, [ours_aio]), after=_drainer(aio_client)),
        ]
        _warm(modes, warmup)
        interleave(modes, samples=settings.runs, batch=settings.batch)
        traced_runs = warmup + settings.runs * settings.batch
        spans = server.counts()["agent_spans"] / traced_runs
        bulk_spans = bulk_server.counts()["agent_spans"] / traced_runs
        aio_spans = aio_server.counts()["agent_spans"] / traced_runs
        stats = client.stats()
        bulk_stats = bulk_client.stats()
        aio_stats = aio_client.stats()
        slow = [
            Mode("none", _invoker(slow_agent, None)),
            Mode("ours", _invoker(slow_agent, [ours]), after=_drainer(client)),
            Mode("aiohttp", _invoker(slow_agent, [ours_aio]), after=_drainer(aio_client)),
        ]
        _warm(slow, 2)
        interleave(slow, samples=settings.runs, batch=settings.batch)
        ours.close(timeout=10)
        ours_bulk.close(timeout=10)
        ours_aio.close(timeout=10)

    base = median(modes[0].samples)
    base_agent_cpu = median(modes[0].agent_cpu)
    rows = [
        Row(
            TITLE,
            "no callbacks",
            f"{fmt_ms(base)}/run",
            f"baseline (wall time per run); CPU of the agent's threads {fmt_ms(base_agent_cpu)}",
        )
    ]
    noop_added = median(modes[1].samples) - base
    rows.append(
        Row(TITLE, "no-op BaseCallbackHandler", f"{fmt_ms(noop_added, signed=True)}/run", "")
    )
    for mode, per_run, label, st in (
        (modes[2], spans, "PrefactorCallbackHandler", stats),
        (modes[3], bulk_spans, f"PrefactorCallbackHandler, bulk ({BULK_ITEMS})", bulk_stats),
        (modes[4], aio_spans, "PrefactorCallbackHandler, aiohttp transport", aio_stats),
    ):
        added = median(mode.samples) - base
        per_span = added / per_run if per_run else 0.0
        agent_added = median(mode.agent_cpu) - base_agent_cpu
        detail = (
            f"{fmt_us(per_span, signed=True)}/span ({per_run:.1f} spans/run); "
            f"CPU of the agent's threads {fmt_ms(agent_added, signed=True)}/run, "
            f"of the exporter {fmt_ms(median(mode.export_cpu))}/run; "
            f"drain after batch {fmt_ms(median(mode.extra))}/run; "
            f"{st.sent} calls/items sent, {st.failed} failed, {st.dropped} dropped"
        )
        rows.append(
            Row(
                TITLE,
                label,
                f"{fmt_ms(added, signed=True)}/run",
                detail,
                "≤ +1.00 ms/run",
                verdict(added <= TARGET_SECONDS, quick=settings.quick),
            )
        )
    rows.append(
        Row(
            TITLE,
            "PrefactorCallbackHandler: agent's threads only",
            f"{fmt_ms(median(modes[2].agent_cpu) - base_agent_cpu, signed=True)}/run",
            "CPU time of the threads that run the agent (the exporter's thread left out); "
            f"no-op handler {fmt_ms(median(modes[1].agent_cpu) - base_agent_cpu, signed=True)}",
        )
    )
    slow_base = median(slow[0].samples)
    model = f"model answers after {MODEL_LATENCY * 1000:.0f} ms"
    rows.append(
        Row(
            TITLE,
            f"{model}: no callbacks",
            f"{fmt_ms(slow_base)}/run",
            "baseline; the exporter works while the agent waits for the model",
        )
    )
    for mode, label in (
        (slow[1], "PrefactorCallbackHandler"),
        (slow[2], "PrefactorCallbackHandler, aiohttp transport"),
    ):
        added = median(mode.samples) - slow_base
        rows.append(
            Row(
                TITLE,
                f"{model}: {label}",
                f"{fmt_ms(added, signed=True)}/run",
                f"{added / slow_base:+.1%}; exporter CPU {fmt_ms(median(mode.export_cpu))}/run",
            )
        )
    return rows
