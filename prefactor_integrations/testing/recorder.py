"""``TraceRecorder``: a local Prefactor server plus the helpers to trace into it and read back."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefactor_core import PrefactorCoreClient
    from prefactor_integrations.langchain import PrefactorCallbackHandler
    from prefactor_integrations.llama_index import PrefactorSpanHandler
    from prefactor_local.server import LocalServer
    from prefactor_local.trace import Trace

__all__ = ["DEFAULT_AGENT_ID", "TraceRecorder"]

DEFAULT_AGENT_ID = "test-agent"
ENV_API_URL = "PREFACTOR_API_URL"
ENV_API_TOKEN = "PREFACTOR_API_TOKEN"
ENV_AGENT_ID = "PREFACTOR_AGENT_ID"


class TraceRecorder:
    """Records traces into a ``prefactor_local`` server running in this process.

    >>> with TraceRecorder() as recorder:
    ...     agent.invoke(inputs, config={"callbacks": [recorder.langchain_handler()]})
    ...     print(recorder.outline())

    It starts a :class:`prefactor_local.server.LocalServer` (a temporary database unless
    ``db_path`` is given), gives a ``PrefactorCoreClient`` aimed at it (:attr:`client`, with
    short retry delays) and handlers built on that client. Reading methods (:meth:`traces`,
    :meth:`instances`, :meth:`spans`) first wait until everything traced so far was delivered.
    :meth:`environ` gives the ``PREFACTOR_*`` variables for code that configures itself from
    the environment. The ``prefactor_trace`` pytest fixture is one of
    these.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        agent_id: str = DEFAULT_AGENT_ID,
        token: str | None = None,
        flush_timeout: float = 15.0,
    ) -> None:
        self.agent_id = agent_id
        self.flush_timeout = flush_timeout
        self._db_path = db_path
        self._token = token
        self._server: LocalServer | None = None
        self._client: PrefactorCoreClient | None = None
        self._handlers: list[Any] = []
        self._instrumented: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> TraceRecorder:
        """Start the local server (no-op when running)."""
        if self._server is None:
            from prefactor_local.server import LocalServer

            self._server = LocalServer(db_path=self._db_path, token=self._token).start()
        return self

    def stop(self) -> None:
        """Undo instrumentation, close handlers and the client, and stop the server."""
        for framework in reversed(self._instrumented):
            try:
                if framework == "langchain":
                    from prefactor_integrations.langchain import uninstrument as lc_uninstrument

                    lc_uninstrument()
                else:
                    from prefactor_integrations.llama_index import uninstrument as li_uninstrument

                    li_uninstrument()
            except Exception:  # teardown must go on
                pass
        self._instrumented.clear()
        for handler in self._handlers:
            close = getattr(handler, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    pass
        self._handlers.clear()
        client, self._client = self._client, None
        if client is not None:
            client.tracer.close(timeout=5.0)
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> TraceRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where to send -------------------------------------------------------------------------

    @property
    def server(self) -> LocalServer:
        """The running local server (fault injection: ``recorder.server.faults``)."""
        if self._server is None:
            raise RuntimeError("the recorder is not started (use it in a 'with' block)")
        return self._server

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.server.url

    @property
    def token(self) -> str:
        """The server's API token."""
        return self.server.token

    def environ(self) -> dict[str, str]:
        """``PREFACTOR_API_URL``, ``PREFACTOR_API_TOKEN`` and ``PREFACTOR_AGENT_ID`` for it."""
        return {ENV_API_URL: self.url, ENV_API_TOKEN: self.token, ENV_AGENT_ID: self.agent_id}

    @contextmanager
    def environment(self) -> Iterator[dict[str, str]]:
        """Set :meth:`environ` in ``os.environ`` for a ``with`` block, then restore it."""
        values = self.environ()
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield values
        finally:
            for name, old in saved.items():
                if old is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = old

    @property
    def client(self) -> PrefactorCoreClient:
        """A ``PrefactorCoreClient`` aimed at the server (made on first use)."""
        if self._client is None:
            from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, QueueConfig
            from prefactor_http.config import HttpClientConfig

            http = HttpClientConfig(
                api_url=self.url,
                api_token=self.token,
                request_timeout=5.0,
                max_retries=2,
                initial_retry_delay=0.05,
                max_retry_delay=0.5,
            )
            config = PrefactorCoreConfig(
                http_config=http,
                agent_id=self.agent_id,
                queue_config=QueueConfig(max_retries=1, retry_delay_base=0.05, shutdown_timeout=5),
                termination_poll_interval=1.0,
            )
            self._client = PrefactorCoreClient(config)
        return self._client

    # -- handlers ------------------------------------------------------------------------------

    def langchain_handler(self, **kwargs: Any) -> PrefactorCallbackHandler:
        """A new ``PrefactorCallbackHandler`` on :attr:`client` (keyword arguments are passed
        on; ``agent_id`` defaults to the recorder's). Closed by :meth:`stop`."""
        from prefactor_integrations.langchain import PrefactorCallbackHandler

        kwargs.setdefault("agent_id", self.agent_id)
        handler = PrefactorCallbackHandler(self.client, **kwargs)
        self._handlers.append(handler)
        return handler

    def instrument_langchain(self, **kwargs: Any) -> PrefactorCallbackHandler:
        """Trace every LangChain run of the process into the server until :meth:`stop`."""
        from prefactor_integrations.langchain import instrument

        handler = instrument(self.langchain_handler(**kwargs))
        self._instrumented.append("langchain")
        return handler

    def instrument_llama_index(self, **kwargs: Any) -> PrefactorSpanHandler:
        """Trace every LlamaIndex run of the process into the server until :meth:`stop`.

        Replaces an instrumentation already in place (LlamaIndex allows one at a time).
        """
        from prefactor_integrations.llama_index import instrument, uninstrument

        uninstrument()
        kwargs.setdefault("agent_id", self.agent_id)
        handler = instrument(self.client, **kwargs)
        self._instrumented.append("llama_index")
        return handler

    # -- reading back --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything traced in this process so far was sent; True if it was."""
        from prefactor_core import flush_all

        return bool(flush_all(self.flush_timeout if timeout is None else timeout))

    def _flushed(self) -> None:
        if not self.flush(self.flush_timeout):
            raise AssertionError(
                f"traces were not delivered within {self.flush_timeout} s: "
                f"{self.client.stats().as_dict()}"
            )

    def instances(self, *, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Stored agent instances (oldest first), after flushing."""
        self._flushed()
        return list(reversed(self.server.store.list_instances(agent_id)))

    def spans(self, instance_id: str) -> list[dict[str, Any]]:
        """Stored spans of one instance (in creation order), after flushing."""
        self._flushed()
        return self.server.store.list_spans(instance_id)

    def traces(self, *, agent_id: str | None = None) -> list[Trace]:
        """One ``prefactor_local.trace.Trace`` per stored instance (oldest first)."""
        from prefactor_local.trace import Trace

        store = self.server.store
        return [
            Trace.build(instance, store.list_spans(instance["id"]))
            for instance in self.instances(agent_id=agent_id)
        ]

    def trace(self) -> Trace:
        """The only stored trace; ``AssertionError`` when there is not exactly one."""
        traces = self.traces()
        if len(traces) != 1:
            from .outline import outline

            shown = "\n".join(f"- {t.id}:\n{outline(t)}" for t in traces) or "(none)"
            raise AssertionError(f"expected exactly one trace, found {len(traces)}:\n{shown}")
        return traces[0]

    def outline(self, **kwargs: Any) -> str:
        """Outlines of every stored trace, separated by blank lines (see ``outline()``)."""
        from .outline import outline

        return "\n\n".join(outline(trace, **kwargs) for trace in self.traces())

    def terminate(self, instance_id: str, reason: str | None = None) -> Mapping[str, Any]:
        """Terminate an instance on the server, as the platform would."""
        return self.server.terminate(instance_id, reason)
