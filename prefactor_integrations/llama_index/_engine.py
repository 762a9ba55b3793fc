"""Turns LlamaIndex dispatcher spans and events into Prefactor instances and spans.

One :class:`Engine` is shared by the span handler and the event handler. Traced dispatcher spans
live in a :class:`~prefactor_integrations._shared.RunTracker` (one tree per top-level run, bounded,
with an idle sweep), each with a :class:`_Rec` holding what its Prefactor span needs when it
finishes; folded spans are only a map from their id to the record they belong to, so the many
plumbing spans of a run cost one dict entry each.

A Prefactor span is finished only when (1) LlamaIndex exited or dropped it, (2) every traced child
has finished and (3) no *hold* is left. Holds keep a span open past LlamaIndex's exit:

* a streaming LLM call exits when its generator is returned; the hold is released by the LLM's
  end/exception event (or when the generator is garbage-collected unconsumed);
* a ``StreamingResponse`` / ``AsyncStreamingResponse`` runs its LLM call lazily while the user
  iterates it; its ``response_gen`` is wrapped so the call nests under the span that returned it,
  and the hold is released when the stream is exhausted, closed or collected;
* a streaming chat-engine response is written to memory by a background thread or task; the hold
  is released when that writer finishes.

So a child never outlives its parent, and the instance ends when the whole run has ended, not
when the top-level call returned.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import weakref
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefactor_core.context_stack import SpanContextStack
from prefactor_core.exceptions import PrefactorTerminatedError

from .._shared import (
    BoundedMap,
    InstanceSettings,
    InternalErrors,
    RootState,
    RunTracker,
    ambient_parent,
    cancel_abandoned,
    error_info,
    prefer_deeper,
    push_span,
    remove_span,
)
from .._shared import status_for as _status_for
from . import _kinds as k
from . import _payloads as p
from . import _termination

__all__ = ["Engine", "InstanceSettings", "status_for"]

_CANCEL_NAMES = frozenset({"WorkflowCancelledByUser"})
_MAX_FOLDED = 50_000  # folded dispatcher spans remembered per traced span
_COMPLETE_NAMES = frozenset({"WorkflowDone"})


def status_for(err: BaseException | None) -> str:
    """The finish status for a span LlamaIndex dropped with ``err``."""
    return _status_for(err, control_flow_names=_COMPLETE_NAMES, cancel_names=_CANCEL_NAMES)


@dataclass(eq=False)
class _Rec:
    """A traced span (see module docstring)."""

    run_id: str
    span_id: str
    instance_id: str
    kind: str
    method: str
    obj_id: int
    is_run: bool
    is_root: bool
    owns_instance: bool
    parent: _Rec | None
    started: float = field(default_factory=time.monotonic)
    pending: int = 0
    holds: set[Hashable] = field(default_factory=set)
    exited: bool = False
    finalized: bool = False
    status: str = "complete"
    result: dict[str, Any] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)
    ended_streams: set[str] = field(default_factory=set)
    late: Any = None
    unsubscribe: Any = None
    ingestion: bool = False


class Engine:
    """State and logic behind :class:`PrefactorSpanHandler` and :class:`PrefactorEventHandler`."""

    def __init__(
        self,
        tracer: Any,
        settings: InstanceSettings,
        *,
        options: p.CaptureOptions,
        policy: Any = None,
        trace_ingestion: bool = False,
        errors: InternalErrors,
        idle_timeout: float = 1800.0,
        max_roots: int = 4096,
        enforce_termination: bool = True,
    ) -> None:
        self.tracer = tracer
        self.settings = settings
        self.options = options
        self.policy = policy
        self.trace_ingestion = trace_ingestion
        self.errors = errors
        self.tracker = RunTracker(
            on_abandoned=self._abandoned, idle_timeout=idle_timeout, max_roots=max_roots
        )
        self.classifier = k.Classifier()
        self._lock = threading.RLock()
        self._by_span: dict[str, str] = {}
        self._skipped: BoundedMap[str, bool] = BoundedMap(20_000)
        self._writer_holds: dict[int, _Rec] = {}
        self._writers_done: BoundedMap[int, bool] = BoundedMap(1024)
        self._wrapped: weakref.WeakSet[Any] = weakref.WeakSet()
        # Stream key -> enclosing spans that returned the same stream (they get its text too).
        self._stream_also: BoundedMap[Hashable, list[_Rec]] = BoundedMap(1024)
        # Folded dispatcher span id -> the traced record it belongs to (no span of its own).
        self._folded: dict[str, _Rec] = {}
        self.enforce_termination = enforce_termination
        # Instances of open runs the platform terminated (filled from the export thread).
        self._terminated: set[str] = set()

    # -- lookups -------------------------------------------------------------------------------

    def _rec_of(self, run_id: str | None) -> _Rec | None:
        """The traced record owning LlamaIndex span ``run_id`` (itself, or its folding owner)."""
        if run_id is None:
            return None
        rec = self._folded.get(run_id)
        if rec is None:
            run = self.tracker.peek(run_id)
            if run is None:
                return None
            rec = run.data.get("rec")
        return rec if isinstance(rec, _Rec) and not rec.finalized else None

    def _our_rec(self, span_id: str) -> _Rec | None:
        run_id = self._by_span.get(span_id)
        return self._rec_of(run_id) if run_id is not None else None

    # -- termination ---------------------------------------------------------------------------

    def termination_for(self, parent_id: str | None) -> PrefactorTerminatedError | None:
        """The error to raise into a span about to start under ``parent_id``, if its run was
        terminated by the platform (never raises itself)."""
        if not self._terminated:
            return None
        try:
            instance_id: str | None = None
            if parent_id is not None:
                parent = self._rec_of(parent_id)
                if parent is not None:
                    instance_id = parent.instance_id
                elif self._skipped.get(parent_id):
                    return None
            if instance_id is None:
                amb = ambient_parent(self.tracer)
                instance_id = amb[0] if amb else None
            if instance_id not in self._terminated:
                return None
            return PrefactorTerminatedError(
                self.tracer.termination_reason(instance_id), instance_id=instance_id
            )
        except Exception as exc:
            self.errors.record("termination_check", exc)
            return None

    def _watch(self, rec: _Rec) -> None:
        """Be told when the platform terminates the instance of tree root ``rec``."""
        if not self.enforce_termination:
            return
        instance_id = rec.instance_id

        def on_terminated(_reason: str | None) -> None:
            with self._lock:
                self._terminated.add(instance_id)
            _termination.arm(self)

        try:
            rec.unsubscribe = self.tracer.on_termination(instance_id, on_terminated)
        except Exception as exc:
            self.errors.record("watch_termination", exc)

    def _unwatch(self, rec: _Rec) -> None:
        unsubscribe, rec.unsubscribe = rec.unsubscribe, None
        if unsubscribe is None:
            return
        try:
            unsubscribe()
        except Exception as exc:
            self.errors.record("unwatch_termination", exc)
        with self._lock:
            self._terminated.discard(rec.instance_id)
            idle = not self._terminated
        if idle:
            _termination.disarm(self)

    # -- span enter ----------------------------------------------------------------------------

    def enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments | None,
        instance: Any,
        parent_id: str | None,
        tags: Mapping[str, Any] | None,
    ) -> None:
        """A dispatcher span starts: open a Prefactor span (or fold/skip it)."""
        name, method = k.split_span_id(id_)
        if tags is None:
            tags = _active_tags()
        base = self.classifier.base_kind(instance, method, tags)

        parent: _Rec | None = None
        foreign: tuple[str, str] | None = None
        if parent_id is not None:
            parent = self._rec_of(parent_id)
            if parent is None and self._skipped.get(parent_id):
                self._skipped.set(id_, True)
                return
            if parent is not None and SpanContextStack.peek() != parent.span_id:
                deeper = prefer_deeper(self.tracer, parent.span_id, parent.instance_id)
                if deeper != parent.span_id:
                    ours = self._our_rec(deeper)
                    if ours is not None:
                        parent = ours
                    else:
                        foreign = (parent.instance_id, deeper)
                        parent = None
        if parent is None and foreign is None:
            amb = ambient_parent(self.tracer)
            if amb is not None:
                ours = self._our_rec(amb[1])
                if ours is not None:
                    parent = ours
                else:
                    foreign = amb

        ingestion = False
        if (
            parent is not None
            and parent.ingestion
            and parent.method in ("run", "arun")
            and base == k.INGEST
            and method in ("__call__", "acall")
        ):
            # a transformation of a traced ingestion pipeline: one span per step
            kind, ingestion = k.SPAN, True
        elif parent is not None:
            kind = self.classifier.nested_kind(
                base,
                same_object=instance is not None and id(instance) == parent.obj_id,
                parent_kind=parent.kind,
                parent_is_run=parent.is_run,
            )
        else:
            kind = self.classifier.nested_kind(
                base, same_object=False, parent_kind=None, parent_is_run=False
            )
            if kind in (k.INGEST, k.INGEST_RUN):
                ingestion = self.trace_ingestion
                kind = k.SPAN if self.trace_ingestion else k.FOLD
            elif kind == k.EMBEDDING and foreign is None and not self.trace_ingestion:
                kind = k.FOLD
            if kind == k.FOLD:
                self._skipped.set(id_, True)
                return

        if kind == k.FOLD:
            assert parent is not None
            if len(parent.folded) >= _MAX_FOLDED:
                self._skipped.set(id_, True)
                return
            self._folded[id_] = parent
            parent.folded.append(id_)
            return

        if ingestion:
            payload = p.ingestion_params(name, instance, bound_args)
        else:
            payload = p.span_params(kind, name, method, instance, bound_args, tags, self.options)
        is_run = method == "run" and kind in (k.WORKFLOW, k.AGENT) and instance is not None
        tracer = self.tracer
        if parent is not None:
            span_id = tracer.create_span(
                parent.instance_id,
                kind,
                parent_span_id=parent.span_id,
                payload=payload,
                policy=self.policy,
            )
            rec = _Rec(
                run_id=id_,
                span_id=span_id,
                instance_id=parent.instance_id,
                kind=kind,
                method=method,
                obj_id=id(instance),
                is_run=is_run,
                is_root=False,
                owns_instance=False,
                parent=parent,
                ingestion=ingestion,
            )
            with self._lock:
                parent.pending += 1
            if (
                self.tracker.open_child(
                    id_, parent.run_id, span_id=span_id, schema_name=kind, data={"rec": rec}
                )
                is None
            ):
                with self._lock:
                    parent.pending -= 1
                tracer.finish_span(span_id, status="complete", result_payload={"untracked": True})
                return
        else:
            if foreign is not None:
                instance_id, parent_span = foreign
                owns = False
            else:
                instance_id = self.settings.start_instance(tracer, id_)
                parent_span = None
                owns = True
            span_id = tracer.create_span(
                instance_id, kind, parent_span_id=parent_span, payload=payload, policy=self.policy
            )
            rec = _Rec(
                run_id=id_,
                span_id=span_id,
                instance_id=instance_id,
                kind=kind,
                method=method,
                obj_id=id(instance),
                is_run=is_run,
                is_root=True,
                owns_instance=owns,
                parent=None,
                ingestion=ingestion,
            )
            self.tracker.open_root(
                id_,
                instance_id=instance_id,
                span_id=span_id,
                schema_name=kind,
                owns_instance=owns,
                data={"rec": rec},
            )
            self._watch(rec)
        self._by_span[span_id] = id_
        push_span(span_id)

    # -- span exit / drop ----------------------------------------------------------------------

    def exit(
        self,
        id_: str,
        instance: Any,
        result: Any = None,
        err: BaseException | None = None,
        dropped: bool = False,
    ) -> None:
        """A dispatcher span exited (``dropped`` with ``err`` when it raised)."""
        owner = self._folded.get(id_)
        if owner is not None:
            if owner.finalized:
                return
            method = k.split_span_id(id_)[1]
            if not dropped and owner.kind == k.LLM and _is_stream(result):
                if method in k.STREAM_LEAF_METHODS:
                    self._hold_llm_stream(owner, id_, result)
            elif method in k.WRITER_METHODS and instance is not None:
                self._writer_finished(instance, err if dropped else None)
            return
        run = self.tracker.get(id_)
        if run is None:
            self._skipped.pop(id_)
            return
        rec = run.data.get("rec")
        if not isinstance(rec, _Rec) or rec.finalized:
            return
        method = rec.method
        remove_span(rec.span_id)
        if dropped:
            status = status_for(err)
            if status == "failed" and err is not None:
                rec.result["error"] = error_info(err)
            elif status == "cancelled":
                rec.result["cancelled"] = True
                rec.result.setdefault("reason", _reason(err))
        else:
            status = "complete"
            try:
                update = (
                    p.ingestion_result(result)
                    if rec.ingestion
                    else p.exit_result(rec.kind, method, result, self.options)
                )
            except Exception as exc:
                self.errors.record("exit_result", exc)
                update = {}
            for key, value in update.items():
                if key == "token_usage" and rec.result.get(key):
                    continue
                rec.result[key] = value
            if result is not None:
                self._hold_streams(rec, id_, method, result)
        with self._lock:
            rec.exited = True
            if status != "complete" and rec.status == "complete":
                rec.status = status
        self._maybe_finalize(rec)

    # -- holds ---------------------------------------------------------------------------------

    def _hold_streams(self, rec: _Rec, id_: str, method: str, result: Any) -> None:
        if rec.kind == k.LLM and method in k.STREAM_LEAF_METHODS:
            self._hold_llm_stream(rec, id_, result)
            return
        gen = getattr(result, "response_gen", None)
        if gen is not None and type(result).__name__ in (
            "StreamingResponse",
            "AsyncStreamingResponse",
        ):
            self._wrap_response_stream(rec, result, gen)
        elif type(result).__name__ == "StreamingAgentChatResponse":
            self._hold_writer(rec, result)

    def _hold_llm_stream(self, rec: _Rec, id_: str, gen: Any) -> None:
        if not (inspect.isgenerator(gen) or inspect.isasyncgen(gen)):
            return
        key = ("llm-stream", id_)
        with self._lock:
            if id_ in rec.ended_streams:
                return
            rec.holds.add(key)
        try:
            weakref.finalize(gen, self._release, rec, key, "cancelled", "stream not consumed")
        except TypeError:
            pass

    def _wrap_response_stream(self, rec: _Rec, result: Any, gen: Any) -> None:
        key = ("response-stream", id(result))
        if gen in self._wrapped:
            # an enclosing span (the query) returning the stream its synthesizer returned
            also = self._stream_also.get(key) or []
            self._stream_also.set(key, [*also, rec])
            return
        if inspect.isasyncgen(gen):
            wrapper: Any = self._traced_astream(gen, rec, key)
        elif isinstance(gen, Iterator):
            wrapper = self._traced_stream(gen, rec, key)
        else:
            return
        with self._lock:
            rec.holds.add(key)
        try:
            result.response_gen = wrapper
        except Exception:
            with self._lock:
                rec.holds.discard(key)
            return
        self._wrapped.add(wrapper)
        weakref.finalize(wrapper, self._release, rec, key, "cancelled", "stream not consumed")

    def _hold_writer(self, rec: _Rec, result: Any) -> None:
        task = getattr(result, "awrite_response_to_history_task", None)
        thread = getattr(result, "write_response_to_history_thread", None)
        rec.late = result
        if task is None and thread is None:
            return
        key = ("writer", id(result))
        with self._lock:
            if self._writers_done.pop(id(result)):
                return
            rec.holds.add(key)
            self._writer_holds[id(result)] = rec
        if isinstance(task, asyncio.Task):
            # Belt and braces: the writer span's exit normally releases the hold first.
            task.add_done_callback(lambda _t: self._release(rec, key))

    def _writer_finished(self, obj: Any, err: BaseException | None) -> None:
        with self._lock:
            rec = self._writer_holds.pop(id(obj), None)
            if rec is None:
                self._writers_done.set(id(obj), True)
                return
        if err is not None:
            self._release(rec, ("writer", id(obj)), status_for(err), error=err)
        else:
            self._release(rec, ("writer", id(obj)))

    def _release(
        self,
        rec: _Rec,
        key: Hashable,
        status: str | None = None,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Drop hold ``key`` of ``rec`` (idempotent); finish the span if nothing else holds it."""
        try:
            with self._lock:
                if key not in rec.holds or rec.finalized:
                    return
                rec.holds.discard(key)
                if (
                    isinstance(key, tuple)
                    and key[0] == "writer"
                    and self._writer_holds.get(key[1]) is rec
                ):
                    del self._writer_holds[key[1]]
                if status is not None and status != "complete" and rec.status == "complete":
                    rec.status = status
                    if status == "cancelled":
                        rec.result["cancelled"] = True
                        if reason:
                            rec.result.setdefault("reason", reason)
                        if isinstance(key, tuple) and key[0] in ("llm-stream", "response-stream"):
                            rec.result["stream_abandoned"] = True
                    elif error is not None:
                        rec.result["error"] = error_info(error)
            self._maybe_finalize(rec)
        except Exception as exc:
            self.errors.record("release", exc)

    # -- streams the user consumes -------------------------------------------------------------

    def _on_chunk(self, rec: _Rec, text: Any, parts: list[str], size: list[int]) -> None:
        with self._lock:
            if "time_to_first_token_ms" not in rec.result:
                rec.result["time_to_first_token_ms"] = (time.monotonic() - rec.started) * 1000.0
            rec.result["stream_chunks"] = rec.result.get("stream_chunks", 0) + 1
        if isinstance(text, str) and size[0] < self.options.max_text_chars:
            parts.append(text)
            size[0] += len(text)

    def _stream_done(
        self, rec: _Rec, key: Hashable, status: str, parts: list[str], err: BaseException | None
    ) -> None:
        also = self._stream_also.pop(key) or []
        if parts:
            text = "".join(parts)[: self.options.max_text_chars]
            for target in (rec, *also):
                if not target.finalized:
                    target.result["response"] = text
        if status == "complete":
            self._release(rec, key)
        elif status == "cancelled":
            self._release(rec, key, "cancelled", "stream closed before the end")
        else:
            self._release(rec, key, "failed", error=err)

    def _traced_stream(self, inner: Iterator[Any], rec: _Rec, key: Hashable) -> Iterator[Any]:
        parts: list[str] = []
        size = [0]
        status = "cancelled"
        err: BaseException | None = None
        try:
            while True:
                push_span(rec.span_id)
                try:
                    item = next(inner)
                except StopIteration:
                    status = "complete"
                    return
                finally:
                    remove_span(rec.span_id)
                self._safe_chunk(rec, item, parts, size)
                yield item
        except GeneratorExit:
            close = getattr(inner, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    pass
            raise
        except BaseException as exc:
            status, err = status_for(exc), exc
            raise
        finally:
            self._stream_done(rec, key, status, parts, err)

    async def _traced_astream(
        self, inner: AsyncIterator[Any], rec: _Rec, key: Hashable
    ) -> AsyncIterator[Any]:
        parts: list[str] = []
        size = [0]
        status = "cancelled"
        err: BaseException | None = None
        try:
            while True:
                push_span(rec.span_id)
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    status = "complete"
                    return
                finally:
                    remove_span(rec.span_id)
                self._safe_chunk(rec, item, parts, size)
                yield item
        except GeneratorExit:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    pass
            raise
        except BaseException as exc:
            status, err = status_for(exc), exc
            raise
        finally:
            self._stream_done(rec, key, status, parts, err)

    def _safe_chunk(self, rec: _Rec, item: Any, parts: list[str], size: list[int]) -> None:
        try:
            self._on_chunk(rec, item, parts, size)
        except Exception as exc:
            self.errors.record("stream_chunk", exc)

    # -- finishing -----------------------------------------------------------------------------

    def _maybe_finalize(self, rec: _Rec | None) -> None:
        while rec is not None:
            with self._lock:
                if rec.finalized or not rec.exited or rec.pending or rec.holds:
                    return
                rec.finalized = True
                folded, rec.folded = rec.folded, []
                parent = rec.parent
            if rec.late is not None:
                self._late_result(rec)
            self.tracer.finish_span(rec.span_id, status=rec.status, result_payload=dict(rec.result))
            self._by_span.pop(rec.span_id, None)
            folded_map = self._folded
            for run_id in folded:
                folded_map.pop(run_id, None)
            self.tracker.close(rec.run_id)
            if rec.is_root:
                self.tracker.close_root(rec.run_id)
                self._unwatch(rec)
                if rec.owns_instance:
                    self.tracer.finish_instance(rec.instance_id, status=rec.status)
                return
            if parent is None:
                return
            with self._lock:
                parent.pending -= 1
            rec = parent

    def _late_result(self, rec: _Rec) -> None:
        obj, rec.late = rec.late, None
        text = getattr(obj, "response", None)
        if isinstance(text, str) and text:
            rec.result["response"] = text[: self.options.max_text_chars]
        exc = getattr(obj, "exception", None)
        if isinstance(exc, BaseException) and "error" not in rec.result:
            rec.result["error"] = error_info(exc)
            if rec.status == "complete":
                rec.status = "failed"

    def _abandoned(self, root: RootState, reason: str = "abandoned") -> None:
        """Finish an idle, evicted or left-over tree: its open spans and instance ``cancelled``."""
        try:
            with self._lock:
                recs: set[_Rec] = set()
                for run in root.runs.values():
                    rec = run.data.get("rec")
                    if isinstance(rec, _Rec):
                        recs.add(rec)
                        rec.finalized = True
                        self._by_span.pop(rec.span_id, None)
                        for run_id in rec.folded:
                            self._folded.pop(run_id, None)
                        if rec.is_root:
                            self._unwatch(rec)
                if recs and self._writer_holds:
                    self._writer_holds = {
                        key: r for key, r in self._writer_holds.items() if r not in recs
                    }
            cancel_abandoned(self.tracer, root, reason=reason)
        except Exception as exc:
            self.errors.record("abandoned", exc)

    def close(self, reason: str = "tracing stopped") -> None:
        """Finish every open tree as ``cancelled`` (used when the handler is removed)."""
        for root in self.tracker.drain():
            self._abandoned(root, reason)

    # -- events --------------------------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        """Fold one instrumentation event into the payload of the span it belongs to."""
        span_id = getattr(event, "span_id", None)
        if not span_id:
            return
        name = event.class_name()
        handler = _EVENT_HANDLERS.get(name)
        if handler is None:
            return
        rec = self._rec_of(span_id)
        if rec is None:
            return
        handler(self, rec, span_id, event)

    def _ev_llm_start(self, rec: _Rec, span_id: str, event: Any) -> None:
        model = getattr(event, "model_dict", None)
        if isinstance(model, Mapping):
            name = model.get("model") or model.get("model_name")
            if isinstance(name, str) and name and name != "unknown":
                rec.result.setdefault("model", name)

    def _ev_llm_progress(self, rec: _Rec, span_id: str, event: Any) -> None:
        with self._lock:
            if "time_to_first_token_ms" not in rec.result:
                rec.result["time_to_first_token_ms"] = (time.monotonic() - rec.started) * 1000.0
            rec.result["stream_chunks"] = rec.result.get("stream_chunks", 0) + 1

    def _ev_llm_end(self, rec: _Rec, span_id: str, event: Any) -> None:
        response = getattr(event, "response", None)
        usage = p.token_usage(response)
        if usage:
            rec.result["token_usage"] = usage
        if response is not None:
            message = getattr(response, "message", None)
            if message is not None:
                rec.result["message"] = message
            text = p.response_text(response)
            if isinstance(text, str):
                rec.result.setdefault("response", text)
        key = ("llm-stream", span_id)
        with self._lock:
            held = key in rec.holds
            if not held:
                rec.ended_streams.add(span_id)
        if held:
            self._release(rec, key)

    def _ev_exception(self, rec: _Rec, span_id: str, event: Any) -> None:
        key = ("llm-stream", span_id)
        if key not in rec.holds:
            return
        exc = getattr(event, "exception", None)
        if isinstance(exc, GeneratorExit):
            self._release(rec, key, "cancelled", "stream closed before the end")
        elif isinstance(exc, BaseException):
            self._release(rec, key, status_for(exc), _reason(exc), error=exc)
        else:
            self._release(rec, key)

    def _ev_cancelled(self, rec: _Rec, span_id: str, event: Any) -> None:
        with self._lock:
            rec.status = "cancelled"
            rec.result["cancelled"] = True
            reason = getattr(event, "reason", None)
            if isinstance(reason, str):
                rec.result["reason"] = reason

    def _ev_output(self, rec: _Rec, span_id: str, event: Any) -> None:
        output = getattr(event, "output", None)
        if output is not None:
            rec.result["output_summary"] = output

    def _ev_structured_end(self, rec: _Rec, span_id: str, event: Any) -> None:
        rec.result["output"] = getattr(event, "output", None)

    def _ev_stream_chat_error(self, rec: _Rec, span_id: str, event: Any) -> None:
        exc = getattr(event, "exception", None)
        if isinstance(exc, BaseException):
            with self._lock:
                rec.result["error"] = error_info(exc)
                if rec.status == "complete":
                    rec.status = "failed"

    def _ev_rerank_start(self, rec: _Rec, span_id: str, event: Any) -> None:
        model = getattr(event, "model_name", None)
        if isinstance(model, str) and model:
            rec.result.setdefault("model", model)


_EVENT_HANDLERS: dict[str, Any] = {
    "LLMChatStartEvent": Engine._ev_llm_start,
    "LLMCompletionStartEvent": Engine._ev_llm_start,
    "LLMChatInProgressEvent": Engine._ev_llm_progress,
    "LLMCompletionInProgressEvent": Engine._ev_llm_progress,
    "LLMChatEndEvent": Engine._ev_llm_end,
    "LLMCompletionEndEvent": Engine._ev_llm_end,
    "ExceptionEvent": Engine._ev_exception,
    "SpanCancelledEvent": Engine._ev_cancelled,
    "step.output": Engine._ev_output,
    "workflow.output": Engine._ev_output,
    "LLMStructuredPredictEndEvent": Engine._ev_structured_end,
    "StreamChatErrorEvent": Engine._ev_stream_chat_error,
    "ReRankStartEvent": Engine._ev_rerank_start,
}


def _is_stream(value: Any) -> bool:
    return inspect.isgenerator(value) or inspect.isasyncgen(value)


def _reason(err: BaseException | None) -> str:
    if isinstance(err, PrefactorTerminatedError):
        reason = getattr(err, "reason", None)
        return f"terminated: {reason}" if reason else "terminated"
    if err is None:
        return "cancelled"
    return type(err).__name__


def _active_tags() -> Mapping[str, Any] | None:
    try:
        from llama_index_instrumentation.dispatcher import active_instrument_tags
    except Exception:
        return None
    tags = active_instrument_tags.get()
    return tags or None
