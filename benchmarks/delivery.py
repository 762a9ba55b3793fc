"""6. Delivery: the exporter keeps up with a steady load, a distant API and an outage.

The agent of benchmark 1 (7 spans, 17 operations per run) with our handler and the default
configuration, against a local server in its own process, in four cases, each with a fresh
server:

- **API 100 ms / 300 ms away**: every request waits that long on the server; runs start every
  50 ms (20 runs/s) from one thread for ``LOAD_SECONDS``, and the latency stays on while the
  backlog drains;
- **back to back**: ``THREADS`` threads run the agent without pause, the server answers at once;
- **outage**: the server answers 503 to everything while runs start at 10 runs/s for
  ``OUTAGE_SECONDS``, then it recovers.

Once the load stops (and the server is back), ``client.tracer.flush`` is timed: the drain.
Then the server's database is read: a run is *whole* when its instance is complete with its 7
spans complete, and every run made must be whole, each once. ``stats()`` gives the drops and
failures, and its ``pending`` when the load stopped is the backlog the drain had to clear.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks._agents import INPUT, build_agent
from benchmarks._common import Row, Settings, verdict
from benchmarks._server import ServerProcess, make_client
from prefactor_core import ExportStats

NAME = "delivery"
TITLE = "6 Delivery"
SPANS = 7  # per run of the agent in benchmarks._agents
RATE = 20.0  # runs per second while the API is far away
OUTAGE_RATE = 10.0
THREADS = 4
DRAIN_TARGET = 10.0
FLUSH_TIMEOUT = 900.0
# Seconds of load: (full run, quick run).
LOAD_SECONDS = (60.0, 3.0)
SUSTAINED_SECONDS = (30.0, 3.0)
OUTAGE_SECONDS = (300.0, 5.0)

__all__ = ["NAME", "TITLE", "run"]

Load = Callable[[Callable[[], object]], int]


@dataclass(frozen=True)
class _Delivery:
    """What one case made, how long its backlog took to drain, and what the server holds."""

    runs: int
    load_seconds: float
    backlog: int  # operations pending when the load stopped
    drain_seconds: float
    drained: bool
    shapes: Counter[tuple[str, int]]
    spans: int
    stats: ExportStats
    stored: tuple[float, float]  # first and last span stored, in seconds after the drain began

    @property
    def whole(self) -> int:
        """Runs stored whole: the instance complete with all its spans complete."""
        return self.shapes[("complete", SPANS)]

    @property
    def all_whole(self) -> bool:
        """Every run made stored whole, once, and nothing else."""
        return (
            self.drained
            and self.whole == self.runs == self.shapes.total()
            and self.spans == SPANS * self.runs
        )

    def summary(self) -> str:
        """Runs made, stored, and what the exporter counted."""
        stored = (
            f"all {self.runs:,} stored whole"
            if self.all_whole
            else f"ONLY {self.whole:,} of {self.runs:,} stored whole"
        )
        stats = self.stats
        return (
            f"{self.runs:,} runs in {self.load_seconds:.1f} s "
            f"({self.runs / self.load_seconds:.1f}/s); {stored} ({self.spans:,} spans); "
            f"backlog {self.backlog:,} operations when the load stopped; "
            f"{stats.dropped} dropped, {stats.failed} failed, {stats.retried:,} retried, "
            f"{stats.requests:,} requests"
        )


def _paced(rate: float, seconds: float) -> Load:
    """One thread starting a run every ``1 / rate`` s (on a fixed schedule, so a late run does
    not delay the next ones) for ``seconds``."""

    def load(invoke: Callable[[], object]) -> int:
        count = round(rate * seconds)
        start = time.perf_counter()
        for index in range(count + 1):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if index < count:
                invoke()
        return count

    return load


def _back_to_back(threads: int, seconds: float) -> Load:
    """``threads`` threads running one run after another for ``seconds``."""

    def load(invoke: Callable[[], object]) -> int:
        deadline = time.perf_counter() + seconds
        counts = [0] * threads

        def worker(index: int) -> None:
            while time.perf_counter() < deadline:
                invoke()
                counts[index] += 1

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        return sum(counts)

    return load


def _deliver(load: Load, *, latency_ms: float = 0, outage: bool = False) -> _Delivery:
    """Run ``load`` against a fresh server (``latency_ms`` away throughout, or answering 503
    to everything during the load when ``outage``), then drain and count what was stored."""
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    with ServerProcess() as server:
        client = make_client(server.url, server.token)
        handler = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        agent = build_agent()
        agent.invoke(INPUT)  # warm, untraced
        config: Any = {"callbacks": [handler]}
        faults: dict[str, Any] = {"latency_ms": latency_ms}
        if outage:
            server.set_faults(**faults, error_rate=1.0, error_statuses=[503])
        else:
            server.set_faults(**faults)
        start = time.perf_counter()
        runs = load(lambda: agent.invoke(INPUT, config=config))
        load_seconds = time.perf_counter() - start
        backlog = client.stats().pending
        if outage:
            server.set_faults(**faults)
        begun = time.time()
        start = time.perf_counter()
        drained = client.tracer.flush(FLUSH_TIMEOUT)
        drain_seconds = time.perf_counter() - start
        stats = client.stats()
        shapes = server.run_shapes()
        spans = server.counts()["agent_spans"]
        first, last = server.span_times() or (begun, begun)
        handler.close(timeout=10)
    stored = (first - begun, last - begun)
    return _Delivery(
        runs, load_seconds, backlog, drain_seconds, drained, shapes, spans, stats, stored
    )


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per case."""
    pick = 1 if settings.quick else 0
    rows = []
    for ms in (100, 300):
        seconds = LOAD_SECONDS[pick]
        result = _deliver(_paced(RATE, seconds), latency_ms=ms)
        ok = result.all_whole and result.drain_seconds <= DRAIN_TARGET
        rows.append(
            Row(
                TITLE,
                f"API {ms} ms away, {RATE:.0f} runs/s",
                f"drained {result.drain_seconds:.2f} s after the load",
                result.summary(),
                f"every run whole; drained ≤ {DRAIN_TARGET:.0f} s after the load",
                verdict(ok, quick=settings.quick),
            )
        )
    result = _deliver(_back_to_back(THREADS, SUSTAINED_SECONDS[pick]))
    elapsed = result.load_seconds + result.drain_seconds
    rows.append(
        Row(
            TITLE,
            f"{THREADS} agent threads back to back",
            f"{result.runs / elapsed:,.0f} runs/s, {result.spans / elapsed:,.0f} spans/s stored",
            f"{result.summary()}; drained {result.drain_seconds:.2f} s after the load",
            "nothing dropped; every run whole",
            verdict(result.all_whole and result.stats.dropped == 0, quick=settings.quick),
        )
    )
    seconds = OUTAGE_SECONDS[pick]
    result = _deliver(_paced(OUTAGE_RATE, seconds), outage=True)
    rows.append(
        Row(
            TITLE,
            f"API down (503) at {OUTAGE_RATE:.0f} runs/s, then back",
            f"drained {result.drain_seconds:.2f} s after recovery",
            f"down {seconds:.0f} s; first span stored {result.stored[0]:.1f} s after recovery "
            f"(the next retry), the last {result.stored[1]:.1f} s after; {result.summary()}",
            "nothing dropped; every run whole after recovery",
            verdict(result.all_whole and result.stats.dropped == 0, quick=settings.quick),
        )
    )
    return rows
