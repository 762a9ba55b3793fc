"""``python -m benchmarks [--quick] [--only NAME ...] [--runs N] [--json FILE]``: run the
benchmarks and print one table."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks import BENCHMARKS
from benchmarks._common import Row, Settings, environment

_MODULES = {
    "langchain": "benchmarks.langchain_overhead",
    "latency": "benchmarks.api_latency",
    "llama_index": "benchmarks.llama_index_overhead",
    "throughput": "benchmarks.throughput",
    "memory": "benchmarks.memory",
    "delivery": "benchmarks.delivery",
    "agent_path": "benchmarks.agent_path",
}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure what Prefactor tracing costs an agent (see docs/benchmarks.md).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny workloads: a smoke run, not a measurement"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--runs", type=int, metavar="N", help="samples per mode (default 15; 3 with --quick)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")
    return parser


def table(rows: Sequence[Row], title: str) -> Table:
    """The rows as a rich table."""
    result = Table(title=title, show_lines=False)
    for header in ("Benchmark", "Case", "Result", "Detail", "Target", "Verdict"):
        result.add_column(header, overflow="fold")
    previous = None
    for row in rows:
        shown = row.benchmark if row.benchmark != previous else ""
        previous = row.benchmark
        style = "red" if row.verdict == "MISSED" else None
        result.add_row(
            shown, row.case, row.result, row.detail, row.target, row.verdict, style=style
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks and print the table."""
    args = build_parser().parse_args(argv)
    if args.runs is not None and args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    settings = Settings.make(quick=args.quick, runs=args.runs)
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    console = Console(width=max(Console().width, 160))
    facts = environment()
    console.print(", ".join(f"{key} {value}" for key, value in facts.items()))
    rows: list[Row] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(_MODULES[name])
        with console.status(f"running {name}..."):
            begun = time.perf_counter()
            rows.extend(module.run(settings))
        console.print(f"{name}: done in {time.perf_counter() - begun:.1f} s")
    mode = "quick" if settings.quick else f"{settings.runs} samples x {settings.batch} runs"
    title = f"prefactor-integrations benchmarks ({mode}, {time.perf_counter() - started:.0f} s)"
    console.print(table(rows, title))
    if args.json is not None:
        args.json.write_text(
            json.dumps({"environment": facts, "rows": [asdict(row) for row in rows]}, indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
