"""7. The agent's thread, per callback: what each of our LangChain callbacks costs the thread
that calls it, with export on.

The agent of benchmark 1 (``langchain.agents.create_agent``, two model calls and one tool
call per run: 7 spans) runs with our ``PrefactorCallbackHandler`` sending to a local server in
its own process. Every callback method of the handler is wrapped in a timer that reads the
calling thread's CPU clock (``time.thread_time_ns``) before and after, so the figure is the
work done on the agent's thread inside that callback, and nothing of the export thread's. The
same timers around a handler whose callbacks do nothing give the floor (the timer itself and
the call), which is subtracted. Per run, the CPU of the agent's thread over the whole
``invoke`` is compared with runs with no callbacks; the modes are interleaved sample by
sample, and every figure is a median.

The first traced run of a process is measured apart, in fresh child processes: the agent runs
once untraced (so LangChain's own first-use costs are paid), then the handler is constructed
and the first traced run and some later ones are timed on the agent's thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._agents import INPUT, build_agent
from benchmarks._common import Row, Settings, fmt_ms, fmt_us, median, verdict
from benchmarks._server import ServerProcess, make_client

NAME = "agent_path"
TITLE = "7 Agent's thread per callback"
TARGET_PER_CALLBACK = 15e-6
TARGET_PER_RUN = 0.25e-3
# The callbacks of the scenario, in the order a run first calls them.
KINDS = (
    "on_chain_start",
    "on_chat_model_start",
    "on_llm_end",
    "on_tool_start",
    "on_tool_end",
    "on_chain_end",
)
FIRST_RUN_CHILDREN = 5
_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["NAME", "TITLE", "run"]


class _Timers:
    """Thread CPU nanoseconds and calls per callback kind, while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        self.ns.clear()
        self.calls.clear()

    def wrap(self, handler: Any) -> Any:
        """Put a timer around each of ``handler``'s callbacks in `KINDS`; ``handler``."""
        for kind in KINDS:
            setattr(handler, kind, self._timed(kind, getattr(handler, kind)))
        return handler

    def _timed(self, kind: str, method: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.thread_time_ns
        ns, calls = self.ns, self.calls

        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return method(*args, **kwargs)
            start = clock()
            try:
                return method(*args, **kwargs)
            finally:
                ns[kind] += clock() - start
                calls[kind] += 1

        return timed


class _EmptyHandler:
    """Callbacks that do nothing: the floor of the timers (built lazily: langchain import)."""

    @staticmethod
    def make() -> Any:
        from langchain_core.callbacks import BaseCallbackHandler

        class Empty(BaseCallbackHandler):
            def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
                pass

            def on_chain_end(self, *args: Any, **kwargs: Any) -> None:
                pass

            def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
                pass

            def on_llm_end(self, *args: Any, **kwargs: Any) -> None:
                pass

            def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
                pass

            def on_tool_end(self, *args: Any, **kwargs: Any) -> None:
                pass

        return Empty()


class _Mode:
    def __init__(self, name: str, handler: Any | None, timers: _Timers | None) -> None:
        self.name = name
        self.config: Any = {"callbacks": [handler]} if handler is not None else None
        self.timers = timers
        self.run_cpu: list[float] = []  # agent's thread CPU per run, per sample
        self.per_kind: dict[str, list[float]] = defaultdict(list)  # seconds per call
        self.per_run_calls: list[float] = []
        self.handler_cpu: list[float] = []  # inside our callbacks, per run

    def sample(self, agent: Any, batch: int) -> None:
        timers = self.timers
        if timers is not None:
            timers.reset()
            timers.on = True
        clock = time.thread_time_ns
        start = clock()
        for _ in range(batch):
            agent.invoke(INPUT, config=self.config)
        self.run_cpu.append((clock() - start) / 1e9 / batch)
        if timers is not None:
            timers.on = False
            for kind, calls in timers.calls.items():
                self.per_kind[kind].append(timers.ns[kind] / 1e9 / calls)
            self.per_run_calls.append(sum(timers.calls.values()) / batch)
            self.handler_cpu.append(sum(timers.ns.values()) / 1e9 / batch)


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; a row per callback kind, per run, and for the first run."""
    import gc

    from prefactor_integrations.langchain import PrefactorCallbackHandler

    agent = build_agent()
    batch = settings.batch
    with ServerProcess() as server:
        client = make_client(server.url, server.token)
        handler = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        ours_timers, floor_timers = _Timers(), _Timers()
        modes = [
            _Mode("none", None, None),
            _Mode("floor", floor_timers.wrap(_EmptyHandler.make()), floor_timers),
            _Mode("ours", ours_timers.wrap(handler), ours_timers),
        ]
        for mode in modes:
            for _ in range(2 if settings.quick else 10):
                agent.invoke(INPUT, config=mode.config)
        client.tracer.flush(60)
        for index in range(settings.runs):
            shift = index % len(modes)
            for mode in [*modes[shift:], *modes[:shift]]:
                gc.collect()
                mode.sample(agent, batch)
                if mode.name == "ours":
                    client.tracer.flush(60)  # outside the timed runs: export stays on
        stats = client.stats()
        handler.close(timeout=10)
        first = _first_runs(server, 1 if settings.quick else FIRST_RUN_CHILDREN)
    return _rows(modes, stats, first, settings)


def _rows(
    modes: list[_Mode], stats: Any, first: list[dict[str, float]], settings: Settings
) -> list[Row]:
    none, floor, ours = modes
    rows: list[Row] = []
    calls = median(ours.per_run_calls)
    for kind in KINDS:
        values = ours.per_kind.get(kind)
        if not values:
            continue
        base = median(floor.per_kind.get(kind, [0.0]))
        cost = median(values) - base
        rows.append(
            Row(
                TITLE,
                kind,
                fmt_us(cost),
                f"thread CPU inside the callback, timer floor {fmt_us(base)} subtracted",
                f"≤ {fmt_us(TARGET_PER_CALLBACK)} on average",
            )
        )
    floor_run = median(floor.handler_cpu)
    inside = median(ours.handler_cpu) - floor_run
    total = inside / calls if calls else 0.0
    rows.append(
        Row(
            TITLE,
            "average per callback",
            fmt_us(total),
            f"{calls:.0f} callbacks/run; inside our callbacks {fmt_ms(inside)}/run",
            f"≤ {fmt_us(TARGET_PER_CALLBACK)}",
            verdict(total <= TARGET_PER_CALLBACK, quick=settings.quick),
        )
    )
    added = median(ours.run_cpu) - median(none.run_cpu)
    rows.append(
        Row(
            TITLE,
            "agent's thread per run, export on",
            f"{fmt_ms(added, signed=True)} CPU/run",
            f"whole invoke vs no callbacks ({fmt_ms(median(none.run_cpu))}); empty handler "
            f"{fmt_ms(median(floor.run_cpu) - median(none.run_cpu), signed=True)}; "
            f"{stats.sent} sent, {stats.failed} failed, {stats.dropped} dropped",
            f"≤ {fmt_ms(TARGET_PER_RUN)} inside our callbacks",
            verdict(inside <= TARGET_PER_RUN, quick=settings.quick),
        )
    )
    if first:
        construct = median(f["construct"] for f in first)
        extra = median(f["first"] - f["steady"] for f in first)
        wall = median(f["first_wall"] - f["steady_wall"] for f in first)
        rows.append(
            Row(
                TITLE,
                "first traced run in a process",
                f"{fmt_ms(extra, signed=True)} CPU",
                f"agent's thread, first run minus a later one (wall {fmt_ms(wall, signed=True)});"
                f" handler construction {fmt_ms(construct)}; {len(first)} fresh processes",
            )
        )
    return rows


def _first_runs(server: ServerProcess, children: int) -> list[dict[str, float]]:
    """The first-run figures of ``children`` fresh processes (see `first_run_child`)."""
    results = []
    for _ in range(children):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.agent_path", server.url, server.token],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def first_run_child(url: str, token: str, later: int = 5) -> dict[str, float]:
    """In a fresh process: the agent's thread CPU (and wall time) of constructing the
    handler, of the first traced run, and of a later traced run (median of ``later``)."""
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    agent = build_agent()
    agent.invoke(INPUT)  # LangChain's own first-use costs, untraced
    clock, wall = time.thread_time, time.perf_counter
    start = clock()
    client = make_client(url, token)
    handler = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
    construct = clock() - start
    config: Any = {"callbacks": [handler]}
    cpu: list[float] = []
    walls: list[float] = []
    for _ in range(later + 1):
        start, start_wall = clock(), wall()
        agent.invoke(INPUT, config=config)
        cpu.append(clock() - start)
        walls.append(wall() - start_wall)
    handler.close(timeout=10)
    return {
        "construct": construct,
        "first": cpu[0],
        "steady": median(cpu[1:]),
        "first_wall": walls[0],
        "steady_wall": median(walls[1:]),
    }


if __name__ == "__main__":
    print(json.dumps(first_run_child(sys.argv[1], sys.argv[2])))
