"""1. LangChain overhead: what tracing adds to one agent run, on the calling thread.

``langchain.agents.create_agent`` with a fake tool-calling model (two model calls, one tool call
per run), run with no callbacks, with a no-op ``BaseCallbackHandler`` and with our
``PrefactorCallbackHandler`` sending to a local server on loopback (in its own process), once
with the default transport and once with the bulk transport. The modes are interleaved in
one process. The exporter thread works while the agent runs, so its share of the interpreter
is part of what is measured; whatever it still has to send after a sample is drained untimed
before the next sample, and reported separately.
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

__all__ = ["NAME", "TITLE", "run"]


def _drainer(client: PrefactorCoreClient) -> Callable[[], float]:
    def drain() -> float:
        start = time.perf_counter()
        client.tracer.flush(120)
        return time.perf_counter() - start

    return drain


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per mode."""
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    agent = build_agent()
    with ServerProcess() as server, ServerProcess() as bulk_server:
        client = make_client(server.url, server.token)
        bulk_client = make_client(bulk_server.url, bulk_server.token, bulk_max_items=BULK_ITEMS)
        ours = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        ours_bulk = PrefactorCallbackHandler(bulk_client, agent_name="benchmark-agent")
        noop = NoopHandler()

        def invoke(callbacks: list[Any] | None) -> Callable[[], Any]:
            config: Any = {"callbacks": callbacks} if callbacks else None
            return lambda: agent.invoke(INPUT, config=config)

        modes = [
            Mode("none", invoke(None)),
            Mode("noop", invoke([noop])),
            Mode("ours", invoke([ours]), after=_drainer(client)),
            Mode("bulk", invoke([ours_bulk]), after=_drainer(bulk_client)),
        ]
        warmup = 2 if settings.quick else 10
        for mode in modes:
            for _ in range(warmup):
                mode.run()
        client.tracer.flush(60)
        bulk_client.tracer.flush(60)
        interleave(modes, samples=settings.runs, batch=settings.batch)
        traced_runs = warmup + settings.runs * settings.batch
        spans = server.counts()["agent_spans"] / traced_runs
        bulk_spans = bulk_server.counts()["agent_spans"] / traced_runs
        stats = client.stats()
        bulk_stats = bulk_client.stats()
        ours.close(timeout=10)
        ours_bulk.close(timeout=10)

    base = median(modes[0].samples)
    base_cpu = median(modes[0].cpu)
    rows = [Row(TITLE, "no callbacks", f"{fmt_ms(base)}/run", "baseline (wall time per run)")]
    noop_added = median(modes[1].samples) - base
    rows.append(
        Row(TITLE, "no-op BaseCallbackHandler", f"{fmt_ms(noop_added, signed=True)}/run", "")
    )
    for mode, per_run, label, st in (
        (modes[2], spans, "PrefactorCallbackHandler", stats),
        (modes[3], bulk_spans, f"PrefactorCallbackHandler, bulk ({BULK_ITEMS})", bulk_stats),
    ):
        added = median(mode.samples) - base
        per_span = added / per_run if per_run else 0.0
        detail = (
            f"{fmt_us(per_span, signed=True)}/span ({per_run:.1f} spans/run); "
            f"CPU incl. exporter {fmt_ms(median(mode.cpu) - base_cpu, signed=True)}/run; "
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
    return rows
