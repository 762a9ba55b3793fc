"""2. Independence from API latency: the agent's time per run while the server answers after
0, 50 and 200 ms.

The scenario of benchmark 1 with our handler, against one local server whose injected latency
is switched between samples (modes interleaved). Before each sample the exporter is drained
with the latency off, so every sample starts from an idle exporter; then the latency is set
and the runs are timed. An exporter that waited for the API on the agent's thread would add
the latency to every run.

Run twice: with the model of benchmark 1, which answers at once (the run is pure CPU work, so
the exporter's CPU competes with it), and with a model that takes ``MODEL_LATENCY`` per reply
(the exporter's work then fits into the agent's waits, as with any hosted model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks._agents import INPUT, build_agent
from benchmarks._common import Mode, Row, Settings, fmt_ms, interleave, median, verdict
from benchmarks._server import ServerProcess, make_client
from prefactor_core import PrefactorCoreClient

NAME = "latency"
TITLE = "2 API latency"
LATENCIES_MS = (0, 50, 200)
TOLERANCE = 0.05
MODEL_LATENCY = 0.02

__all__ = ["NAME", "TITLE", "run"]


def _prepare(server: ServerProcess, client: PrefactorCoreClient, ms: int) -> Callable[[], None]:
    def before() -> None:
        server.set_faults()
        client.tracer.flush(120)
        server.set_faults(latency_ms=ms)

    return before


def _measure(
    agent: Any, handler: Any, server: ServerProcess, client: PrefactorCoreClient, runs: int
) -> list[Mode]:
    config = {"callbacks": [handler]}

    def invoke() -> None:
        agent.invoke(INPUT, config=config)

    modes = [Mode(f"{ms} ms", invoke, before=_prepare(server, client, ms)) for ms in LATENCIES_MS]
    for _ in range(runs):
        invoke()
    return modes


def _rows(modes: list[Mode], model: str, settings: Settings) -> list[Row]:
    base = median(modes[0].samples)
    rows = [
        Row(
            TITLE,
            f"{model}: server answers after 0 ms",
            f"{fmt_ms(base)}/run",
            f"CPU of the agent's threads {fmt_ms(median(modes[0].agent_cpu))}/run",
        )
    ]
    for ms, mode in zip(LATENCIES_MS[1:], modes[1:], strict=True):
        value = median(mode.samples)
        change = value / base - 1 if base else 0.0
        rows.append(
            Row(
                TITLE,
                f"{model}: server answers after {ms} ms",
                f"{fmt_ms(value)}/run",
                f"{change:+.1%} vs 0 ms; CPU of the agent's threads "
                f"{fmt_ms(median(mode.agent_cpu))}/run",
                "within ±5 % of 0 ms",
                verdict(abs(change) <= TOLERANCE, quick=settings.quick),
            )
        )
    return rows


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per latency and model."""
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    warmup = 2 if settings.quick else 10
    with ServerProcess() as server:
        client = make_client(server.url, server.token)
        handler = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        fast = _measure(build_agent(), handler, server, client, warmup)
        interleave(fast, samples=settings.runs, batch=settings.batch)
        slow = _measure(build_agent(MODEL_LATENCY), handler, server, client, 2)
        interleave(slow, samples=settings.runs, batch=settings.batch)
        server.set_faults()
        client.tracer.flush(120)
        stats = client.stats()
        handler.close(timeout=10)

    rows = _rows(fast, "instant model", settings)
    rows.extend(_rows(slow, f"model takes {MODEL_LATENCY * 1000:.0f} ms", settings))
    rows.append(
        Row(
            TITLE,
            "export",
            f"{stats.sent:,} calls",
            f"{stats.failed} failed, {stats.dropped} dropped",
        )
    )
    return rows
