"""The benchmark command runs end to end and prints a row for every benchmark (no timings
are judged here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TITLES = (
    "1 LangChain overhead",
    "2 API latency",
    "3 LlamaIndex overhead",
    "4 Export throughput",
    "5 Memory under outage",
    "6 Delivery",
    "7 Agent's thread per callback",
)


@pytest.mark.timeout(180)
def test_quick_run_prints_every_benchmark(tmp_path: Path) -> None:
    rows_file = tmp_path / "rows.json"
    env = dict(os.environ, COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(rows_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for title in TITLES:
        assert title in out, out
    rows = json.loads(rows_file.read_text())["rows"]
    assert {row["benchmark"] for row in rows} == set(TITLES)
    cases = {row["case"] for row in rows}
    for case in (
        "no callbacks",
        "no-op BaseCallbackHandler",
        "PrefactorCallbackHandler",
        "PrefactorCallbackHandler, one request per operation",
        "PrefactorCallbackHandler: export CPU per operation",
        "LangSmith LangChainTracer",
        "Langfuse CallbackHandler",
        "OpenInference LangChain tracer",
        "model answers after 20 ms: PrefactorCallbackHandler",
        "instant model: server answers after 200 ms",
        "model takes 20 ms: server answers after 200 ms",
        "instrument()",
        "coalesced + bulk (200 items)",
        "server alone: POST /bulk",
        "10,000 spans, server down",
    ):
        assert case in cases, sorted(cases)
    langchain = {row["case"]: row for row in rows if row["benchmark"] == "1 LangChain overhead"}
    for case in ("no callbacks", "no-op BaseCallbackHandler", "LangSmith LangChainTracer"):
        assert langchain[case]["result"].endswith(" CPU/run"), langchain[case]
    ours = langchain["PrefactorCallbackHandler"]
    assert ours["result"].endswith(" CPU/run"), ours
    for part in ("HTTP requests/run", "operations/run", "/operation", "0 failed"):
        assert part in ours["detail"], ours
    assert ours["target"] and ours["verdict"] == "n/a (quick)", ours
    for case in ("Langfuse CallbackHandler", "OpenInference LangChain tracer"):
        row = langchain[case]
        assert row["result"].endswith(" CPU/run") or "not installed" in row["detail"], row
    throughput = [row for row in rows if row["benchmark"] == "4 Export throughput"]
    assert all("NOT all stored" not in row["detail"] for row in throughput), throughput
    delivery = {row["case"]: row for row in rows if row["benchmark"] == "6 Delivery"}
    assert set(delivery) == {
        "API 100 ms away, 20 runs/s",
        "API 300 ms away, 20 runs/s",
        "4 agent threads back to back",
        "API down (503) at 10 runs/s, then back",
    }, delivery
    for row in delivery.values():
        assert "stored whole" in row["detail"] and "ONLY" not in row["detail"], row
        assert " 0 dropped, 0 failed" in row["detail"], row
        assert row["target"] and row["verdict"] == "n/a (quick)", row
    path = {row["case"]: row for row in rows if row["benchmark"] == "7 Agent's thread per callback"}
    for case in ("on_chain_start", "on_chat_model_start", "on_llm_end", "on_tool_start"):
        assert path[case]["result"].endswith(" µs"), path
    assert path["average per callback"]["target"] == "≤ 15 µs", path
    assert " 0 failed" in path["agent's thread per run, export on"]["detail"], path
    assert path["first traced run in a process"]["result"].endswith(" ms CPU"), path
    assert "cores" in out and "python" in out


def test_only_and_runs_select_what_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "memory", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5 Memory under outage" in result.stdout
    assert "1 LangChain overhead" not in result.stdout


def test_unknown_benchmark_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
