"""The examples in README.md and docs/*.md work as pasted.

Every ```python block runs, in a fresh namespace holding the objects the examples name but do
not build (``agent``, ``inputs``, ``handler``, ``graph``, ``state``, ``model``, ``tools``,
``index``, ``query_engine``; see `given`), with ``PREFACTOR_API_URL``, ``PREFACTOR_API_TOKEN``
and ``PREFACTOR_AGENT_ID`` pointing at a local server started for the test. An example that
spells out the account's URL (``https://app.prefactorai.com``) and a placeholder token
(``"..."``, ``"your-api-token"``) has them replaced by the server's. Test functions a block
defines (docs/testing.md) are called with a `TraceRecorder`, as the ``prefactor_trace``
fixture would.

A block that cannot run on its own (code of another package, shown for comparison) is marked
by the line ``<!-- example: not run (why) -->`` right above its fence; such blocks are only
compiled, and `test_blocks_marked_not_run_are_few` lists them.

Shell blocks: every ``prefactor-local`` command shown parses with the real command's options,
and every ``./scripts/...`` command exists.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<code>.*?)^```", re.S | re.M)
NOT_RUN = re.compile(r"<!-- example: not run \((?P<why>[^)]+)\) -->\s*$")
ACCOUNT_URL = "https://app.prefactorai.com"
PLACEHOLDER_TOKENS = ('api_token="..."', 'api_token="your-api-token"')
MAX_NOT_RUN = 3


class Block(NamedTuple):
    page: str
    line: int
    lang: str
    code: str
    not_run: str | None  # why, for a marked block

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = NOT_RUN.search(before)
            found.append(
                Block(
                    page.relative_to(ROOT).as_posix(),
                    text.count("\n", 0, match.start()) + 2,
                    match.group("lang"),
                    match.group("code"),
                    marker.group("why") if marker else None,
                )
            )
    return found


BLOCKS = blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
RUN = [b for b in PYTHON if b.not_run is None]
SHELL = [b for b in BLOCKS if b.lang in ("bash", "sh", "shell", "console")]


# -- the objects the examples name ----------------------------------------------------------


@pytest.fixture
def docs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local server, the ``PREFACTOR_*`` variables pointing at it, no tracing left behind."""
    import prefactor_integrations
    from prefactor_integrations.langchain import uninstrument as lc_uninstrument
    from prefactor_integrations.llama_index import uninstrument as li_uninstrument
    from prefactor_local.server import LocalServer

    with LocalServer(db_path=tmp_path / "docs.db") as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("PREFACTOR_AGENT_ID", "docs-agent")
        monkeypatch.delenv("PREFACTOR_TRACING", raising=False)
        monkeypatch.chdir(tmp_path)
        try:
            yield server
        finally:
            prefactor_integrations.flush(timeout=10.0)
            lc_uninstrument()
            li_uninstrument()


def given(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the examples take as given: an agent and its inputs, a handler, a LangGraph graph
    and its state, a model and tools, a LlamaIndex index and query engine."""
    from typing import TypedDict

    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langgraph.graph import END, START, StateGraph
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    from prefactor_integrations.langchain import PrefactorCallbackHandler
    from prefactor_integrations.testing import ScriptedChatModel

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"{city}: sunny"

    model = ScriptedChatModel(
        tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}}],
        answer="It is sunny in Paris.",
    )

    class State(TypedDict, total=False):
        question: str
        answer: str

    def answer(state: State) -> State:
        return {"answer": f"You asked: {state['question']}"}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)

    # The private fields: reading `Settings.llm` would resolve the default (OpenAI) LLM.
    monkeypatch.setattr(Settings, "_llm", MockLLM(max_tokens=5))
    monkeypatch.setattr(Settings, "_embed_model", MockEmbedding(embed_dim=8))
    index = VectorStoreIndex.from_documents([Document(text="The author grew up writing.")])
    return {
        "agent": create_agent(model, [get_weather]),
        "inputs": {"messages": [("user", "What is the weather in Paris?")]},
        "handler": PrefactorCallbackHandler(),
        "graph": builder.compile(),
        "state": {"question": "What is Prefactor?"},
        "model": model,
        "tools": [get_weather],
        "index": index,
        "query_engine": index.as_query_engine(),
    }


def pasted(block: Block, server: Any) -> str:
    """The block as a user with this server as their account would paste it."""
    code = block.code.replace(ACCOUNT_URL, server.url)
    for placeholder in PLACEHOLDER_TOKENS:
        code = code.replace(placeholder, f"api_token={server.token!r}")
    return code


# -- python blocks --------------------------------------------------------------------------


def test_the_pages_have_python_examples() -> None:
    pages = {b.page for b in PYTHON}
    assert {"README.md", "docs/configuration.md", "docs/testing.md"} <= pages
    assert len(RUN) >= 20


@pytest.mark.parametrize("block", RUN, ids=[b.where for b in RUN])
def test_python_example_runs_as_pasted(
    block: Block, docs_env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefactor_integrations.testing import TraceRecorder

    namespace: dict[str, Any] = {"__name__": "docs_example", **given(monkeypatch)}
    exec(compile(pasted(block, docs_env), block.where, "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    for number, test in enumerate(tests):
        recorder = TraceRecorder(tmp_path / f"recorder-{number}.db")
        with recorder, recorder.environment():
            test(recorder)


def test_blocks_marked_not_run_are_few() -> None:
    marked = [b for b in PYTHON if b.not_run is not None]
    listing = "\n".join(f"  {b.where}: {b.not_run}" for b in marked)
    print(f"{len(marked)} of {len(PYTHON)} python examples not run (marked):\n{listing}")
    assert len(marked) <= MAX_NOT_RUN, listing
    for block in marked:
        compile(block.code, block.where, "exec")


# -- shell blocks ---------------------------------------------------------------------------


def shell_lines() -> Iterator[tuple[str, list[str]]]:
    """Every command of the shell blocks, as words (continued lines joined)."""
    for block in SHELL:
        for line in block.code.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and not words[0].startswith("-"):
                yield block.where, words


def shell_commands(program: str) -> list[tuple[str, list[str]]]:
    """Every command of the shell blocks starting with ``program``, as arguments."""
    found = []
    for where, words in shell_lines():
        if words[0] == program:
            arguments = []
            for word in words[1:]:
                if word in (">", ">>", "|", "&&", ";"):
                    break
                arguments.append(word)
            found.append((where, arguments))
    return found


def test_prefactor_local_commands_in_the_docs_exist_with_those_options() -> None:
    from prefactor_local.cli import build_parser

    commands = shell_commands("prefactor-local")
    assert {args[0] for _, args in commands} >= {"serve", "show"}
    for where, args in commands:
        try:
            build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: prefactor-local {shlex.join(args)} is not a valid command")


def test_scripts_in_the_docs_exist() -> None:
    scripts = [(where, words[0]) for where, words in shell_lines() if words[0].startswith("./")]
    assert scripts
    for where, script in scripts:
        assert (ROOT / script).is_file(), f"{where}: {script} does not exist"


# -- examples checked more closely ----------------------------------------------------------


def example(page: str, needle: str) -> str:
    return next(b.code for b in PYTHON if b.page == page and needle in b.code)


def test_configuration_client_example_builds_a_client() -> None:
    namespace: dict[str, object] = {}
    exec(example("docs/configuration.md", "PrefactorCoreClient(config)"), namespace)
    client = namespace["client"]
    assert client.config.http_config.request_timeout == 10.0  # type: ignore[attr-defined]
    assert client.config.payload_policy.max_field_chars == 2_000  # type: ignore[attr-defined]


def test_links_between_pages_resolve() -> None:
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|png))(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_own_spans_example_nests_a_framework_run(tmp_path: Path) -> None:
    import asyncio

    from langchain_core.runnables import RunnableLambda

    from prefactor_integrations.testing import TraceRecorder, assert_outline

    namespace: dict[str, object] = {}
    exec(example("docs/span-types.md", "async def nightly_report"), namespace)
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
