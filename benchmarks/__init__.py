"""Benchmarks of prefactor-integrations: overhead, latency independence, throughput, memory
and delivery.

Run ``python -m benchmarks`` (``--quick`` for a short smoke run, ``--only NAME`` for one
benchmark, ``--runs N`` for more samples); see docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

from benchmarks._common import Row, Settings

__all__ = ["BENCHMARKS", "Row", "Settings"]

BENCHMARKS: tuple[str, ...] = (
    "langchain",
    "latency",
    "llama_index",
    "throughput",
    "memory",
    "delivery",
    "agent_path",
)
"""Benchmark names, in the order they run (each is a module of this package)."""
