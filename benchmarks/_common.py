"""What every benchmark shares: settings, result rows, interleaved timing, environment facts."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

__all__ = [
    "Mode",
    "Row",
    "Settings",
    "environment",
    "fmt_ms",
    "fmt_us",
    "interleave",
    "median",
    "prefactor_threads_cpu",
    "verdict",
]


@dataclass(frozen=True)
class Settings:
    """How long the benchmarks run.

    ``runs``: samples per mode (every figure is the median of them). ``batch``: agent runs
    timed together as one sample. ``quick`` shrinks every workload to a smoke-test size.
    """

    runs: int = 15
    batch: int = 10
    quick: bool = False

    @classmethod
    def make(cls, *, quick: bool, runs: int | None) -> Settings:
        """Defaults for a full or a ``quick`` run; ``runs`` overrides the sample count."""
        if quick:
            return cls(runs=runs or 3, batch=2, quick=True)
        return cls(runs=runs or 15, batch=10, quick=False)


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    benchmark: str
    case: str
    result: str
    detail: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Mode:
    """One way of running the same workload (for example: no callbacks, our handler).

    ``before`` runs untimed before every sample (draining what an earlier sample left, for
    instance); ``after`` runs after it, outside the wall time but inside the process CPU time
    (``cpu``), and may return extra seconds to record in ``extra`` (such as the time the
    exporter needed to flush afterwards).

    Per sample and per run: ``samples`` wall time on the calling thread; ``cpu`` process CPU
    (all threads, including ``after``); ``agent_cpu`` CPU of every thread except Prefactor's
    own while the runs were timed (the agent's threads: the caller and any worker threads
    of the framework); ``export_cpu`` CPU of Prefactor's threads from the start of the sample
    to the end of ``after``.
    """

    name: str
    run: Callable[[], Any]
    before: Callable[[], Any] | None = None
    after: Callable[[], float | None] | None = None
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    agent_cpu: list[float] = field(default_factory=list)
    export_cpu: list[float] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)


def prefactor_threads_cpu() -> float:
    """CPU seconds used so far by the live threads Prefactor started (``prefactor-*``); 0.0
    where a thread's CPU clock cannot be read."""
    clock = getattr(time, "pthread_getcpuclockid", None)
    total = 0.0
    for thread in threading.enumerate():
        if clock is None or thread.ident is None or not thread.name.startswith("prefactor"):
            continue
        try:
            total += time.clock_gettime(clock(thread.ident))
        except (OSError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return total


def interleave(modes: Sequence[Mode], *, samples: int, batch: int) -> None:
    """Time ``batch`` runs of each mode per sample, ``samples`` times, modes interleaved.

    The order of the modes rotates every round, so slow drifts of the machine hit every mode
    alike. Each sample records seconds per run (wall clock, calling thread) in
    ``mode.samples`` and process CPU seconds per run (all threads, including the time of
    ``after``) in ``mode.cpu``.
    """
    count = len(modes)
    for index in range(samples):
        shift = index % count
        for mode in [*modes[shift:], *modes[:shift]]:
            if mode.before is not None:
                mode.before()
            gc.collect()
            export0 = prefactor_threads_cpu()
            cpu0 = time.process_time()
            start = time.perf_counter()
            for _ in range(batch):
                mode.run()
            elapsed = time.perf_counter() - start
            timed_cpu = time.process_time() - cpu0
            timed_export = prefactor_threads_cpu() - export0
            if mode.after is not None:
                extra = mode.after()
                if extra is not None:
                    mode.extra.append(extra / batch)
            cpu = time.process_time() - cpu0
            mode.samples.append(elapsed / batch)
            mode.cpu.append(cpu / batch)
            mode.agent_cpu.append((timed_cpu - timed_export) / batch)
            mode.export_cpu.append((prefactor_threads_cpu() - export0) / batch)


def median(values: Iterable[float]) -> float:
    """The median (0.0 for no values)."""
    items = list(values)
    return statistics.median(items) if items else 0.0


def fmt_ms(seconds: float, *, signed: bool = False) -> str:
    """Seconds as milliseconds with two decimals (``+`` sign when ``signed``)."""
    return f"{seconds * 1000:{'+' if signed else ''}.2f} ms"


def fmt_us(seconds: float, *, signed: bool = False) -> str:
    """Seconds as whole microseconds (``+`` sign when ``signed``)."""
    return f"{seconds * 1e6:{'+' if signed else ''},.0f} µs"


def verdict(ok: bool, *, quick: bool) -> str:
    """``met`` / ``MISSED`` (``n/a`` in a quick run, whose samples are too few to judge)."""
    if quick:
        return "n/a (quick)"
    return "met" if ok else "MISSED"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def environment() -> dict[str, str]:
    """The machine and library versions the figures were taken with."""
    from prefactor_http._version import __version__

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    facts = {
        "cores": str(affinity or os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "prefactor-integrations": __version__,
    }
    for name in (
        "langchain",
        "langchain-core",
        "langgraph",
        "langsmith",
        "langfuse",
        "openinference-instrumentation-langchain",
        "llama-index-core",
        "httpx",
        "httpx-aiohttp",
        "starlette",
        "uvicorn",
        "pydantic",
    ):
        facts[name] = _version(name)
    return facts
