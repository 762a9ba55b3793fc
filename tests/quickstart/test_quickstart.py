"""The quickstart as a new user runs it: a subprocess in a fresh working directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from prefactor_local.server import LocalServer

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "cookbook" / "quickstart.py"
RUNS = ("LangChain agent", "LangGraph graph", "LlamaIndex RAG query")
ENV_NAMES = ("PREFACTOR_API_URL", "PREFACTOR_API_TOKEN", "PREFACTOR_AGENT_ID")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_quickstart(
    cwd: Path, env: dict[str, str] | None = None, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the quickstart with a clean Prefactor environment plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    base["PREFACTOR_LOCAL_URL"] = f"http://127.0.0.1:{free_port()}"
    base["COLUMNS"] = "200"
    base.update(env or {})
    return subprocess.run(
        [sys.executable, str(QUICKSTART), *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=110,
    )


def show_json(cwd: Path, db: Path) -> list[dict[str, object]]:
    exe = Path(sys.executable).parent / "prefactor-local"
    out = subprocess.run(
        [str(exe), "show", "--json", "--db", str(db)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    traces: list[dict[str, object]] = json.loads(out.stdout)
    return traces


def span_types(tree: list[dict[str, object]]) -> set[str]:
    found: set[str] = set()
    for span in tree:
        found.add(str(span["schema_name"]))
        found |= span_types(span["children"])  # type: ignore[arg-type]
    return found


def test_local_run_prints_three_trees_and_keeps_them(tmp_path: Path) -> None:
    result = run_quickstart(tmp_path)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    for title in RUNS:
        assert title in out
    for span_type in (
        "langchain:agent",
        "langchain:node model",
        "langchain:llm",
        "langchain:tool",
        "langchain:node search_web",
        "langchain:node draft",
        "llama_index:query",
        "llama_index:retrieve",
        "llama_index:embedding",
        "llama_index:synthesize",
        "llama_index:llm",
    ):
        assert span_type in out, span_type
    assert "langchain:tool get_weather  complete" in out
    assert "langchain:llm scripted-gpt  complete" in out
    assert "tokens=" in out
    assert " complete " in out and "failed" not in out and "active" not in out
    assert "started in this process" in out

    db = tmp_path / ".prefactor" / "local.db"
    assert db.exists()
    assert str(db.resolve()) in out
    assert "prefactor-local show" in out and "--html trace.html" in out

    traces = show_json(tmp_path, db)
    assert len(traces) == 3
    assert {t["status"] for t in traces} == {"complete"}
    assert {t["agent_id"] for t in traces} == {"quickstart"}
    roots = {str(t["spans"][0]["schema_name"]) for t in traces}  # type: ignore[index]
    assert roots == {"langchain:agent", "llama_index:query"}
    every_type = set().union(*(span_types(t["spans"]) for t in traces))  # type: ignore[arg-type]
    assert {"langchain:tool", "langchain:chain", "llama_index:llm"} <= every_type
    for trace in traces:
        assert str(trace["id"]) in out


def test_reuses_a_local_server_that_is_already_running(tmp_path: Path) -> None:
    # Also behind a proxy (one that accepts nothing): loopback must not go through it.
    proxy = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    with LocalServer(db_path=tmp_path / "served.db") as server:
        result = run_quickstart(
            tmp_path,
            {"PREFACTOR_LOCAL_URL": server.url, "PREFACTOR_API_TOKEN": "", **proxy},
            "--db",
            str(tmp_path / "served.db"),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "already running" in result.stdout
        instances = server.store.list_instances()
    assert len(instances) == 3
    assert all(i["status"] == "complete" for i in instances)
    assert server.token not in result.stdout


def test_account_mode_traces_into_the_configured_account(tmp_path: Path) -> None:
    with LocalServer(db_path=tmp_path / "account.db") as account:
        env = {
            "PREFACTOR_API_URL": account.url,
            "PREFACTOR_API_TOKEN": account.token,
            "PREFACTOR_AGENT_ID": "my-agent",
        }
        result = run_quickstart(tmp_path, env)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        instances = account.store.list_instances()

    assert "Tracing into your Prefactor account" in out
    assert account.url in out
    assert account.token not in out
    assert len(instances) == 3
    assert {i["agent_id"] for i in instances} == {"my-agent"}
    assert {i["status"] for i in instances} == {"complete"}
    for instance in instances:
        assert instance["id"] in out
    # No local database and no local trees in account mode.
    assert not (tmp_path / ".prefactor").exists()
    assert "langchain:agent" not in out


def test_account_mode_with_a_wrong_token_fails_clearly(tmp_path: Path) -> None:
    with LocalServer(db_path=tmp_path / "account.db") as account:
        env = {
            "PREFACTOR_API_URL": account.url,
            "PREFACTOR_API_TOKEN": "wrong-token-123",
            "PREFACTOR_AGENT_ID": "my-agent",
        }
        result = run_quickstart(tmp_path, env)
        stored = account.store.list_instances()
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "could not be delivered" in out
    assert "PREFACTOR_API_TOKEN" in out
    assert "wrong-token-123" not in out
    assert "Traceback" not in out
    assert stored == []


@pytest.mark.parametrize("missing", ENV_NAMES)
def test_half_configured_account_is_a_clear_error(tmp_path: Path, missing: str) -> None:
    env = {
        name: "x" if name != "PREFACTOR_API_URL" else "https://example.invalid"
        for name in ENV_NAMES
    }
    env[missing] = ""
    result = run_quickstart(tmp_path, env)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert f"{missing} is not" in out
    assert "Traceback" not in out
