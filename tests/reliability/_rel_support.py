"""Shared pieces of the reliability tests: a scripted agent, clients, and reads of what arrived.

Also importable by the scripts the tests run in subprocesses (this folder and its parent are
put on their ``PYTHONPATH``), so a child process builds the very same agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _span_tree import tree_lines
from langchain.agents import create_agent
from langchain_core.tools import BaseTool, tool

from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
from prefactor_core.payloads import PayloadPolicy
from prefactor_http.config import HttpClientConfig
from prefactor_integrations.testing import ScriptedChatModel
from prefactor_local.server import LocalServer

HERE = Path(__file__).resolve().parent
ANSWER = "The answer is 5"
QUESTION = {"messages": [("user", "What is 2 + 3?")]}
FINISHED = ("complete", "failed", "cancelled")

# The span tree of one run of `make_agent()`'s agent, schema and name per line.
AGENT_OUTLINE = (
    "langchain:agent LangGraph",
    "  langchain:node model",
    "    langchain:llm scripted-1",
    "  langchain:node tools",
    "    langchain:tool add",
    "  langchain:node model",
    "    langchain:llm scripted-1",
)
SPANS_PER_RUN = len(AGENT_OUTLINE)


def scripted_model(tool_name: str, tool_args: dict[str, Any] | None = None) -> ScriptedChatModel:
    """The public scripted model: calls ``tool_name`` once with ``tool_args`` (the objects
    themselves, hostile ones included), then answers ``ANSWER``; no token usage."""
    return ScriptedChatModel(
        model_name="scripted-1",
        tool_calls=[
            {"name": tool_name, "args": {"a": 2, "b": 3} if tool_args is None else tool_args}
        ],
        answer=ANSWER,
        tool_call_text="Let me compute that",
        report_usage=False,
    )


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def make_agent(
    tools: Sequence[BaseTool] | None = None, *, tool_args: dict[str, Any] | None = None
) -> Any:
    """``langchain.agents.create_agent`` with the scripted model calling the first tool."""
    tools = list(tools) if tools is not None else [add]
    return create_agent(scripted_model(tools[0].name, tool_args), tools)


def answer_of(result: Any) -> str:
    """The agent's final answer."""
    return str(result["messages"][-1].content)


# -- clients ----------------------------------------------------------------------------------


def fast_http(server: LocalServer, **overrides: Any) -> HttpClientConfig:
    """HTTP settings for ``server`` with short timeouts and quick retries."""
    values: dict[str, Any] = {
        "api_url": server.url,
        "api_token": server.token,
        "request_timeout": 5.0,
        "max_retries": 4,
        "initial_retry_delay": 0.01,
        "max_retry_delay": 0.05,
    }
    values.update(overrides)
    return HttpClientConfig(**values)


def make_client(
    http: HttpClientConfig,
    *,
    policy: PayloadPolicy | None = None,
    poll: float | None = None,
    **queue: Any,
) -> PrefactorCoreClient:
    """A core client; keyword arguments set `QueueConfig` fields."""
    config = PrefactorCoreConfig(
        http_config=http,
        queue_config=QueueConfig(**queue),
        payload_policy=policy or PayloadPolicy(),
        termination_poll_interval=poll,
    )
    return PrefactorCoreClient(config)


# -- what the server stored -------------------------------------------------------------------


def all_spans(server: LocalServer) -> list[dict[str, Any]]:
    """Every stored span of every instance."""
    return [s for i in server.store.list_instances() for s in server.store.list_spans(i["id"])]


def outline(spans: list[dict[str, Any]]) -> tuple[str, ...]:
    """The span tree as indented ``schema name`` lines, siblings in start order."""

    def line(span: dict[str, Any]) -> str:
        payload = span.get("payload") or {}
        name = payload.get("tool_name") or payload.get("node") or payload.get("name") or ""
        if span["schema_name"] == "langchain:llm":
            name = payload.get("model_name") or name
        return f"{span['schema_name']} {name}".rstrip()

    return tuple(tree_lines(spans, line))


@dataclass(frozen=True)
class Tally:
    """Spans expected, stored, stored more than once, and missing."""

    expected: int
    stored: int
    duplicated: int
    lost: int


def tally(server: LocalServer, runs: int, spans_per_run: int = SPANS_PER_RUN) -> Tally:
    """Count the spans of ``runs`` agent runs: a span is one LangChain run id; it counts as
    duplicated when it was stored more than once, and an instance as duplicated when two
    instances were made for one top-level run."""
    spans = all_spans(server)
    per_run = Counter((s.get("payload") or {}).get("run_id") for s in spans)
    per_root = Counter(i.get("external_identifier") for i in server.store.list_instances())
    duplicated = sum(n - 1 for n in per_run.values() if n > 1)
    duplicated += sum(n - 1 for n in per_root.values() if n > 1)
    expected = runs * spans_per_run
    distinct = len(per_run)
    return Tally(expected, len(spans), duplicated, max(0, expected - distinct))


def check_runs(server: LocalServer, runs: int, *, status: str = "complete") -> Tally:
    """Every instance stored once, finished with ``status``, with the agent's whole tree."""
    instances = server.store.list_instances()
    assert len(instances) == runs, [i["external_identifier"] for i in instances]
    for instance in instances:
        assert instance["status"] == status, instance
        spans = server.store.list_spans(instance["id"])
        assert outline(spans) == AGENT_OUTLINE, "\n".join(outline(spans))
        assert all(s["status"] in FINISHED and s["finished_at"] for s in spans)
    return tally(server, runs)


def raw_rows(server: LocalServer) -> Iterator[tuple[str, str | None, str | None]]:
    """(span id, payload JSON text, result_payload JSON text) exactly as stored."""
    with server.store.read() as conn:
        rows = conn.execute("SELECT id, payload, result_payload FROM agent_spans").fetchall()
    for row in rows:
        yield str(row["id"]), row["payload"], row["result_payload"]


def strict_json(text: str) -> Any:
    """Parse JSON that must be standard (NaN and infinities are not)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def json_bytes(value: Any) -> int:
    """Compact UTF-8 JSON size (the measure payload caps are given in)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def wire_bodies(server: LocalServer) -> bytes:
    """Every request body the server received, concatenated."""
    return b"\n".join(request.body for request in server.requests)


# -- subprocesses -----------------------------------------------------------------------------


# Put first in a script: once the exit-time drain is done, prints each client in ``CLIENTS``
# with its ``stats()`` (registered before anything of ours, so it runs after all of it).
STATS_AT_EXIT = """
import atexit as _atexit, json as _json, os as _os

CLIENTS = []


@_atexit.register
def _print_stats():
    for _client in CLIENTS:
        print("STATS", _os.getpid(), _json.dumps(_client.stats().as_dict()), flush=True)
"""


def exit_stats(stdout: str) -> list[dict[str, Any]]:
    """The ``stats()`` each process printed at exit (see `STATS_AT_EXIT`)."""
    return [
        json.loads(line.split(" ", 2)[2])
        for line in stdout.splitlines()
        if line.startswith("STATS ")
    ]


def _script_env(server: LocalServer, env: dict[str, str]) -> dict[str, str]:
    variables = dict(os.environ)
    variables.update(server.env)
    variables["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(HERE.parent), *filter(None, [variables.get("PYTHONPATH")])]
    )
    variables.update(env)
    return variables


def start_script(script: str, server: LocalServer, **env: str) -> subprocess.Popen[str]:
    """Start ``script`` like `run_script`, without waiting for it (to signal it, say)."""
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_script_env(server, env),
    )


def run_script(
    script: str, server: LocalServer, *, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter pointed at ``server`` (``PREFACTOR_*`` set)."""
    variables = _script_env(server, env)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=variables,
        check=False,
    )


# -- the report table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the reliability table."""

    scenario: str
    operations: int
    expected: int
    stored: int
    duplicated: int
    lost: int


REPORT: list[Row] = []


def report(scenario: str, operations: int, counted: Tally) -> None:
    """Add a line to the table printed at the end of the session."""
    REPORT.append(
        Row(
            scenario,
            operations,
            counted.expected,
            counted.stored,
            counted.duplicated,
            counted.lost,
        )
    )
