"""``PrefactorMiddleware``: the published middleware's constructors on this package's handler.

The middleware holds a :class:`PrefactorCallbackHandler` of its own and drives it from the agent
hooks, so a middleware agent stores the same tree as a handler agent: one agent instance per run,
``langchain:node`` spans for the model and tool steps with the real model and tool spans under
them, nothing waiting on the network.

LangGraph runs each hook inside a graph node with its own copy of the callback manager, so the
run is tracked by the object LangGraph keeps for one run (its run control), and the handler is
attached to the model and tool calls' callbacks by the wrap hooks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from langchain.agents.middleware import AgentMiddleware
from langchain_core.callbacks import BaseCallbackManager
from langgraph.config import get_config

from prefactor_core.exceptions import PrefactorTerminatedError

from .._shared import push_span, remove_span
from .handler import MIDDLEWARE_NAME, PrefactorCallbackHandler
from .tool_schemas import ToolSchemas

if TYPE_CHECKING:
    from langchain.agents.middleware import ModelRequest, ModelResponse
    from langgraph.prebuilt.tool_node import ToolCallRequest

    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry

__all__ = ["PrefactorMiddleware"]

_ROOT_NAME = "LangGraph"  # what a handler agent's root run is called (the graph's name)
# Runs whose end the middleware never sees (a graph that raised outside the model and tool calls,
# a run another handler traces that failed) are dropped past this many, oldest first, and any
# run whose root the handler has already ended.
_PRUNE_ABOVE = 64
_MAX_RUNS = 4096


@dataclass
class _Run:
    """One agent run seen by the middleware."""

    control: Any  # kept so its id() stays this run's until the run ends
    root_id: UUID | None  # None: another of our handlers traces this run


@dataclass
class _Node:
    """A graph node (model or tool step) the middleware opened."""

    key: int
    run: _Run
    node_id: UUID
    callbacks: list[BaseCallbackManager]  # the managers the node's calls take handlers from


def _current() -> tuple[int, Any, Mapping[str, Any]] | None:
    """``(key, run control, config)`` of the graph run calling a hook, or None outside one."""
    try:
        config = get_config()
        control = config["configurable"]["__pregel_runtime"].control
    except (RuntimeError, KeyError, AttributeError, TypeError):
        return None
    return id(control), control, config


class PrefactorMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Traces a ``langchain.agents.create_agent`` agent into Prefactor, one instance per run.

    ``create_agent(model, tools, middleware=[PrefactorMiddleware.from_config(...)])``. List it
    first so that retries or fallbacks of other middleware happen inside it. Exactly one of
    ``client`` / ``instance`` is given; ``instance=`` is not supported (see the error it raises).

    Args:
        client: a ``prefactor_core.PrefactorCoreClient`` (it need not be initialised).
        instance: not supported: every run gets an agent instance of its own.
        agent_id: the Prefactor agent.
        agent_name: display name of the agent version (default ``"langchain-agent"``).
        tool_schemas: span types of their own for chosen tools (as on the handler).
        environment_id: the Prefactor environment.
        schema_registry: span types of your own (as on the handler).
    """

    def __init__(
        self,
        client: PrefactorCoreClient | None = None,
        instance: Any = None,
        agent_id: str | None = None,
        agent_name: str | None = None,
        tool_schemas: ToolSchemas | None = None,
        *,
        environment_id: str | None = None,
        schema_registry: SchemaRegistry | None = None,
    ) -> None:
        super().__init__()
        if client is not None and instance is not None:
            raise ValueError("Provide either 'client' or 'instance', not both.")
        if instance is not None:
            raise ValueError(
                "PrefactorMiddleware(instance=...) is not supported: every run gets an agent "
                "instance of its own. Pass client=... or use PrefactorMiddleware.from_config(); "
                "to nest runs under spans of an instance you manage, open a span around the run."
            )
        if client is None:
            raise ValueError(
                "Provide either 'client' or 'instance', or build the middleware with "
                "PrefactorMiddleware.from_config(api_url=..., api_token=...)."
            )
        from prefactor_core import PrefactorCoreClient

        if not isinstance(client, PrefactorCoreClient):
            raise TypeError(
                f"client must be a prefactor_core.PrefactorCoreClient; got {type(client).__name__}"
            )
        self._handler = PrefactorCallbackHandler(
            client,
            agent_id=agent_id,
            agent_name=agent_name,
            environment_id=environment_id,
            schema_registry=schema_registry,
            tool_schemas=tool_schemas,
        )
        self._client: PrefactorCoreClient | None = client
        self._owns_client = False
        self._runs: dict[int, _Run] = {}
        self._lock = threading.Lock()
        self._parent_span: str | None = None
        self._closed = False

    @classmethod
    def from_config(
        cls,
        api_url: str,
        api_token: str,
        agent_id: str | None = None,
        agent_name: str | None = None,
        environment_id: str | None = None,
        schema_registry: SchemaRegistry | None = None,
        include_langchain_schemas: bool = True,
        tool_schemas: ToolSchemas | None = None,
    ) -> PrefactorMiddleware:
        """A middleware with a client of its own for ``api_url`` / ``api_token``.

        The LangChain span types are always registered (``include_langchain_schemas`` is
        accepted for compatibility); ``close()`` closes the client.
        """
        from prefactor_core import PrefactorCoreConfig
        from prefactor_http.config import HttpClientConfig

        http = HttpClientConfig(api_url=api_url, api_token=api_token)
        client = cls.create_client(PrefactorCoreConfig(http_config=http))
        middleware = cls(
            client=client,
            agent_id=agent_id,
            agent_name=agent_name,
            tool_schemas=tool_schemas,
            environment_id=environment_id,
            schema_registry=schema_registry,
        )
        middleware._owns_client = True
        return middleware

    @classmethod
    def create_client(cls, config: PrefactorCoreConfig) -> PrefactorCoreClient:
        """A ``PrefactorCoreClient`` for ``config`` that names this adapter in its SDK header."""
        return PrefactorCallbackHandler.create_client(config)

    @property
    def name(self) -> str:
        """The name of this middleware's graph nodes (``PrefactorMiddleware.before_agent``...)."""
        return MIDDLEWARE_NAME

    @property
    def handler(self) -> PrefactorCallbackHandler:
        """The handler this middleware drives (``flush()``, ``stats()``...)."""
        return self._handler

    async def ensure_initialized(self) -> PrefactorCoreClient:
        """Initialise the client if this middleware owns it; return it.

        Not needed before a run: instances are made per run. ``ValueError`` after ``close()``.
        """
        client = self._client
        if client is None or self._closed:
            raise ValueError("Client is not available - middleware has been closed")
        if self._owns_client and not client.initialized:
            await client.initialize()
        return client

    async def close(self, timeout: float = 10.0) -> None:
        """Finish still-open runs ``cancelled``, deliver what was traced, and close the client
        if this middleware created it."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._handler.close, timeout)
        with self._lock:
            self._runs.clear()
        if self._owns_client and self._client is not None:
            await self._client.close()
        self._client = None

    def set_parent_span(self, span_id: str | None) -> None:
        """Nest the next runs under ``span_id`` (a span of an instance you manage), or stop."""
        self._parent_span = span_id

    # -- hooks ---------------------------------------------------------------------------------

    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Open the run's agent instance and root span."""
        self._open_root(state)
        return None

    async def abefore_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Open the run's agent instance and root span."""
        self._open_root(state)
        return None

    def after_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Finish the run's root span and instance."""
        self._close_root(state)
        return None

    async def aafter_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        """Finish the run's root span and instance."""
        self._close_root(state)
        return None

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Trace the model step (its ``langchain:node`` and the model's own callbacks)."""
        node = self._open_node(request.state)
        if node is None:
            return handler(request)
        try:
            response = handler(request)
        except BaseException as exc:
            self._fail_node(node, exc, handled=False)
            raise
        self._close_node(node, {"messages": list(response.result)})
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Trace the model step (its ``langchain:node`` and the model's own callbacks)."""
        node = self._open_node(request.state)
        if node is None:
            return await handler(request)
        try:
            response = await handler(request)
        except BaseException as exc:
            self._fail_node(node, exc, handled=False)
            raise
        self._close_node(node, {"messages": list(response.result)})
        return response

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]
    ) -> Any:
        """Trace one tool call (its ``tools`` node and the tool's own callbacks)."""
        node = self._open_node(request.state, _call_config(request))
        if node is None:
            return handler(request)
        try:
            result = handler(request)
        except BaseException as exc:
            self._fail_node(node, exc, handled=_tool_node_handles(exc))
            raise
        self._close_node(node, _tool_outputs(result))
        return result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        """Trace one tool call (its ``tools`` node and the tool's own callbacks)."""
        node = self._open_node(request.state, _call_config(request))
        if node is None:
            return await handler(request)
        try:
            result = await handler(request)
        except BaseException as exc:
            self._fail_node(node, exc, handled=_tool_node_handles(exc))
            raise
        self._close_node(node, _tool_outputs(result))
        return result

    # -- internals -----------------------------------------------------------------------------

    def _open_root(self, state: Any) -> None:
        current = None if self._closed else _current()
        if current is None:
            return
        key, control, config = current
        callbacks = config.get("callbacks")
        handlers = getattr(callbacks, "handlers", None) or []
        if any(isinstance(h, PrefactorCallbackHandler) for h in handlers):
            # One of our handlers already traces this run: it owns it.
            with self._lock:
                self._prune()
                self._runs[key] = _Run(control, None)
            return
        run = _Run(control, uuid4())
        with self._lock:
            self._prune()
            self._runs[key] = run
        assert run.root_id is not None
        try:
            with self._ambient_parent():
                self._handler.on_chain_start(
                    None,
                    _as_inputs(state),
                    run_id=run.root_id,
                    parent_run_id=None,
                    tags=list(getattr(callbacks, "inheritable_tags", None) or []),
                    metadata=dict(config.get("metadata") or {}),
                    name=_ROOT_NAME,
                )
        except BaseException:
            self._forget(key)
            raise

    def _close_root(self, state: Any) -> None:
        current = _current()
        if current is None:
            return
        run = self._forget(current[0])
        if run is not None and run.root_id is not None:
            self._handler.on_chain_end(_as_inputs(state), run_id=run.root_id)

    def _open_node(self, state: Any, call_config: Any = None) -> _Node | None:
        """Open the current graph node under the run's root; attach the handler to the
        callbacks its model or tool call inherits (``call_config``'s, if the call has its own
        copy of the node's configuration)."""
        current = _current()
        if current is None:
            return None
        key, _, config = current
        with self._lock:
            run = self._runs.get(key)
        callbacks = config.get("callbacks")
        if run is None or run.root_id is None or not isinstance(callbacks, BaseCallbackManager):
            return None
        node_id = callbacks.parent_run_id
        if node_id is None:
            return None
        metadata = dict(config.get("metadata") or {})
        managers = [callbacks]
        own = call_config.get("callbacks") if isinstance(call_config, Mapping) else None
        if isinstance(own, BaseCallbackManager) and own is not callbacks:
            managers.append(own)
        node = _Node(key, run, node_id, managers)
        try:
            self._handler.on_chain_start(
                None,
                _as_inputs(state),
                run_id=node_id,
                parent_run_id=run.root_id,
                tags=[f"graph:step:{metadata.get('langgraph_step', 0)}"],
                metadata=metadata,
                name=str(metadata.get("langgraph_node") or "node"),
            )
        except PrefactorTerminatedError as exc:
            self._end_root_with(node, exc)
            raise
        for manager in managers:
            manager.add_handler(self._handler, inherit=True)
        return node

    def _detach(self, node: _Node) -> None:
        for manager in node.callbacks:
            manager.remove_handler(self._handler)

    def _close_node(self, node: _Node, outputs: Any) -> None:
        self._detach(node)
        try:
            self._handler.on_chain_end(outputs, run_id=node.node_id)
        except PrefactorTerminatedError as exc:
            self._end_root_with(node, exc)
            raise

    def _fail_node(self, node: _Node, exc: BaseException, *, handled: bool) -> None:
        """End the node with ``exc``; unless the graph goes on (``handled``), the run too:
        ``after_agent`` is not called when the graph raises."""
        self._detach(node)
        self._handler.on_chain_error(exc, run_id=node.node_id)
        if not handled:
            self._end_root_with(node, exc)

    def _end_root_with(self, node: _Node, exc: BaseException) -> None:
        self._forget(node.key)
        if node.run.root_id is not None:
            self._handler.on_chain_error(exc, run_id=node.run.root_id)

    def _prune(self) -> None:
        if len(self._runs) <= _PRUNE_ABOVE:
            return
        for key, run in list(self._runs.items()):
            if run.root_id is not None and self._handler.instance_id_for_run(run.root_id) is None:
                del self._runs[key]
        for key in list(self._runs)[: max(0, len(self._runs) - _MAX_RUNS)]:
            del self._runs[key]

    def _forget(self, key: int) -> _Run | None:
        with self._lock:
            return self._runs.pop(key, None)

    @contextmanager
    def _ambient_parent(self) -> Iterator[None]:
        parent = self._parent_span
        if parent is None:
            yield
            return
        push_span(parent)
        try:
            yield
        finally:
            remove_span(parent)


def _as_inputs(state: Any) -> Any:
    return dict(state) if isinstance(state, Mapping) else state


def _call_config(request: Any) -> Any:
    """The configuration a tool call runs with (the tool node copies the node's per call)."""
    return getattr(getattr(request, "runtime", None), "config", None)


def _tool_outputs(result: Any) -> Any:
    """What a ``tools`` node returns for one call: a state update, or the ``Command``."""
    if isinstance(result, Mapping) or hasattr(result, "goto"):
        return result
    return {"messages": [result]}


def _tool_node_handles(exc: BaseException) -> bool:
    """True if ``create_agent``'s tool node turns ``exc`` into an error message for the model
    (invalid tool arguments) instead of failing the run."""
    try:
        from langgraph.prebuilt.tool_node import ToolInvocationError
    except ImportError:  # pragma: no cover - older langgraph
        return False
    return isinstance(exc, ToolInvocationError)
