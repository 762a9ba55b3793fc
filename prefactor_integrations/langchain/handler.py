"""``PrefactorCallbackHandler``: LangChain / LangGraph runs as Prefactor agent instances and spans.

Mapping:

* a run with no parent (and no open ambient span) is one agent instance, started when the run
  starts and finished ``complete``/``failed``/``cancelled`` when it ends, with a root
  ``langchain:agent`` span (a root model/tool/retriever call gets its own span under it);
* inside it: ``langchain:chain`` (runnables), ``langchain:node`` (LangGraph nodes),
  ``langchain:llm``, ``langchain:tool``, ``langchain:retriever``;
* LangGraph plumbing is folded into its parent (no span): runs tagged ``langsmith:hidden``,
  internal wrappers (``ChannelWrite``, ``RunnableCallable``...) and conditional-edge routers.

Every callback is memory-only and guarded: internal errors are counted and logged, never raised.
The one exception let through is :class:`PrefactorTerminatedError`, raised at the next callback
of a run whose instance the platform terminated.
"""

from __future__ import annotations

import atexit
import functools
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from uuid import UUID

from prefactor_core.exceptions import PrefactorTerminatedError
from prefactor_core.fields import check_int, check_seconds
from prefactor_http._version import __version__

from .._shared import (
    AdapterSetup,
    BoundedMap,
    InternalErrors,
    RootState,
    RunState,
    RunTracker,
    ambient_parent,
    cancel_abandoned,
    error_info,
    flush_tracer,
    prefer_deeper,
    prune_closed,
    push_span,
    remove_span,
    run_stats,
    status_for,
)
from . import payloads
from ._control import (
    GraphBubbleUp,
    GraphHandlerBase,
    GraphInterrupt,
    ParentCommand,
    interrupts_of,
    is_command,
)
from .schemas import AGENT, CHAIN, KEEP_KEYS, LANGCHAIN_SPAN_TYPES, LLM, NODE, RETRIEVER, TOOL
from .tool_schemas import ToolSchemas, check_registry, resolve_tool_schemas

if TYPE_CHECKING:
    from langchain_core.agents import AgentAction, AgentFinish
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry
    from prefactor_http.models import InstancePurpose

__all__ = ["MIDDLEWARE_NAME", "PrefactorCallbackHandler"]

logger = logging.getLogger("prefactor_integrations.langchain")

SDK_ENTRY = f"prefactor-langchain@{__version__}"
TAG_HIDDEN = "langsmith:hidden"
# ``PrefactorMiddleware``'s hook nodes (``PrefactorMiddleware.before_agent``...): folded, so an
# agent traced by this handler stores the same tree with or without the middleware.
MIDDLEWARE_NAME = "PrefactorMiddleware"
# LangGraph-internal runnables that carry no meaning for a reader of the trace.
_PLUMBING_NAMES = frozenset(
    {"ChannelWrite", "ChannelRead", "RunnableCallable", "RunnableSeq", "_route", "_aroute"}
)
_INTERNAL_TAG_PREFIXES = ("seq:step:", "graph:step:", "map:key:", "langsmith:")
_MAX_EVENTS = 256

F = TypeVar("F", bound=Callable[..., None])


def _guarded(method: F) -> F:
    """Run a callback so that only ``PrefactorTerminatedError`` can escape it."""
    place = method.__name__

    @functools.wraps(method)
    def wrapper(self: PrefactorCallbackHandler, *args: Any, **kwargs: Any) -> None:
        if self._closed:
            return
        try:
            method(self, *args, **kwargs)
        except PrefactorTerminatedError:
            raise
        except Exception as exc:
            self._errors.record(place, exc)
            if is_start:
                self._start_failed(kwargs.get("run_id"), kwargs.get("parent_run_id"))

    is_start = place.endswith("_start")
    return cast("F", wrapper)


def _error_callback(name: str) -> Callable[..., None]:
    """A guarded ``on_*_error`` callback: the run ends failed, cancelled or (for LangGraph
    control flow) complete."""

    def callback(
        self: PrefactorCallbackHandler,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end_with_error(run_id, error)

    callback.__name__ = callback.__qualname__ = name
    return _guarded(callback)


def _seq_step(tags: Sequence[str] | None) -> int | None:
    if tags:
        for tag in tags:
            if tag.startswith("seq:step:"):
                try:
                    return int(tag[9:])
                except ValueError:
                    return None
    return None


def _is_node(tags: Sequence[str] | None, metadata: Mapping[str, Any] | None) -> bool:
    return bool(
        tags
        and metadata
        and "langgraph_node" in metadata
        and any(t.startswith("graph:step:") for t in tags)
    )


def _user_tags(tags: Sequence[str] | None) -> list[str]:
    if not tags:
        return []
    return [t for t in tags if not t.startswith(_INTERNAL_TAG_PREFIXES)]


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if name:
        return str(name)
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def _has_tool_call_chunks(chunk: Any) -> bool:
    message = getattr(chunk, "message", None)
    return bool(getattr(message, "tool_call_chunks", None))


def _now() -> datetime:
    return datetime.now(timezone.utc)


_live_handlers: weakref.WeakSet[PrefactorCallbackHandler] = weakref.WeakSet()


@atexit.register
def _cancel_open_runs_at_exit() -> None:
    # Runs still open when the interpreter exits never end: record them as cancelled before the
    # core's own exit hook (registered earlier, so run later) delivers what is queued.
    for handler in list(_live_handlers):
        try:
            handler._cancel_open("process exiting")
        except Exception:
            pass


class PrefactorCallbackHandler(GraphHandlerBase):
    """Traces LangChain and LangGraph runs into Prefactor.

    Pass it in ``config={"callbacks": [handler]}``, bind it with ``with_config``, or enable it for
    every run with :func:`prefactor_integrations.langchain.instrument`. One handler can serve
    any number of concurrent runs (threads, asyncio tasks, ``batch``/``abatch``).

    Args:
        client: a ``prefactor_core.PrefactorCoreClient``. Without one the handler uses a
            process-wide client built from ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN``
            (a ``PrefactorConfigurationError`` names what is missing).
        agent_id: the Prefactor agent (default ``PREFACTOR_AGENT_ID``; may be omitted with a
            deployment-scoped token).
        agent_name: display name of the agent version (default ``"langchain-agent"``).
        agent_version: your version label; the registered version identifier is this label plus
            a hash of the name and span schemas, so the same code maps to the same version.
        environment_id: the Prefactor environment (default ``PREFACTOR_ENVIRONMENT_ID``).
        purpose: instance purpose: ``"live"``, ``"smoke_test"`` or ``"eval"``.
        capture_content: when False, every text (inputs, outputs, messages, tool arguments and
            results, queries, documents, metadata and tag values, error messages) is sent as its
            size, e.g. ``"[42 chars]"``; the structure (keys, message roles, tool call names,
            document counts), names, models, ids, token usage, timings and error types stay.
        mask: a callable applied by the core (off the agent's thread) to every payload before
            it is sent; what it returns is sent instead.
        schema_registry: a ``prefactor_core.SchemaRegistry`` with span types of your own
            (default: the client configuration's); its entries win over the built-in LangChain
            ones of the same name.
        max_open_runs: at most this many top-level runs are tracked at once (oldest idle evicted).
        idle_timeout: seconds after which a top-level run with no callbacks is finished
            ``cancelled`` (its end never came: an abandoned generator, a killed task).
        max_document_chars: retrieved document text is capped to this many characters.
        max_thread_links: size of the in-process ``thread_id`` -> last instance map.
        tool_schemas: ``{tool name: LangChainToolSchemaConfig(span_type, input_schema)}`` (or
            mappings with ``span_type``/``spanType`` and ``input_schema``/``inputSchema``):
            those tools' spans get the span type ``langchain:tool:<name>``, registered with
            ``input_schema`` as the schema of their ``inputs`` (the tool's arguments).
    """

    run_inline = True
    # Only PrefactorTerminatedError ever leaves a callback (every method is guarded), and it
    # must reach the agent: langchain-core swallows handler errors unless raise_error is set.
    raise_error = True

    def __init__(
        self,
        client: PrefactorCoreClient | None = None,
        *,
        agent_id: str | None = None,
        agent_name: str | None = None,
        agent_version: str | None = None,
        environment_id: str | None = None,
        purpose: InstancePurpose | None = None,
        capture_content: bool = True,
        mask: Callable[[Any], Any] | None = None,
        schema_registry: SchemaRegistry | None = None,
        max_open_runs: int = 4096,
        idle_timeout: float = 1800.0,
        max_document_chars: int = 2000,
        max_thread_links: int = 10_000,
        tool_schemas: ToolSchemas | None = None,
    ) -> None:
        super().__init__()
        check_int("max_open_runs", max_open_runs, 1, 1_000_000)
        check_seconds("idle_timeout", idle_timeout, 0, 7 * 86_400)
        check_int("max_document_chars", max_document_chars, 0, 10_000_000)
        check_int("max_thread_links", max_thread_links, 1, 10_000_000)
        self._tool_span_types, tool_specs = resolve_tool_schemas(tool_schemas)
        client_config = getattr(client, "config", None)
        check_registry(
            schema_registry or getattr(client_config, "schema_registry", None), tool_specs
        )
        setup = AdapterSetup.resolve(
            client,
            sdk_entry=SDK_ENTRY,
            span_types=LANGCHAIN_SPAN_TYPES + tool_specs,
            keep_keys=KEEP_KEYS,
            schema_prefix="langchain",
            agent_name=agent_name or "langchain-agent",
            agent_version_label=agent_version,
            agent_id=agent_id,
            environment_id=environment_id,
            purpose=purpose,
            capture_content=capture_content,
            mask=mask,
            schema_registry=schema_registry,
            use_client_registry=True,
        )
        self._client = setup.client
        self._tracer = setup.tracer
        self._settings = setup.settings
        self._policy = setup.policy
        self._max_document_chars = max_document_chars
        self._runs = RunTracker(
            on_abandoned=self._abandon, max_roots=max_open_runs, idle_timeout=idle_timeout
        )
        self._threads: BoundedMap[str, tuple[str, bool]] = BoundedMap(max_thread_links)
        self._errors = InternalErrors(logger)
        # Root agent spans of open top-level runs (see ``ambient_parent(skip=...)``).
        self._root_spans: set[str] = set()
        self._closed = False
        _live_handlers.add(self)

    # -- public API --------------------------------------------------------------------------

    @classmethod
    def create_client(cls, config: PrefactorCoreConfig) -> PrefactorCoreClient:
        """A ``PrefactorCoreClient`` for ``config`` that names this adapter in its SDK header."""
        from prefactor_core import PrefactorCoreClient

        return PrefactorCoreClient(config, sdk_header_entry=SDK_ENTRY)

    @property
    def client(self) -> PrefactorCoreClient:
        """The ``PrefactorCoreClient`` this handler reports to."""
        return self._client

    @property
    def agent_schema_version(self) -> dict[str, Any]:
        """The schema version registered with every instance (stable across runs)."""
        return dict(self._settings.agent_schema_version)

    def instance_id_for_run(self, run_id: UUID) -> str | None:
        """The agent instance of an open run, or None."""
        run = self._runs.peek(run_id)
        return None if run is None else run.instance_id

    def stats(self) -> dict[str, Any]:
        """Counters: open top-level runs and runs, abandoned trees, swallowed internal errors."""
        return run_stats(self._runs, self._errors)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything traced so far was sent (or ``timeout`` passed); True if all."""
        return flush_tracer(self._tracer, self._errors, timeout)

    def sweep(self) -> int:
        """Finish ``cancelled`` every top-level run idle longer than ``idle_timeout``; count."""
        return len(self._runs.sweep())

    def close(self, timeout: float = 10.0) -> bool:
        """Finish still-open runs ``cancelled``, stop tracing with this handler and flush."""
        self._cancel_open("handler closed")
        return self.flush(timeout)

    def _cancel_open(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            for root in self._runs.drain():
                self._abandon(root, reason=reason)

    # -- chains, agents, LangGraph nodes -----------------------------------------------------

    @_guarded
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _run_name(serialized, kwargs, "chain")
        parent = self._parent(run_id, parent_run_id)
        if parent is False:
            return
        if parent is None:
            self._start_root(run_id, AGENT, name, inputs, tags, metadata, None)
            return
        step = _seq_step(tags)
        if self._should_fold(parent, name, tags, step):
            self._runs.fold(run_id, parent.run_id)
            return
        self._note_step(parent, step)
        payload: dict[str, Any] = {"name": name}
        if _is_node(tags, metadata):
            schema = NODE
            payload.update(payloads.node_fields(metadata or {}))
        else:
            schema = CHAIN
        payload.update(payloads.chain_inputs(inputs))
        self._decorate(payload, run_id, tags, metadata)
        self._start_child(run_id, parent, schema, payload, ambient=True)

    @_guarded
    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._ending(run_id)
        if run is None:
            return
        if is_command(outputs):
            result: dict[str, Any] = {"command": payloads.command_payload(outputs)}
        else:
            result = payloads.chain_outputs(outputs)
            if run.schema_name == NODE and isinstance(outputs, Mapping):
                result["updated_keys"] = sorted(str(k) for k in outputs)
        if isinstance(outputs, Mapping) and "__interrupt__" in outputs:
            self._note_interrupts(run, interrupts_of(outputs["__interrupt__"]))
        self._end(run, "complete", result)

    on_chain_error = _error_callback("on_chain_error")

    @_guarded
    def on_interrupt(self, event: Any) -> None:
        """LangGraph paused the run for interrupts (LangGraph's own lifecycle callback, where the
        installed version has it; older ones are read from ``GraphInterrupt``)."""
        run = self._graph_event(event, "interrupt")
        if run is not None:
            self._note_interrupts(run, interrupts_of(tuple(event.interrupts)))

    @_guarded
    def on_resume(self, event: Any) -> None:
        """LangGraph resumed the run from a checkpoint (its own lifecycle callback)."""
        self._graph_event(event, "resume")

    def _graph_event(self, event: Any, kind: str) -> RunState | None:
        """Record a LangGraph lifecycle event on its graph's run: an ``events`` entry with the
        checkpoint, and the checkpoint id on the root's result. Returns the run, if traced."""
        run_id: UUID | None = getattr(event, "run_id", None)
        if run_id is None:
            return None
        run = self._runs.owner(run_id)
        if run is None:
            return None
        checkpoint = {
            "checkpoint_id": event.checkpoint_id,
            "checkpoint_ns": list(event.checkpoint_ns),
            "status": event.status,
        }
        self._add_event(run_id, kind, str(event.status), checkpoint)
        root = self._runs.root(run.root_id)
        if root is not None and not event.checkpoint_ns:  # the outer graph, not a subgraph
            key = "interrupt_checkpoint_id" if kind == "interrupt" else "resumed_from_checkpoint_id"
            root.data[key] = event.checkpoint_id
        return run

    @_guarded
    def on_agent_action(
        self,
        action: AgentAction,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        data = {"tool": action.tool, "tool_input": action.tool_input, "log": action.log}
        self._add_event(run_id, "agent_action", action.tool, data)

    @_guarded
    def on_agent_finish(
        self,
        finish: AgentFinish,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        # Recorded as an event only: the chain run with the same id ends the span.
        data = {"return_values": dict(finish.return_values), "log": finish.log}
        self._add_event(run_id, "agent_finish", "agent_finish", data)

    @_guarded
    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._add_event(run_id, "custom", name, payloads._convert_item(data))

    @_guarded
    def on_retry(
        self,
        retry_state: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        outcome = getattr(retry_state, "outcome", None)
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        data: dict[str, Any] = {"attempt": getattr(retry_state, "attempt_number", None)}
        if exc is not None:
            data["error"] = error_info(exc)
        self._add_event(run_id, "retry", "retry", data)

    # -- models ------------------------------------------------------------------------------

    @_guarded
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(
            serialized, messages[0] if messages else [], None, run_id, parent_run_id, tags,
            metadata, kwargs,
        )  # fmt: skip

    @_guarded
    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._llm_start(serialized, None, prompts, run_id, parent_run_id, tags, metadata, kwargs)

    @_guarded
    def on_llm_new_token(
        self,
        token: Any,
        *,
        chunk: Any = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        now = time.perf_counter()
        data = run.data
        data["chunks"] = data.get("chunks", 0) + 1
        # Time to first token counts the first chunk with content (not a bare role/empty chunk).
        if "first_token" not in data and (token or _has_tool_call_chunks(chunk)):
            data["first_token"] = now
        data["last_token"] = now
        self._raise_if_terminated(run.instance_id)

    @_guarded
    def on_llm_end(
        self,
        response: LLMResult,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._ending(run_id)
        if run is not None:
            self._end(run, "complete", payloads.llm_result_payload(response))

    on_llm_error = _error_callback("on_llm_error")

    # -- tools and retrievers ----------------------------------------------------------------

    @_guarded
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        tool_name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        arguments: Any = dict(inputs) if inputs is not None else input_str
        schema = self._tool_span_types.get(tool_name, TOOL)
        payload: dict[str, Any] = {
            "name": _run_name(serialized, kwargs, tool_name),
            "tool_name": tool_name,
            # A tool of its own span type: ``inputs`` are its arguments, as its schema says.
            "inputs": arguments
            if schema != TOOL
            else {"tool_name": tool_name, "arguments": arguments},
        }
        description = (serialized or {}).get("description")
        if description:
            payload["description"] = description
        if kwargs.get("tool_call_id"):
            payload["tool_call_id"] = kwargs["tool_call_id"]
        self._decorate(payload, run_id, tags, metadata)
        self._start_any(run_id, parent_run_id, schema, payload, tags, metadata, arguments)

    @_guarded
    def on_tool_end(
        self,
        output: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._ending(run_id)
        if run is not None:
            self._end(run, "complete", payloads.tool_output_payload(output))

    on_tool_error = _error_callback("on_tool_error")

    @_guarded
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        payload: dict[str, Any] = {
            "name": _run_name(serialized, kwargs, "retriever"),
            "query": query,
        }
        self._decorate(payload, run_id, tags, metadata)
        self._start_any(run_id, parent_run_id, RETRIEVER, payload, tags, metadata, query)

    @_guarded
    def on_retriever_end(
        self,
        documents: Sequence[Document],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        run = self._ending(run_id)
        if run is not None:
            result = payloads.documents_payload(documents, max_chars=self._max_document_chars)
            self._end(run, "complete", result)

    on_retriever_error = _error_callback("on_retriever_error")

    # -- internals: starting -----------------------------------------------------------------

    def _llm_start(
        self,
        serialized: Mapping[str, Any] | None,
        messages: Sequence[Any] | None,
        prompts: Sequence[str] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        payload = payloads.llm_start_payload(
            messages=messages,
            prompts=prompts,
            invocation_params=kwargs.get("invocation_params"),
            metadata=metadata,
            name=_run_name(serialized, kwargs, "llm"),
        )
        self._decorate(payload, run_id, tags, metadata)
        run = self._start_any(
            run_id, parent_run_id, LLM, payload, tags, metadata, messages or prompts, ambient=False
        )
        if run is not None:
            run.data["t0"] = time.perf_counter()

    def _start_any(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        schema: str,
        payload: dict[str, Any],
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        inputs: Any,
        *,
        ambient: bool = True,
    ) -> RunState | None:
        """Start a model/tool/retriever run under its parent, or as a root of its own."""
        parent = self._parent(run_id, parent_run_id)
        if parent is False:
            return None
        if parent is None:
            return self._start_root(
                run_id, schema, str(payload.get("name")), inputs, tags, metadata, payload
            )
        self._note_step(parent, _seq_step(tags))
        return self._start_child(run_id, parent, schema, payload, ambient=ambient)

    def _parent(self, run_id: UUID, parent_run_id: UUID | None) -> RunState | Literal[False] | None:
        """The open parent run; None for a new top-level run; False to ignore the run (its
        tree was abandoned by the idle sweep or eviction, another of our handlers traces it,
        or this start was already delivered)."""
        if self._runs.peek(run_id) is not None or self._runs.is_abandoned(run_id):
            return False  # a second delivery of a start: this handler is attached twice
        if parent_run_id is None:
            if self._traced_elsewhere(run_id):
                self._runs.mark_abandoned(run_id)
                return False
            return None
        parent = self._runs.get(parent_run_id)
        if parent is None and (
            self._runs.is_abandoned(parent_run_id) or self._traced_elsewhere(parent_run_id)
        ):
            self._runs.mark_abandoned(run_id)
            return False
        return parent

    def _traced_elsewhere(self, run_id: UUID) -> bool:
        """True if another of our handlers already traces ``run_id``: the first handler of ours
        to see a run owns it and its whole tree; the others stand down, whatever their client."""
        for other in list(_live_handlers):
            if other is not self and not other._closed and other._runs.peek(run_id) is not None:
                return True
        return False

    def _start_failed(self, run_id: UUID | None, parent_run_id: UUID | None) -> None:
        """A run could not be started (an internal error): keep its tree whole regardless.

        Its children attach to its nearest traced ancestor (the run is folded), or, for a
        top-level run, are ignored rather than each becoming an instance of its own.
        """
        try:
            if run_id is None or self._runs.get(run_id) is not None:
                return
            if parent_run_id is not None and self._runs.fold(run_id, parent_run_id) is not None:
                return
            self._runs.mark_abandoned(run_id)
        except Exception as exc:
            self._errors.record("start_failed", exc)

    def _start_child(
        self, run_id: UUID, parent: RunState, schema: str, payload: dict[str, Any], *, ambient: bool
    ) -> RunState | None:
        self._raise_if_terminated(parent.instance_id)
        parent_span = prefer_deeper(self._tracer, parent.span_id, parent.instance_id)
        span_id = self._create(parent.instance_id, schema, parent_span, payload)
        run = self._runs.open_child(run_id, parent.run_id, span_id=span_id, schema_name=schema)
        if run is None:  # the tree ended meanwhile or is full: do not leave the span open
            self._tracer.finish_span(
                span_id,
                status="cancelled",
                result_payload={"cancelled": True, "reason": "untracked"},
            )
            return None
        if ambient:
            push_span(span_id)
            run.data["ambient"] = True
        return run

    def _start_root(
        self,
        run_id: UUID,
        schema: str,
        name: str,
        inputs: Any,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        inner_payload: dict[str, Any] | None,
    ) -> RunState:
        """Open an instance (or nest under an open ambient span) for a top-level run."""
        # An async run's end callbacks run in a copy of the caller's context (langchain-core
        # shields them in a new task), so its root span id can linger, finished, in the caller's
        # context; drop such ids here, before they could pile up over many runs.
        prune_closed(self._tracer)
        # Everything that could fail on odd inputs is built before the instance is started.
        agent_payload: dict[str, Any] = {"name": name, **payloads.chain_inputs(inputs)}
        self._decorate(agent_payload, run_id, tags, metadata)
        thread = payloads.thread_id(metadata)
        root_data: dict[str, Any] = {"ambient": schema != LLM}
        if thread is not None:
            root_data["thread_id"] = thread
            agent_payload["thread_id"] = thread
            previous = self._threads.get(thread)
            resumed = is_command(inputs) and getattr(inputs, "resume", None) is not None
            if resumed:
                agent_payload["resumed"] = True
            if previous is not None:
                prev_id, prev_interrupted = previous
                key = "resumed_from_instance_id" if (prev_interrupted or resumed) else None
                agent_payload[key or "previous_instance_id"] = prev_id

        outer = ambient_parent(self._tracer, skip=self._root_spans)
        if outer is not None:
            instance_id, parent_span = outer
            self._raise_if_terminated(instance_id)
            owns = False
        else:
            instance_id = self._settings.start_instance(self._tracer, str(run_id))
            parent_span = None
            owns = True
        try:
            agent_span = self._create(instance_id, AGENT, parent_span, agent_payload)
            root_data["agent_span"] = agent_span
            extra: tuple[str, ...] = ()
            span_id = agent_span
            if schema != AGENT:
                assert inner_payload is not None
                span_id = self._create(instance_id, schema, agent_span, inner_payload)
                extra = (agent_span,)
            run = self._runs.open_root(
                run_id,
                instance_id=instance_id,
                span_id=span_id,
                schema_name=schema,
                owns_instance=owns,
                data=root_data,
                extra_spans=extra,
            )
        except Exception:
            if owns:  # never leave an instance open that no run will finish
                self._tracer.finish_instance(instance_id, status="cancelled")
            raise
        self._root_spans.add(agent_span)
        if root_data["ambient"]:
            push_span(span_id)
        return run

    def _should_fold(
        self, parent: RunState, name: str, tags: list[str] | None, step: int | None
    ) -> bool:
        if tags and TAG_HIDDEN in tags:
            return True
        if name in _PLUMBING_NAMES or name.startswith(MIDDLEWARE_NAME + "."):
            return True
        # A LangGraph node runs [its own steps..., untraced channel writers, routers...] as one
        # sequence: a traced step that follows an untraced one is a conditional-edge router.
        if step is not None and step > 1 and parent.schema_name == NODE:
            seen = parent.data.get("steps")
            return not seen or (step - 1) not in seen
        return False

    @staticmethod
    def _note_step(parent: RunState, step: int | None) -> None:
        if step is not None and parent.schema_name == NODE:
            seen = parent.data.get("steps")
            if seen is None:
                parent.data["steps"] = {step}
            else:
                seen.add(step)

    @staticmethod
    def _decorate(
        payload: dict[str, Any],
        run_id: UUID,
        tags: list[str] | None,
        metadata: Mapping[str, Any] | None,
    ) -> None:
        payload["run_id"] = str(run_id)
        user_tags = _user_tags(tags)
        if user_tags:
            payload["tags"] = user_tags
        user_md = payloads.user_metadata(metadata)
        if user_md:
            payload["metadata"] = user_md

    # -- internals: ending -------------------------------------------------------------------

    def _ending(self, run_id: UUID) -> RunState | None:
        """The traced run an end/error callback is about, or None (unknown, or folded: then it
        is closed here, since its span belongs to an ancestor)."""
        run = self._runs.get(run_id)
        if run is not None and run.folded:
            self._runs.close(run_id)
            return None
        return run

    def _end_with_error(self, run_id: UUID, error: BaseException) -> None:
        run = self._ending(run_id)
        if run is None:
            return
        status, result = self._error_outcome(error)
        if isinstance(error, GraphInterrupt):
            self._note_interrupts(run, result["interrupts"])
        self._end(run, status, result, check_termination=False)

    @staticmethod
    def _error_outcome(error: BaseException) -> tuple[str, dict[str, Any]]:
        status = status_for(error, control_flow=(GraphBubbleUp,))
        if isinstance(error, PrefactorTerminatedError):
            return status, {"terminated": True, "reason": getattr(error, "reason", None)}
        if status == "complete":
            if isinstance(error, GraphInterrupt):
                return status, {"interrupted": True, "interrupts": interrupts_of(error)}
            if isinstance(error, ParentCommand):
                command = error.args[0] if error.args else None
                return status, {"command": payloads.command_payload(command)}
            return status, {"bubble_up": type(error).__name__}
        if status == "cancelled":
            return status, {"cancelled": True, "reason": type(error).__name__}
        return status, {"error": error_info(error)}

    def _end(
        self,
        run: RunState,
        status: str,
        result: dict[str, Any],
        *,
        check_termination: bool = True,
    ) -> None:
        if run.schema_name == LLM:
            self._add_streaming(run, result)
        if run.run_id == run.root_id:
            self._end_root(run, status, result, check_termination=check_termination)
            return
        root = self._runs.root_of(run.run_id)
        self._runs.close(run.run_id)
        if status == "complete" and root is not None:
            status = self._cancel_unended(root, run, result)
        events = run.data.get("events")
        if events:
            result["events"] = events
        self._finish(run.span_id, status, result)
        if run.data.get("ambient"):
            remove_span(run.span_id)
        if check_termination:
            self._raise_if_terminated(run.instance_id)

    def _end_root(
        self, run: RunState, status: str, result: dict[str, Any], *, check_termination: bool
    ) -> None:
        root = self._runs.close_root(run.run_id)
        if root is None:
            return
        self._root_spans.discard(run.data.get("agent_span", ""))
        terminated = check_termination and self._tracer.is_terminated(run.instance_id)
        if terminated:
            status = "cancelled"
            result["terminated"] = True
            result["reason"] = self._tracer.termination_reason(run.instance_id)
        interrupts = root.data.get("interrupts")
        if interrupts and status == "complete":
            result["interrupted"] = True
            result["interrupts"] = interrupts
        for key in ("interrupt_checkpoint_id", "resumed_from_checkpoint_id"):
            if key in root.data:
                result[key] = root.data[key]
        events = run.data.get("events")
        if events:
            result["events"] = events
        # Children whose end never came (a stream closed early, a swallowed cancellation).
        unended = [r for r in root.runs.values() if r is not run]
        if status == "complete" and not all(r.folded for r in unended):
            status = self._closed_early(result)
        self._cancel_runs(unended)
        self._finish(run.span_id, status, result)
        for span_id in reversed(root.extra_spans):
            outer = {k: v for k, v in result.items() if k != "events"}
            self._finish(span_id, status, outer)
        if root.owns_instance:
            self._tracer.finish_instance(run.instance_id, status=status)
        thread = run.data.get("thread_id")
        if thread is not None:
            self._threads.set(thread, (run.instance_id, bool(result.get("interrupted"))))
        if run.data.get("ambient"):
            remove_span(run.span_id)
        prune_closed(self._tracer)
        if terminated:
            raise PrefactorTerminatedError(result.get("reason"))

    def _cancel_unended(self, root: RootState, run: RunState, result: dict[str, Any]) -> str:
        """The status of a non-root ``run`` ending ``complete``: ``cancelled`` if runs under it
        are still open (they are cancelled with it), else ``complete``."""
        runs = list(root.runs.values())  # a snapshot: other threads may start runs meanwhile
        if not any(other.parent_run_id == run.run_id for other in runs):
            return "complete"  # the usual end: nothing under it is open
        inside = {run.run_id}
        unended: list[RunState] = []
        for other in sorted(runs, key=lambda r: r.started_at):
            if other.parent_run_id in inside:
                inside.add(other.run_id)
                unended.append(other)
        if all(r.folded for r in unended):
            return "complete"
        for other in unended:
            self._runs.close(other.run_id)
        self._cancel_runs(unended)
        return self._closed_early(result)

    @staticmethod
    def _closed_early(result: dict[str, Any]) -> str:
        """Mark ``result`` as a run that ended before its children: ``cancelled``.

        langchain-core never ends a run before its children, except when the consumer of a
        ``stream()`` stops early: closing the generator ends every stream step at once, the
        outermost first, with the output so far (which is kept).
        """
        result["cancelled"] = True
        result["reason"] = "stream closed before its end"
        return "cancelled"

    def _cancel_runs(self, runs: list[RunState]) -> None:
        """Finish the spans of ``runs`` (open runs whose end will not be recorded) ``cancelled``,
        innermost first."""
        for child in sorted(runs, key=lambda r: r.started_at, reverse=True):
            if not child.folded:
                self._tracer.finish_span(
                    child.span_id,
                    status="cancelled",
                    result_payload={"cancelled": True, "reason": "parent run ended first"},
                )

    def _abandon(
        self, root: RootState, reason: str = "no end callback within idle timeout"
    ) -> None:
        root_run = root.runs.get(root.root_id)
        if root_run is not None:
            self._root_spans.discard(root_run.data.get("agent_span", ""))
        try:
            cancel_abandoned(self._tracer, root, reason=reason)
        except Exception as exc:
            self._errors.record("abandon", exc)

    # -- internals: misc ---------------------------------------------------------------------

    def _create(
        self, instance_id: str, schema: str, parent_span: str | None, payload: dict[str, Any]
    ) -> str:
        span_id: str = self._tracer.create_span(
            instance_id, schema, parent_span_id=parent_span, payload=payload, policy=self._policy
        )
        return span_id

    def _finish(self, span_id: str, status: str, result: dict[str, Any]) -> None:
        self._tracer.finish_span(span_id, status=status, result_payload=result)

    def _raise_if_terminated(self, instance_id: str) -> None:
        if self._tracer.is_terminated(instance_id):
            raise PrefactorTerminatedError(self._tracer.termination_reason(instance_id))

    def _note_interrupts(self, run: RunState, interrupts: list[dict[str, Any]]) -> None:
        root = self._runs.root(run.root_id)
        if root is None or not interrupts:
            return
        known = root.data.setdefault("interrupts", [])
        ids = {i.get("id") for i in known}
        for item in interrupts:
            if item.get("id") is None or item.get("id") not in ids:
                known.append(item)
                ids.add(item.get("id"))

    def _add_event(self, run_id: UUID, kind: str, name: str, data: Any) -> None:
        run = self._runs.owner(run_id)
        if run is None:
            return
        events = run.data.setdefault("events", [])
        if len(events) < _MAX_EVENTS:
            events.append({"kind": kind, "name": name, "data": data, "timestamp": _now()})
        else:
            run.data["events_dropped"] = run.data.get("events_dropped", 0) + 1

    @staticmethod
    def _add_streaming(run: RunState, result: dict[str, Any]) -> None:
        first = run.data.get("first_token")
        start = run.data.get("t0")
        if first is None or start is None:
            return
        last = run.data.get("last_token", first)
        end = time.perf_counter()
        chunks = run.data.get("chunks", 0)
        stream: dict[str, Any] = {
            "time_to_first_token_ms": round((first - start) * 1000.0, 3),
            "chunks": chunks,
            "duration_ms": round((end - start) * 1000.0, 3),
        }
        if chunks > 1 and last > first:
            stream["chunks_per_second"] = round((chunks - 1) / (last - first), 3)
        result["streaming"] = stream
