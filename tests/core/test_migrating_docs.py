"""docs/migrating.md: each published SDK example runs unchanged against the local server, and
its migration is a one-line dependency change."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prefactor_local.server import LocalServer

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "migrating.md"
EXAMPLE = re.compile(
    r"<!-- published-example: (?P<package>[\w-]+) -->\n```python\n(?P<code>.*?)^```\n"
    r".*?```diff\n(?P<diff>.*?)^```",
    re.S | re.M,
)


def examples() -> dict[str, tuple[str, str]]:
    """Published package -> (example code, dependency diff)."""
    text = PAGE.read_text(encoding="utf-8")
    return {m["package"]: (m["code"], m["diff"]) for m in EXAMPLE.finditer(text)}


def run_example(package: str, server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", server.url)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", server.token)
    code, _ = examples()[package]
    exec(compile(code, f"{PAGE.name}:{package}", "exec"), {"__name__": "__main__"})


def project_name() -> str:
    """The distribution name in pyproject.toml's ``[project]`` table."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^\[project\]\n(?:.*\n)*?name = "([^"]+)"', text, re.M)
    assert match is not None
    return match.group(1)


def test_the_page_has_an_example_for_each_published_package() -> None:
    assert set(examples()) == {"prefactor-core", "prefactor-http", "prefactor-langchain"}


@pytest.mark.parametrize("package", ["prefactor-core", "prefactor-http", "prefactor-langchain"])
def test_the_migration_is_one_dependency_line(package: str) -> None:
    _, diff = examples()[package]
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    assert len(removed) == len(added) == 1
    assert removed[0].startswith(package)
    assert added[0] == project_name()


def test_the_published_core_example_is_stored_as_written(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_example("prefactor-core", local_server, monkeypatch)
    [instance] = local_server.store.list_instances()
    assert instance["status"] == "complete"
    assert instance["quality_payloads"] == {"accuracy": {"score": 0.9}}
    spans = local_server.store.list_spans(instance["id"])
    assert [
        (span["schema_name"], span["status"], span["payload"], span["result_payload"])
        for span in spans
    ] == [
        ("agent:llm", "complete", {"model": "gpt-4o"}, {"text": "Hello!"}),
        ("agent:llm", "complete", {"model": "gpt-4o-mini"}, {"text": "Bye!"}),
    ]
    [schema_version] = local_server.store.list_agent_schema_versions()
    assert "agent:llm" in str(schema_version)


def test_the_published_http_example_is_stored_as_written(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_example("prefactor-http", local_server, monkeypatch)
    [instance] = local_server.store.list_instances()
    assert instance["status"] == "complete"
    spans = local_server.store.list_spans(instance["id"])
    assert [(span["status"], span["payload"]) for span in spans] == [
        ("complete", {"step": 1}),
        ("active", {"step": 2}),
    ]
    assert spans[0]["result_payload"] == {"ok": True}


def test_the_published_middleware_example_stores_one_instance_per_run(
    local_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_example("prefactor-langchain", local_server, monkeypatch)
    stored = sorted(local_server.store.list_instances(), key=lambda i: i["started_at"])
    assert [i["status"] for i in stored] == ["complete", "complete"]
    replies = []
    for instance in stored:
        spans = sorted(local_server.store.list_spans(instance["id"]), key=lambda s: s["started_at"])
        assert [s["schema_name"] for s in spans] == [
            "langchain:agent",
            "langchain:node",
            "langchain:llm",
        ]
        assert all(s["status"] == "complete" for s in spans)
        replies.append(spans[2]["result_payload"]["outputs"]["messages"][0]["content"])
    assert replies == ["Hello!", "Hello again!"]
