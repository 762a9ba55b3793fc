"""5. Memory under an outage: peak RSS while spans are made with the server down.

Each mode runs in a fresh child process (``python -m benchmarks.memory N``) that points a
client at a loopback port where nothing listens, makes N spans (instances of 100 spans with
realistic payloads), and reports its peak resident set (``VmHWM``) and the client's
``stats()``. With a bounded buffer the peak must stay about the same whether 10 times more
spans are made: what does not fit is dropped and counted.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import Row, Settings, median, verdict

NAME = "memory"
TITLE = "5 Memory under outage"
SPANS_PER_INSTANCE = 100
PAYLOAD_TEXT = "The quick brown fox jumps over the lazy dog. " * 10
AGENT_VERSION = {"name": "benchmark-agent", "external_identifier": "memory-v1"}

__all__ = ["NAME", "TITLE", "run"]

_ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def child(spans: int) -> dict[str, Any]:
    """Make ``spans`` spans against a server that is down; the peak RSS and the counters."""
    from benchmarks._server import make_client

    client = make_client(_dead_url(), "pfl_benchmark", shutdown_timeout=0.0)
    tracer = client.tracer
    tracer.connect()
    baseline = _peak_rss_mb()
    made = 0
    while made < spans:
        instance = tracer.start_instance(agent_version=AGENT_VERSION)
        for step in range(min(SPANS_PER_INSTANCE, spans - made)):
            span = tracer.create_span(
                instance, "bench:step", payload={"input": PAYLOAD_TEXT, "step": step}
            )
            tracer.finish_span(span, result_payload={"output": PAYLOAD_TEXT, "tokens": step})
            made += 1
        tracer.finish_instance(instance)
    stats = client.stats()
    return {
        "baseline_mb": baseline,
        "peak_mb": _peak_rss_mb(),
        "dropped": stats.dropped,
        "queued": stats.queued,
        "pending": stats.pending,
        "cap": client.config.queue_config.max_buffered_operations,
    }


def _measure(spans: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", str(spans)],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per span count."""
    small, large = (1_000, 10_000) if settings.quick else (10_000, 100_000)
    repeats = 1 if settings.quick else max(1, min(settings.runs, 3))
    results: dict[int, list[dict[str, Any]]] = {small: [], large: []}
    for _ in range(repeats):
        for spans in (small, large):
            results[spans].append(_measure(spans))
    rows = []
    growth = {}
    for spans in (small, large):
        runs = results[spans]
        peak = median(r["peak_mb"] for r in runs)
        base = median(r["baseline_mb"] for r in runs)
        growth[spans] = peak - base
        last = runs[-1]
        rows.append(
            Row(
                TITLE,
                f"{spans:,} spans, server down",
                f"{peak:.1f} MB peak RSS",
                f"+{peak - base:.1f} MB over the {base:.1f} MB before; "
                f"{last['dropped']:,} operations dropped, {last['pending']:,} pending "
                f"(buffer cap {last['cap']:,})",
            )
        )
    bounded = growth[large] <= max(1.5 * growth[small], growth[small] + 10.0)
    rows[-1] = Row(
        rows[-1].benchmark,
        rows[-1].case,
        rows[-1].result,
        rows[-1].detail,
        f"growth ≈ the {small:,}-span run's (bounded by the cap)",
        verdict(bounded, quick=settings.quick),
    )
    return rows


if __name__ == "__main__":
    print(json.dumps(child(int(sys.argv[1]))), flush=True)
    sys.stdout.flush()
    # The client's buffer still holds what could not be sent; nothing waits for it.
    import os

    os._exit(0)
