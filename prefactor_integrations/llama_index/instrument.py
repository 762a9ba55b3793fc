"""One-call setup: attach the Prefactor handlers to LlamaIndex's root dispatcher."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .handlers import PrefactorSpanHandler

if TYPE_CHECKING:
    from llama_index_instrumentation.dispatcher import Dispatcher

    from prefactor_core import PrefactorCoreClient

__all__ = ["instrument", "instrumented_handler", "uninstrument"]

_lock = threading.Lock()
_active: PrefactorSpanHandler | None = None


def _root_dispatcher() -> Dispatcher:
    from llama_index_instrumentation import get_dispatcher

    return get_dispatcher()


def instrument(
    client: PrefactorCoreClient | None = None,
    *,
    agent_id: str | None = None,
    agent_name: str | None = None,
    capture_content: bool = True,
    mask: Callable[[Any], Any] | None = None,
    **options: Any,
) -> PrefactorSpanHandler:
    """Trace every LlamaIndex query, chat, retrieval, agent and workflow run into Prefactor.

    Adds one :class:`PrefactorSpanHandler` and its event handler to LlamaIndex's root dispatcher
    and returns the span handler. Calling it again while instrumented changes nothing and
    returns the handler already installed. Without ``client`` the client is configured from
    ``PREFACTOR_API_URL``, ``PREFACTOR_API_TOKEN`` and ``PREFACTOR_AGENT_ID``. Other keyword
    arguments are passed to :class:`PrefactorSpanHandler`.
    """
    global _active
    with _lock:
        if _active is not None:
            return _active
        handler = PrefactorSpanHandler(
            client,
            agent_id=agent_id,
            agent_name=agent_name,
            capture_content=capture_content,
            mask=mask,
            **options,
        )
        dispatcher = _root_dispatcher()
        dispatcher.add_span_handler(handler)
        dispatcher.add_event_handler(handler.event_handler)
        _active = handler
        return handler


def uninstrument() -> None:
    """Remove the handlers added by :func:`instrument` (no-op when not instrumented).

    Runs still open are finished as ``cancelled``: their ends can no longer be observed.
    """
    global _active
    with _lock:
        handler, _active = _active, None
        if handler is None:
            return
        dispatcher = _root_dispatcher()
        events = handler.event_handler
        dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not handler]
        dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not events]
    handler.close()


def instrumented_handler() -> PrefactorSpanHandler | None:
    """The span handler installed by :func:`instrument`, or None."""
    return _active
