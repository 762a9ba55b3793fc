"""2. Independence from API latency: the agent's time per run while the server answers after
0, 50 and 200 ms.

The scenario of benchmark 1 with our handler, against one local server whose injected latency
is switched between samples (modes interleaved). Before each sample the exporter is drained
with the latency off, so every sample starts from an idle exporter; then the latency is set
and the runs are timed. An exporter that waited for the API on the agent's thread would add
the latency to every run.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks._agents import INPUT, build_agent
from benchmarks._common import Mode, Row, Settings, fmt_ms, interleave, median, verdict
from benchmarks._server import ServerProcess, make_client
from prefactor_core import PrefactorCoreClient

NAME = "latency"
TITLE = "2 API latency"
LATENCIES_MS = (0, 50, 200)
TOLERANCE = 0.05

__all__ = ["NAME", "TITLE", "run"]


def _prepare(server: ServerProcess, client: PrefactorCoreClient, ms: int) -> Callable[[], None]:
    def before() -> None:
        server.set_faults()
        client.tracer.flush(120)
        server.set_faults(latency_ms=ms)

    return before


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per latency."""
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    agent = build_agent()
    with ServerProcess() as server:
        client = make_client(server.url, server.token)
        handler = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        config = {"callbacks": [handler]}

        def invoke() -> None:
            agent.invoke(INPUT, config=config)

        modes = [
            Mode(f"{ms} ms", invoke, before=_prepare(server, client, ms)) for ms in LATENCIES_MS
        ]
        for _ in range(2 if settings.quick else 10):
            invoke()
        interleave(modes, samples=settings.runs, batch=settings.batch)
        server.set_faults()
        client.tracer.flush(120)
        stats = client.stats()
        handler.close(timeout=10)

    base = median(modes[0].samples)
    rows = [
        Row(
            TITLE,
            "server answers after 0 ms",
            f"{fmt_ms(base)}/run",
            f"{stats.sent} calls sent, {stats.failed} failed, {stats.dropped} dropped",
        )
    ]
    for ms, mode in zip(LATENCIES_MS[1:], modes[1:], strict=True):
        value = median(mode.samples)
        change = value / base - 1 if base else 0.0
        rows.append(
            Row(
                TITLE,
                f"server answers after {ms} ms",
                f"{fmt_ms(value)}/run",
                f"{change:+.1%} vs 0 ms",
                "within ±5 % of 0 ms",
                verdict(abs(change) <= TOLERANCE, quick=settings.quick),
            )
        )
    return rows
