"""The LlamaIndex span handler and event handler that report to Prefactor."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llama_index_instrumentation.base import BaseEvent
from llama_index_instrumentation.event_handlers import BaseEventHandler
from llama_index_instrumentation.span import BaseSpan
from llama_index_instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from prefactor_core.fields import check_bool, check_int, check_seconds
from prefactor_http._version import __version__

from .._shared import AdapterSetup, InternalErrors, flush_tracer, run_stats
from . import _termination
from ._engine import Engine
from ._payloads import CaptureOptions
from .schemas import KEEP_KEYS, LLAMA_INDEX_SPAN_TYPES

if TYPE_CHECKING:
    from prefactor_core import PrefactorCoreClient, SchemaRegistry
    from prefactor_http.models import InstancePurpose

__all__ = ["SDK_ENTRY", "PrefactorEventHandler", "PrefactorSpanHandler"]

SDK_ENTRY = f"prefactor-llama-index@{__version__}"
_logger = logging.getLogger("prefactor_integrations.llama_index")
# What ``open_spans`` holds for every open dispatcher span (the data lives in the engine).
_OPEN = BaseSpan.model_construct(id_="prefactor", parent_id=None, tags={})


class PrefactorSpanHandler(BaseSpanHandler[BaseSpan]):
    """Reports LlamaIndex dispatcher spans to Prefactor.

    Each span without a parent (a query, chat, retrieval, agent or workflow run) becomes one
    agent instance; its children become spans of that instance. Add it to LlamaIndex's root
    dispatcher together with :attr:`event_handler` (or call :func:`instrument`, which does both).

    Args:
        client: a ``prefactor_core.PrefactorCoreClient``; built from ``PREFACTOR_API_URL`` and
            ``PREFACTOR_API_TOKEN`` when omitted.
        agent_id: the Prefactor agent (default ``PREFACTOR_AGENT_ID``).
        agent_name: name of the registered agent version (default ``"llama-index-agent"``).
        agent_version: your version label, part of the version's external identifier.
        environment_id: the Prefactor environment (default ``PREFACTOR_ENVIRONMENT_ID``).
        purpose: instance purpose: ``"live"``, ``"smoke_test"`` or ``"eval"``.
        capture_content: record texts (messages, prompts, queries, responses, node text and
            metadata, tool arguments and outputs). With False each text is sent as its size,
            e.g. ``"[42 chars]"``; the structure (keys, message roles, node counts), names,
            models, ids, token usage, timings and error types stay.
        capture_embeddings: also record embedding vectors (off: only count and dimension).
        mask: a callable applied by the core (off the agent's thread) to every payload before
            it is sent; what it returns is sent instead.
        schema_registry: a ``prefactor_core.SchemaRegistry`` with span types of your own; its
            entries win over the built-in LlamaIndex ones of the same name.
        trace_ingestion: also trace node parsing and embedding calls made outside any run (index
            building); each top-level one then becomes an instance.
        max_nodes / max_text_chars: how many retrieved nodes, and how much of each text, to keep.
        idle_timeout: seconds after which a run whose end never came is finished ``cancelled``.
        enforce_termination: raise ``PrefactorTerminatedError`` into runs the platform terminated.
    """

    _engine: Engine = PrivateAttr()
    _client: PrefactorCoreClient = PrivateAttr()
    _event_handler: PrefactorEventHandler | None = PrivateAttr(default=None)

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
        capture_embeddings: bool = False,
        mask: Callable[[Any], Any] | None = None,
        schema_registry: SchemaRegistry | None = None,
        trace_ingestion: bool = False,
        max_nodes: int = 50,
        max_text_chars: int = 4000,
        idle_timeout: float = 1800.0,
        enforce_termination: bool = True,
    ) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        for name, flag in (
            ("capture_embeddings", capture_embeddings),
            ("trace_ingestion", trace_ingestion),
            ("enforce_termination", enforce_termination),
        ):
            check_bool(name, flag)
        check_int("max_nodes", max_nodes, 0, 100_000)
        check_int("max_text_chars", max_text_chars, 0, 10_000_000)
        check_seconds("idle_timeout", idle_timeout, 0, 7 * 86_400)
        setup = AdapterSetup.resolve(
            client,
            sdk_entry=SDK_ENTRY,
            span_types=LLAMA_INDEX_SPAN_TYPES,
            keep_keys=KEEP_KEYS,
            schema_prefix="llama-index",
            agent_name=agent_name or "llama-index-agent",
            agent_version_label=agent_version,
            description="LlamaIndex application traced by prefactor-integrations",
            agent_id=agent_id,
            environment_id=environment_id,
            purpose=purpose,
            capture_content=capture_content,
            mask=mask,
            schema_registry=schema_registry,
        )
        self._client = setup.client
        self._engine = Engine(
            setup.tracer,
            setup.settings,
            options=CaptureOptions(
                capture_embeddings=capture_embeddings,
                max_nodes=max_nodes,
                max_text_chars=max_text_chars,
            ),
            policy=setup.policy,
            trace_ingestion=trace_ingestion,
            errors=InternalErrors(_logger),
            idle_timeout=idle_timeout,
            enforce_termination=enforce_termination,
        )

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "PrefactorSpanHandler"

    @property
    def event_handler(self) -> PrefactorEventHandler:
        """The event handler sharing this span handler's state (created on first use)."""
        if self._event_handler is None:
            self._event_handler = PrefactorEventHandler(self)
        return self._event_handler

    @property
    def client(self) -> PrefactorCoreClient:
        """The ``PrefactorCoreClient`` this handler reports to."""
        return self._client

    @property
    def agent_schema_version(self) -> dict[str, Any]:
        """The schema version registered with every instance (stable across runs)."""
        return dict(self._engine.settings.agent_schema_version)

    @property
    def internal_errors(self) -> InternalErrors:
        """Errors the handlers swallowed so LlamaIndex never saw them."""
        return self._engine.errors

    def stats(self) -> dict[str, Any]:
        """Counters: open top-level runs and spans, abandoned runs, swallowed internal errors."""
        return run_stats(self._engine.tracker, self._engine.errors)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything traced so far was sent (or ``timeout`` passed); True if all."""
        return flush_tracer(self._engine.tracer, self._engine.errors, timeout)

    def sweep(self) -> int:
        """Finish ``cancelled`` every run idle longer than ``idle_timeout``; return how many."""
        return len(self._engine.tracker.sweep())

    def engine(self) -> Engine:
        """The shared state (used by :class:`PrefactorEventHandler`)."""
        return self._engine

    # -- BaseSpanHandler -----------------------------------------------------------------------
    #
    # ``span_enter`` / ``span_exit`` / ``span_drop`` are overridden so the hot path allocates no
    # span object and takes no lock (``open_spans`` only needs single dict operations, atomic in
    # CPython); ``new_span`` and the ``prepare_to_*`` hooks keep the base-class contract for
    # callers that use them directly, and always return a (truthy) span.

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open the Prefactor span for dispatcher span ``id_`` (never raises)."""
        engine = self._engine
        try:
            engine.enter(id_, bound_args, instance, parent_id, tags)
        except Exception as exc:
            engine.errors.record("span_enter", exc, span=id_)
        self.open_spans[id_] = _OPEN

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """Finish (or, for streams, hold open) the span ``id_`` and forget it (never raises)."""
        engine = self._engine
        try:
            engine.exit(id_, instance, result=result)
        except Exception as exc:
            engine.errors.record("span_exit", exc, span=id_)
        self.open_spans.pop(id_, None)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        """Finish the span ``id_`` as failed/cancelled and forget it (never raises)."""
        engine = self._engine
        try:
            engine.exit(id_, instance, err=err, dropped=True)
        except Exception as exc:
            engine.errors.record("span_drop", exc, span=id_)
        self.open_spans.pop(id_, None)

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """Open the Prefactor span for ``id_``; returns the (shared) marker span."""
        try:
            self._engine.enter(id_, bound_args, instance, parent_span_id, tags)
        except Exception as exc:
            self._engine.errors.record("new_span", exc, span=id_)
        return _OPEN

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """Finish (or hold open, for streams) the span ``id_``; always returns a span."""
        try:
            self._engine.exit(id_, instance, result=result)
        except Exception as exc:
            self._engine.errors.record("exit_span", exc, span=id_)
        return self.open_spans.get(id_) or _OPEN

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """Finish the span ``id_`` as failed/cancelled; always returns a span."""
        try:
            self._engine.exit(id_, instance, err=err, dropped=True)
        except Exception as exc:
            self._engine.errors.record("drop_span", exc, span=id_)
        return self.open_spans.get(id_) or _OPEN

    def close(self) -> None:
        """Finish every still-open run as ``cancelled`` and stop enforcing termination."""
        try:
            self._engine.close()
            _termination.disarm(self._engine)
        except Exception as exc:
            self._engine.errors.record("close", exc)


class PrefactorEventHandler(BaseEventHandler):
    """Fills Prefactor span payloads from LlamaIndex instrumentation events.

    Created from (and sharing state with) a :class:`PrefactorSpanHandler`.
    """

    _engine: Engine = PrivateAttr()

    def __init__(self, span_handler: PrefactorSpanHandler) -> None:
        super().__init__()
        self._engine = span_handler.engine()

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "PrefactorEventHandler"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        """Record ``event`` on the span it belongs to (never raises)."""
        try:
            self._engine.on_event(event)
        except Exception as exc:
            self._engine.errors.record("event", exc, event=type(event).__name__)
