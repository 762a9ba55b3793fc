"""1. LangChain overhead: the CPU that tracing adds to one agent run, export included.

``langchain.agents.create_agent`` with a fake tool-calling model (two model calls and one tool
call per run: 7 spans), run with no callbacks, with a no-op ``BaseCallbackHandler``, with our
``PrefactorCallbackHandler`` (default settings: whole runs per bulk request; then with one
request per operation, as for a server without the bulk endpoint) sending to a local server,
and with the peers' tracers (`benchmarks._peers`) sending to a sink that answers 200 to
anything. Every server runs in a child process.

A sample is a batch of runs followed by the mode's flush, which waits until the mode's tracer
has sent everything; its cost is the CPU time of the whole benchmark process (every thread:
the agent's and the exporters') across runs and flush, per run. The modes are interleaved in
one process; "added" is the difference of the medians from the runs with no callbacks.

With a model that takes ``MODEL_LATENCY`` per reply, as any hosted model does, the wall time
of a run with and without our handler is compared too: the exporter then works while the
agent waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from benchmarks._agents import INPUT, NoopHandler, build_agent
from benchmarks._common import Mode, Row, Settings, fmt_ms, fmt_us, interleave, median, verdict
from benchmarks._peers import FLUSH_TIMEOUT, Traced, start_peers
from benchmarks._server import ServerProcess, make_client
from prefactor_core import ExportStats, PrefactorCoreClient

NAME = "langchain"
TITLE = "1 LangChain overhead"
TARGET_SECONDS = 1.0e-3
TARGET_PEER_SHARE = 1 / 3
MODEL_LATENCY = 0.02
OURS = "PrefactorCallbackHandler"
SINGLE = f"{OURS}, one request per operation"
# Our handler's configurations: the default first (the one the target is for).
VARIANTS: dict[str, dict[str, Any]] = {OURS: {}, SINGLE: {"bulk_max_items": 0}}
# Export CPU per operation: at most this much with bulk (the default), and one per request.
EXPORT_TARGETS = {OURS: 30e-6, SINGLE: 150e-6}

__all__ = ["NAME", "TITLE", "run"]


def _invoker(agent: Any, callbacks: list[Any] | None) -> Callable[[], Any]:
    config: Any = {"callbacks": callbacks} if callbacks else None
    return lambda: agent.invoke(INPUT, config=config)


def _timed(flush: Callable[[], object]) -> Callable[[], float]:
    def after() -> float:
        start = time.perf_counter()
        flush()
        return time.perf_counter() - start

    return after


def _mode(agent: Any, traced: Traced) -> Mode:
    return Mode(traced.label, _invoker(agent, [traced.handler]), after=_timed(traced.flush))


def _warm(modes: list[Mode], runs: int) -> None:
    for mode in modes:
        for _ in range(runs):
            mode.run()
        if mode.after is not None:
            mode.after()


def _start_ours(stack: ExitStack) -> tuple[list[Traced], list[PrefactorCoreClient]]:
    from prefactor_integrations.langchain import PrefactorCallbackHandler

    traced, clients = [], []
    for label, settings in VARIANTS.items():
        server = stack.enter_context(ServerProcess())
        client = make_client(server.url, server.token, **settings)
        handler = PrefactorCallbackHandler(client, agent_name="benchmark-agent")
        stack.callback(handler.close, timeout=10)
        traced.append(Traced(label, handler, partial(client.tracer.flush, FLUSH_TIMEOUT), server))
        clients.append(client)
    return traced, clients


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per mode."""
    agent = build_agent()
    warmup = 2 if settings.quick else 10
    runs = settings.runs * settings.batch
    with ExitStack() as stack:
        ours, clients = _start_ours(stack)
        peers, missing = start_peers(stack)
        traced = [*ours, *peers]
        modes = [
            Mode("none", _invoker(agent, None)),
            Mode("noop", _invoker(agent, [NoopHandler()])),
            *(_mode(agent, each) for each in traced),
        ]
        _warm(modes, warmup)
        requests0 = [each.server.requests() for each in traced]
        queued0 = [client.stats().queued for client in clients]
        interleave(modes, samples=settings.runs, batch=settings.batch)
        requests = [
            (each.server.requests() - r0) / runs for each, r0 in zip(traced, requests0, strict=True)
        ]
        ops = [(c.stats().queued - q0) / runs for c, q0 in zip(clients, queued0, strict=True)]
        stats = [client.stats() for client in clients]
        slow = _slow_rows(ours[0], settings)

    base, noop, *measured = modes
    added = {mode.name: median(mode.cpu) - median(base.cpu) for mode in modes}
    best = min((peer.label for peer in peers), key=added.__getitem__, default=None)
    rows = [
        Row(
            TITLE,
            "no callbacks",
            f"{fmt_ms(median(base.cpu))} CPU/run",
            "baseline: CPU of the whole process per run, runs and flush; "
            f"wall {fmt_ms(median(base.samples))}/run",
        ),
        Row(
            TITLE,
            "no-op BaseCallbackHandler",
            f"{fmt_ms(added['noop'], signed=True)} CPU/run",
            f"wall {fmt_ms(median(noop.samples) - median(base.samples), signed=True)}/run",
        ),
    ]
    for index, (mode, each) in enumerate(zip(measured, traced, strict=True)):
        detail = (
            f"wall {fmt_ms(median(mode.samples) - median(base.samples), signed=True)}/run, "
            f"then flush {fmt_ms(median(mode.extra))}/run; "
            f"{requests[index]:.2f} HTTP requests/run"
        )
        target = judged = ""
        if index < len(ours):
            detail += "; " + _export_detail(mode, base, ops[index], stats[index])
            if best is not None:
                detail += f"; {_ratio(added[each.label], added[best])}x {best}'s"
        if each.label == OURS:
            limit = TARGET_SECONDS
            if best is not None:
                limit = min(limit, added[best] * TARGET_PEER_SHARE)
            target = "≤ +1.00 ms/run and ≤ 1/3 of the best peer's"
            judged = verdict(added[OURS] <= limit, quick=settings.quick)
        result = f"{fmt_ms(added[each.label], signed=True)} CPU/run"
        rows.append(Row(TITLE, each.label, result, detail, target, judged))
        if each.label in EXPORT_TARGETS:
            per_op = median(mode.export_cpu) / ops[index] if ops[index] else 0.0
            limit = EXPORT_TARGETS[each.label]
            rows.append(
                Row(
                    TITLE,
                    f"{each.label}: export CPU per operation",
                    fmt_us(per_op),
                    "the export thread and its I/O threads, per queued operation, flush included",
                    f"≤ {fmt_us(limit)}",
                    verdict(per_op <= limit, quick=settings.quick),
                )
            )
    rows += [Row(TITLE, label, "skipped", note) for label, note in missing.items()]
    return rows + slow


def _export_detail(mode: Mode, base: Mode, ops: float, stats: ExportStats) -> str:
    """Where our CPU goes: the export thread (per operation), the agent's threads."""
    export = median(mode.export_cpu)
    agent = median(mode.agent_cpu) - median(base.agent_cpu)
    return (
        f"{ops:.1f} operations/run; export thread {fmt_ms(export)} CPU/run, "
        f"{fmt_us(export / ops if ops else 0.0)}/operation; "
        f"agent's threads {fmt_ms(agent, signed=True)} CPU/run; "
        f"{stats.sent} sent, {stats.failed} failed, {stats.dropped} dropped"
    )


def _ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}" if reference > 0 else "-"


def _slow_rows(ours: Traced, settings: Settings) -> list[Row]:
    """Wall time per run with a model that takes `MODEL_LATENCY` per reply."""
    slow_agent = build_agent(model_latency=MODEL_LATENCY)
    modes = [Mode("none", _invoker(slow_agent, None)), _mode(slow_agent, ours)]
    _warm(modes, 2)
    interleave(modes, samples=settings.runs, batch=settings.batch)
    base = median(modes[0].samples)
    added = median(modes[1].samples) - base
    model = f"model answers after {MODEL_LATENCY * 1000:.0f} ms"
    return [
        Row(
            TITLE,
            f"{model}: no callbacks",
            f"{fmt_ms(base)}/run",
            "baseline (wall time per run); the exporter works while the agent waits for the model",
        ),
        Row(
            TITLE,
            f"{model}: {OURS}",
            f"{fmt_ms(added, signed=True)}/run",
            f"{added / base:+.1%} wall; export thread {fmt_ms(median(modes[1].export_cpu))} "
            "CPU/run",
        ),
    ]
