"""Raising ``PrefactorTerminatedError`` into a LlamaIndex run the platform terminated.

LlamaIndex calls span handlers inside ``try/except BaseException: pass``, so an error raised by a
handler never reaches the run. The only place a span can be refused is ``Dispatcher.span_enter``
itself, which the dispatcher's wrapper calls *before* running the instrumented method.

So while an engine has an open run whose instance was terminated (it is *armed*), that method is
wrapped: the wrapper asks each armed engine whether the span about to start belongs to a
terminated run and, if so, raises the error instead of entering the span (restoring LlamaIndex's
active span id, which the dispatcher set just before and would otherwise leave behind). When no
engine is armed the original method is back in place, so normal runs pay nothing for this.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["arm", "armed", "disarm"]

_lock = threading.Lock()
_armed: tuple[Engine, ...] = ()
_original: Any = None


def _span_enter(
    self: Any,
    id_: str,
    bound_args: Any,
    instance: Any = None,
    parent_id: str | None = None,
    tags: Any = None,
    **kwargs: Any,
) -> None:
    for engine in _armed:
        err = engine.termination_for(parent_id)
        if err is not None:
            try:
                from llama_index_instrumentation.span import active_span_id

                active_span_id.set(parent_id)
            except Exception:
                pass
            raise err
    original = _original
    if original is not None:
        original(
            self,
            id_=id_,
            bound_args=bound_args,
            instance=instance,
            parent_id=parent_id,
            tags=tags,
            **kwargs,
        )


def arm(engine: Engine) -> None:
    """``engine`` has a terminated run: wrap ``Dispatcher.span_enter`` if not done yet."""
    global _original, _armed
    from llama_index_instrumentation.dispatcher import Dispatcher

    with _lock:
        if engine not in _armed:
            _armed = (*_armed, engine)
        if _original is None:
            _original = Dispatcher.__dict__["span_enter"]
            Dispatcher.span_enter = _span_enter  # type: ignore[method-assign]


def disarm(engine: Engine) -> None:
    """``engine`` has no terminated run left; restore ``Dispatcher.span_enter`` once no engine
    is armed."""
    global _original, _armed
    from llama_index_instrumentation.dispatcher import Dispatcher

    with _lock:
        _armed = tuple(e for e in _armed if e is not engine)
        if not _armed and _original is not None:
            if Dispatcher.__dict__.get("span_enter") is _span_enter:
                Dispatcher.span_enter = _original  # type: ignore[method-assign]
            _original = None


def armed() -> bool:
    """Whether ``Dispatcher.span_enter`` is currently wrapped."""
    return _original is not None
