"""docs/*.md: every Python example compiles; the cheap ones run for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append((page.name, line, match.group(1)))
    return found


BLOCKS = blocks()


def test_the_docs_have_python_examples() -> None:
    pages = {name for name, _, _ in BLOCKS}
    assert {"configuration.md", "migrating.md", "testing.md", "local-server.md"} <= pages


@pytest.mark.parametrize(("page", "line", "code"), BLOCKS, ids=[f"{p}:{n}" for p, n, _ in BLOCKS])
def test_python_block_compiles(page: str, line: int, code: str) -> None:
    compile(code, f"{page}:{line}", "exec")


def example(page: str, needle: str) -> str:
    return next(code for name, _, code in BLOCKS if name == page and needle in code)


def test_configuration_client_example_builds_a_client() -> None:
    namespace: dict[str, object] = {}
    exec(example("configuration.md", "PrefactorCoreClient(config)"), namespace)
    client = namespace["client"]
    assert client.config.http_config.request_timeout == 10.0  # type: ignore[attr-defined]
    assert client.config.payload_policy.max_field_chars == 2_000  # type: ignore[attr-defined]


def test_local_server_examples_run() -> None:
    namespace: dict[str, object] = {}
    exec(example("local-server.md", "load_traces(server.store)"), namespace)
    exec(example("local-server.md", "FaultConfig(error_rate=0.3"), namespace)


def test_links_between_pages_resolve() -> None:
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|png))(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_own_spans_example_nests_a_framework_run(tmp_path: Path) -> None:
    import asyncio

    from langchain_core.runnables import RunnableLambda

    from prefactor_integrations.testing import TraceRecorder, assert_outline

    namespace: dict[str, object] = {}
    exec(example("span-types.md", "async def nightly_report"), namespace)
    agent = RunnableLambda(lambda state: sum(state["rows"]), name="summarise")
    with TraceRecorder(tmp_path / "docs.db") as recorder, recorder.environment():
        run = namespace["nightly_report"](agent, recorder.langchain_handler())  # type: ignore[operator]
        asyncio.run(run)
        trace = recorder.trace()
    assert trace.status == "complete"
    assert_outline(
        trace,
        """
        report:fetch [complete]
        report:summarise
          langchain:agent summarise [complete]
        """,
    )
