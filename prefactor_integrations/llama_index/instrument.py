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
# The arguments the installed handler was built from, to tell a repeated call from a new set-up.
_active_args: dict[str, Any] | None = None


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
    and returns the span handler. Calling it again with the same arguments returns the handler
    already installed; with different ones (say ``capture_content=False``) it replaces that
    handler, as :func:`uninstrument` then ``instrument`` would. Without ``client`` the client is
    configured from ``PREFACTOR_API_URL``, ``PREFACTOR_API_TOKEN`` and ``PREFACTOR_AGENT_ID``.
    Other keyword arguments are passed to :class:`PrefactorSpanHandler`.
    """
    global _active, _active_args
    args: dict[str, Any] = dict(
        options,
        client=client,
        agent_id=agent_id,
        agent_name=agent_name,
        capture_content=capture_content,
        mask=mask,
    )
    with _lock:
        if _active is not None and _active_args is not None and _same(_active_args, args):
            return _active
        handler = PrefactorSpanHandler(
            client,
            agent_id=agent_id,
            agent_name=agent_name,
            capture_content=capture_content,
            mask=mask,
            **options,
        )
        replaced = _detach()
        dispatcher = _root_dispatcher()
        dispatcher.add_span_handler(handler)
        dispatcher.add_event_handler(handler.event_handler)
        _active, _active_args = handler, args
    if replaced is not None:
        replaced.close()
    return handler


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two sets of :func:`instrument` arguments are the same set-up (objects such as the
    client or ``mask`` compared by identity)."""
    if old.keys() != new.keys():
        return False
    for key, value in new.items():
        before = old[key]
        if before is value:
            continue
        if not isinstance(value, (str, int, float, bool)) or type(before) is not type(value):
            return False
        if before != value:
            return False
    return True


def _detach() -> PrefactorSpanHandler | None:
    """Remove the installed handlers from the root dispatcher (caller holds ``_lock``)."""
    global _active, _active_args
    handler, _active, _active_args = _active, None, None
    if handler is None:
        return None
    dispatcher = _root_dispatcher()
    events = handler.event_handler
    dispatcher.span_handlers = [h for h in dispatcher.span_handlers if h is not handler]
    dispatcher.event_handlers = [h for h in dispatcher.event_handlers if h is not events]
    return handler


def uninstrument() -> None:
    """Remove the handlers added by :func:`instrument` (no-op when not instrumented).

    Runs still open are finished as ``cancelled``: their ends can no longer be observed.
    """
    with _lock:
        handler = _detach()
    if handler is not None:
        handler.close()


def instrumented_handler() -> PrefactorSpanHandler | None:
    """The span handler installed by :func:`instrument`, or None."""
    return _active
