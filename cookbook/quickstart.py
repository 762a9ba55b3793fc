"""Prefactor quickstart: trace a LangChain agent, a LangGraph graph and a LlamaIndex query.

    ./scripts/quickstart              (or: python cookbook/quickstart.py)

Needs no account and no network. The models are scripted fakes (no API keys), the traces go to
a local Prefactor-compatible server (`prefactor_local`, started in this process unless one is
already running at $PREFACTOR_LOCAL_URL, default http://127.0.0.1:8787) which keeps them in
./.prefactor/local.db. At the end each run's span tree is printed.

With PREFACTOR_API_URL, PREFACTOR_API_TOKEN and PREFACTOR_AGENT_ID set, the same three runs are
traced into that Prefactor account instead, and their instance ids are printed.

The three runs are the first functions below; the rest is setup and display.
"""

from __future__ import annotations

import argparse
import operator
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from rich.console import Console
from rich.markup import escape
from rich.text import Text

ENV_URL = "PREFACTOR_API_URL"
ENV_TOKEN = "PREFACTOR_API_TOKEN"
ENV_AGENT = "PREFACTOR_AGENT_ID"
ENV_LOCAL_URL = "PREFACTOR_LOCAL_URL"
DEFAULT_DB = Path(".prefactor") / "local.db"
LOCAL_AGENT_ID = "quickstart"
FLUSH_TIMEOUT = 30.0

Status = Callable[[str], None]
"""Shows what a run is doing right now (the spinner line)."""


# -- 1. A LangChain agent: create_agent + a scripted model + a real tool --------------------------

WEATHER = {"paris": ("sunny", 24), "tokyo": ("light rain", 18), "lima": ("overcast", 19)}


def run_langchain_agent(handler: Any, status: Status) -> tuple[str | None, str]:
    """One tool-calling agent run; returns (instance id, final answer)."""
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from prefactor_integrations.testing import ScriptedChatModel

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        sky, celsius = WEATHER.get(city.lower(), ("unknown", 0))
        return f"{city}: {sky}, {celsius} °C"

    # The model is a script: first it asks for two tool calls (made in parallel), then it
    # answers. Swap in ChatOpenAI(...) or any chat model and nothing else changes.
    model = ScriptedChatModel(
        model_name="scripted-gpt",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Paris"}},
            {"name": "get_weather", "args": {"city": "Tokyo"}},
        ],
        answer="Paris is sunny at 24 °C; Tokyo has light rain at 18 °C. Pack an umbrella.",
    )
    agent = create_agent(model, [get_weather], system_prompt="You are a travel assistant.")

    run_id = uuid.uuid4()
    config: Any = {"callbacks": [handler], "run_id": run_id}
    inputs = {"messages": [("user", "What's the weather in Paris and Tokyo?")]}
    instance_id = None
    answer = ""
    for update in agent.stream(inputs, config=config, stream_mode="updates"):
        # The run's agent instance is known while the run is open.
        instance_id = instance_id or handler.instance_id_for_run(run_id)
        for node, change in update.items():
            status(f"LangChain agent: step '{node}'")
            for message in (change or {}).get("messages", []):
                if message.type == "ai" and message.content:
                    answer = str(message.content)
    return instance_id, answer


# -- 2. A LangGraph graph: parallel branches, then a subgraph -------------------------------------

NOTES = {
    "web": ["Prefactor shows each agent run as one instance.", "Spans nest like call stacks."],
    "docs": ["Tracing never blocks the agent.", "A local server keeps traces in SQLite."],
}


class ResearchState(TypedDict):
    topic: str
    findings: Annotated[list[str], operator.add]
    brief: str


class WriterState(TypedDict):
    findings: list[str]
    brief: str


def run_langgraph_graph(handler: Any, status: Status) -> tuple[str | None, str]:
    """plan -> (search_web | search_docs, in parallel) -> write (a subgraph: draft -> review)."""
    from langchain_core.callbacks import dispatch_custom_event
    from langgraph.graph import END, START, StateGraph

    from prefactor_integrations.testing import ScriptedChatModel

    writer_model = ScriptedChatModel(
        model_name="scripted-writer",
        answer="Prefactor records every run as a tree of spans without slowing the agent",
    )

    def plan(state: ResearchState) -> dict[str, Any]:
        dispatch_custom_event("plan_ready", {"topic": state["topic"], "sources": list(NOTES)})
        return {"findings": [f"topic: {state['topic']}"]}

    def search(source: str) -> Callable[[ResearchState], dict[str, Any]]:
        def node(state: ResearchState) -> dict[str, Any]:
            words = state["topic"].lower().split()
            hits = [n for n in NOTES[source] if any(w in n.lower() for w in words)]
            return {"findings": hits or NOTES[source][:1]}

        return node

    def draft(state: WriterState) -> dict[str, Any]:
        reply = writer_model.invoke(f"Write one sentence from: {state['findings']}")
        return {"brief": str(reply.content)}

    def review(state: WriterState) -> dict[str, Any]:
        return {"brief": state["brief"].rstrip(".") + "."}

    writer = StateGraph(WriterState)
    writer.add_node("draft", draft)
    writer.add_node("review", review)
    writer.add_edge(START, "draft")
    writer.add_edge("draft", "review")
    writer.add_edge("review", END)

    graph = StateGraph(ResearchState)
    graph.add_node("plan", plan)
    graph.add_node("search_web", search("web"))
    graph.add_node("search_docs", search("docs"))
    graph.add_node("write", writer.compile())
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", lambda s: ["search_web", "search_docs"])
    graph.add_edge("search_web", "write")
    graph.add_edge("search_docs", "write")
    graph.add_edge("write", END)
    app = graph.compile()

    run_id = uuid.uuid4()
    config: Any = {"callbacks": [handler], "run_id": run_id}
    instance_id = None
    brief = ""
    for update in app.stream({"topic": "agent runs and spans"}, config=config):
        instance_id = instance_id or handler.instance_id_for_run(run_id)
        for node, change in update.items():
            status(f"LangGraph graph: node '{node}'")
            if isinstance(change, dict) and change.get("brief"):
                brief = str(change["brief"])
    return instance_id, brief


# -- 3. A LlamaIndex RAG query on mock models ------------------------------------------------------

DOCUMENTS = [
    "An agent instance is one run of an agent, from its first step to its result.",
    "Spans record the steps of a run: model calls, tool calls, retrievals and embeddings.",
    "Prefactor can terminate a running agent instance from its dashboard.",
    "The local server stores traces in a SQLite file under .prefactor.",
]


def run_llama_index_query(client: Any, status: Status) -> tuple[str | None, str]:
    """A VectorStoreIndex over a few documents, queried with a mock LLM and mock embeddings."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.llms import MockLLM

    from prefactor_integrations.llama_index import instrument, uninstrument

    instrument(client, agent_name="quickstart-rag")
    watcher = make_llama_index_watcher(client, status)
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(watcher)
    try:
        status("LlamaIndex: building the vector index")
        index = VectorStoreIndex.from_documents(
            [Document(text=text) for text in DOCUMENTS], embed_model=MockEmbedding(embed_dim=16)
        )
        engine = index.as_query_engine(llm=MockLLM(max_tokens=12), similarity_top_k=2)
        response = engine.query("What does a span record?")
    finally:
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not watcher]
        uninstrument()
    return watcher.instance_id, str(response).strip()


# -- setup: where traces go ------------------------------------------------------------------------


class QuickstartError(Exception):
    """A failure to report in one clear sentence (exit code 1)."""


class ConfigurationError(QuickstartError):
    """The environment is half configured (exit code 2)."""


@dataclass
class Destination:
    """Where the traces go: the local server (``server`` set) or a Prefactor account."""

    url: str
    token: str
    agent_id: str | None
    server: Any = None
    note: str = ""

    @property
    def local(self) -> bool:
        return self.server is not None


def account_from_env() -> Destination | None:
    """The Prefactor account named by the environment, None when none is configured."""
    values = {name: os.environ.get(name, "").strip() for name in (ENV_URL, ENV_TOKEN, ENV_AGENT)}
    given = [name for name, value in values.items() if value]
    if not given:
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigurationError(
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not. Set all three to "
            "trace into your Prefactor account, or unset them to use the local server."
        )
    return Destination(values[ENV_URL], values[ENV_TOKEN], values[ENV_AGENT])


def local_destination(db_path: Path) -> Destination:
    """The local server at $PREFACTOR_LOCAL_URL (default port 8787): reused if one is running,
    otherwise started in this process; on a free port if that one cannot be used."""
    from prefactor_local.server import LocalServer

    url = os.environ.get(ENV_LOCAL_URL, "").strip() or None
    try:
        server = LocalServer.ensure_running(url, db_path=db_path)
        note = "already running" if server.attached else "started in this process"
    except (OSError, PermissionError, RuntimeError) as exc:
        server = LocalServer(db_path=db_path).start()
        note = f"started in this process on a free port ({exc})"
    return Destination(server.url, server.token, LOCAL_AGENT_ID, server=server, note=note)


def make_client(dest: Destination) -> Any:
    """A ``PrefactorCoreClient`` for ``dest`` that gives up quickly when it cannot deliver."""
    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
    from prefactor_http.config import HttpClientConfig

    http = HttpClientConfig(
        api_url=dest.url, api_token=dest.token, request_timeout=10.0, max_retries=2
    )
    return PrefactorCoreClient(
        PrefactorCoreConfig(
            http_config=http,
            agent_id=dest.agent_id,
            queue_config=QueueConfig(max_retries=1, shutdown_timeout=10.0),
        )
    )


# -- display -------------------------------------------------------------------------------------


@dataclass
class Run:
    """One of the three runs and what came of it."""

    title: str
    what: str
    instance_id: str | None = None
    result: str = ""


class _Steps:
    """Progress lines: a spinner while a step runs, then a check mark with its duration."""

    def __init__(self, console: Console) -> None:
        self.console = console

    @contextmanager
    def step(self, text: str) -> Iterator[Status]:
        start = time.perf_counter()
        with self.console.status(f"{text}…") as spinner:

            def show(detail: str) -> None:
                spinner.update(f"{text}… {escape(detail)}")

            try:
                yield show
            except BaseException:
                self.console.print(f"[red]✗[/] {text}")
                raise
        took = time.perf_counter() - start
        self.console.print(f"[green]✓[/] {text} [dim]({took:.1f} s)[/]")


def make_llama_index_watcher(client: Any, status: Status) -> Any:
    """A LlamaIndex event handler that shows progress and notes the query's instance id."""
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from pydantic import PrivateAttr

    from prefactor_core.context_stack import SpanContextStack

    labels = {
        "RetrievalStartEvent": "retrieving nodes",
        "EmbeddingStartEvent": "embedding the query",
        "SynthesizeStartEvent": "synthesizing the answer",
        "LLMCompletionStartEvent": "calling the LLM",
    }

    class Watcher(BaseEventHandler):  # type: ignore[misc]
        """Shows LlamaIndex's progress and notes the Prefactor instance of the query."""

        instance_id: str | None = None
        _client: Any = PrivateAttr()
        _status: Any = PrivateAttr()

        def __init__(self, client: Any, status: Status) -> None:
            super().__init__()
            self._client = client
            self._status = status

        @classmethod
        def class_name(cls) -> str:
            return "QuickstartWatcher"

        def handle(self, event: Any, **kwargs: Any) -> None:
            name = event.class_name()
            if name == "QueryStartEvent" and self.instance_id is None:
                # Inside the query, the current span is the query's: its instance is the run's.
                span_id = SpanContextStack.peek()
                if span_id is not None:
                    self.instance_id = self._client.tracer.instance_of(span_id)
            if name in labels:
                self._status(f"LlamaIndex: {labels[name]}")

    return Watcher(client, status)


def load_trace(dest: Destination, instance_id: str) -> Any:
    """The stored trace of one instance, from the server's database or over its HTTP API."""
    from prefactor_local.trace import Trace

    if not dest.server.attached:
        return Trace.load(dest.server.store, instance_id)
    import httpx

    headers = {"Authorization": f"Bearer {dest.token}"}
    # trust_env=False: the local server is on this machine, never behind a proxy.
    with httpx.Client(base_url=dest.url, headers=headers, timeout=10.0, trust_env=False) as http:
        reply = http.get(f"/api/v1/agent_instance/{instance_id}")
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        instance = reply.json()["details"]
        spans: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = http.get(
                "/api/v1/agent_spans",
                params={
                    "agent_instance_id": instance_id,
                    "pagination[offset]": offset,
                    "pagination[page_size]": 500,
                },
            )
            page.raise_for_status()
            body = page.json()
            spans.extend(body["summaries"])
            offset = body["pagination"]["next_page_offset"]
    return Trace.build(instance, spans)


def trace_tree(trace: Any) -> Any:
    """The rich tree of a trace, drawn as `prefactor-local show` draws it."""
    from prefactor_local.render import trace_tree

    return trace_tree(trace)


def summary_line(trace: Any) -> Text:
    """``12 spans: 12 complete · tokens 45 in / 20 out`` for one trace."""
    counts: dict[str, int] = {}
    prompt = completion = 0
    for node in trace.walk():
        counts[node.status] = counts.get(node.status, 0) + 1
        tokens = node.token_counts()
        if tokens is not None:
            prompt += tokens.prompt or 0
            completion += tokens.completion or 0
    text = Text(f"{trace.span_count} spans: ", style="dim")
    text.append(", ".join(f"{n} {status}" for status, n in sorted(counts.items())), style="dim")
    if prompt or completion:
        text.append(f" · tokens {prompt} in / {completion} out", style="dim")
    return text


def show_command(db_path: Path) -> str:
    """How to run ``prefactor-local`` from here (with ``--db`` when not the default)."""
    exe = Path(sys.executable).parent / "prefactor-local"
    shown = "prefactor-local"
    if exe.exists():
        try:
            shown = str(exe.relative_to(Path.cwd()))
        except ValueError:
            shown = str(exe)
    db = "" if db_path == DEFAULT_DB else f" --db {db_path}"
    return f"{shown} show{db}"


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Trace a LangChain agent, a LangGraph graph and a LlamaIndex query "
        "(fake models, no account needed) and print their span trees."
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=DEFAULT_DB,
        help=f"database of the local server (default: {DEFAULT_DB})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False)
    try:
        return _main(args, console)
    except ConfigurationError as exc:
        console.print(f"[red]Configuration problem:[/] {escape(str(exc))}")
        return 2
    except QuickstartError as exc:
        console.print(f"[red]Quickstart failed:[/] {escape(str(exc))}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted.[/]")
        return 130


def _main(args: argparse.Namespace, console: Console) -> int:
    started = time.perf_counter()
    steps = _Steps(console)
    console.print("[bold]Prefactor quickstart[/]: three agent runs on fake models, traced.\n")

    dest = account_from_env()
    if dest is None:
        with steps.step("Starting the local Prefactor server"):
            dest = local_destination(args.db)
        console.print(
            f"  Local server at {dest.url} ({escape(dest.note)}); agent id '{dest.agent_id}'"
        )
    else:
        console.print(
            f"[bold]Tracing into your Prefactor account[/] at {escape(dest.url)}, agent "
            f"{escape(str(dest.agent_id))} (from {ENV_URL}, {ENV_AGENT}; token from {ENV_TOKEN}, "
            "not shown)."
        )
    try:
        return _run_all(args, console, steps, dest, started)
    finally:
        if dest.server is not None:
            dest.server.stop()


def _run_all(
    args: argparse.Namespace, console: Console, steps: _Steps, dest: Destination, started: float
) -> int:
    with steps.step("Loading LangChain, LangGraph and LlamaIndex") as status:
        status("langchain")
        import langchain.agents  # noqa: F401
        import langgraph.graph  # noqa: F401

        status("llama_index")
        import llama_index.core  # noqa: F401

        from prefactor_integrations.langchain import PrefactorCallbackHandler
    client = make_client(dest)

    runs = [
        Run("LangChain agent", "create_agent + get_weather tool, two parallel tool calls"),
        Run("LangGraph graph", "parallel branches, then a subgraph"),
        Run("LlamaIndex RAG query", "VectorStoreIndex with MockLLM and MockEmbedding"),
    ]
    work: list[Callable[[Status], tuple[str | None, str]]] = [
        lambda s: run_langchain_agent(
            PrefactorCallbackHandler(client, agent_name="quickstart-agent"), s
        ),
        lambda s: run_langgraph_graph(
            PrefactorCallbackHandler(client, agent_name="quickstart-graph"), s
        ),
        lambda s: run_llama_index_query(client, s),
    ]
    for number, (run, job) in enumerate(zip(runs, work, strict=True), 1):
        try:
            with steps.step(f"Run {number}/{len(runs)}: {run.title}") as status:
                run.instance_id, run.result = job(status)
        except Exception as exc:
            raise QuickstartError(f"the {run.title} raised {type(exc).__name__}: {exc}") from exc

    with steps.step("Sending the traces") as status:
        status(dest.url)
        delivered = client.tracer.flush(FLUSH_TIMEOUT)
        stats = client.stats()
        if not delivered or stats.failed or stats.dropped or stats.export_stopped:
            problem = stats.last_error or (
                "timed out" if not delivered else f"{stats.failed + stats.dropped} operations lost"
            )
            hint = "see docs/troubleshooting.md"
            if not dest.local and "Check " not in problem:
                hint = f"check {ENV_URL} and {ENV_TOKEN}, or {hint}"
            raise QuickstartError(
                f"traces could not be delivered to {dest.url}: {problem.rstrip('.')} "
                f"(sent {stats.sent}, failed {stats.failed}, dropped {stats.dropped}); {hint}."
            )
    missing = [run.title for run in runs if run.instance_id is None]
    if missing:
        raise QuickstartError(f"no agent instance was recorded for: {', '.join(missing)}")

    console.print()
    if dest.local:
        _print_local(console, dest, runs, args.db)
    else:
        _print_account(console, dest, runs)
    console.print(f"\nDone in {time.perf_counter() - started:.1f} s.")
    return 0


def _print_local(console: Console, dest: Destination, runs: list[Run], db_path: Path) -> None:
    for number, run in enumerate(runs, 1):
        assert run.instance_id is not None
        trace = load_trace(dest, run.instance_id)
        if trace is None:
            raise QuickstartError(f"the server has no instance {run.instance_id} ({run.title})")
        unfinished = [n.schema_name for n in trace.walk() if n.status in ("active", "pending")]
        if unfinished or trace.span_count == 0:
            raise QuickstartError(
                f"the {run.title} trace is incomplete: {trace.span_count} spans, "
                f"unfinished: {', '.join(unfinished) or '-'}"
            )
        console.rule(f"[bold]{number}. {run.title}[/]  [dim]{run.what}[/]", align="left")
        console.print(f"[dim]Result:[/] {escape(run.result)}")
        console.print(trace_tree(trace))
        console.print(summary_line(trace))
        console.print()
    command = show_command(db_path)
    if dest.server.attached:
        where = (
            f"by the local server at {dest.url} (in the database it was started with; "
            f"`prefactor-local serve` uses {DEFAULT_DB} by default)"
        )
    else:
        where = f"in {dest.server.db_path.resolve()}"
    console.rule(align="left")
    console.print(f"The traces are stored {escape(where)}.")
    console.print("Look at them again:")
    console.print(f"  as trees:       {command}")
    console.print(f"  as a web page:  {command} --html trace.html")
    console.print(f"  as JSON:        {command} --json {runs[0].instance_id}")
    console.print(
        f"To trace into your Prefactor account instead, set {ENV_URL}, {ENV_TOKEN} and "
        f"{ENV_AGENT}, then run this again."
    )


def _print_account(console: Console, dest: Destination, runs: list[Run]) -> None:
    console.print(
        f"[bold]Traced into your Prefactor account[/] ({escape(dest.url)}, agent "
        f"{escape(str(dest.agent_id))}). Agent instances:"
    )
    for number, run in enumerate(runs, 1):
        console.print(f"  {number}. {run.title:<22} {run.instance_id}")
    console.print("Open them in Prefactor under the agent's instances.")


if __name__ == "__main__":
    sys.exit(main())
