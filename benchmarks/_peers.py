"""The peers' LangChain tracers, each sending to a sink of its own (`benchmarks._sink`).

LangSmith's ``LangChainTracer`` comes with langchain. Langfuse's and OpenInference's
integrations are measured when they are installed (they are no dependency of this project);
`start_peers` notes the ones that are not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from benchmarks._child import ChildServer
from benchmarks._sink import SinkProcess

__all__ = ["FLUSH_TIMEOUT", "Traced", "start_peers"]

FLUSH_TIMEOUT = 120.0


@dataclass(frozen=True)
class Traced:
    """A tracer under test: its LangChain handler, the call that waits until it has sent
    everything, and the server it sends to."""

    label: str
    handler: Any
    flush: Callable[[], object]
    server: ChildServer


def langsmith(label: str, stack: ExitStack) -> Traced:
    """``LangChainTracer`` with its ``langsmith.Client``: runs are queued and sent in batches
    by the client's background thread; ``Client.flush`` waits until they were sent."""
    from langchain_core.tracers.langchain import LangChainTracer
    from langsmith import Client

    # The sink's `{}` for /info enables no compression, which LangSmith warns about.
    logging.getLogger("langsmith").setLevel(logging.ERROR)
    sink = stack.enter_context(SinkProcess())
    client = Client(api_url=sink.url, api_key="test")
    tracer = LangChainTracer(client=client, project_name="benchmark")
    return Traced(label, tracer, lambda: client.flush(FLUSH_TIMEOUT), sink)


def langfuse(label: str, stack: ExitStack) -> Traced:
    """Langfuse's ``CallbackHandler`` (SDK v3 and later: OpenTelemetry spans, exported in
    batches by the client's span processor); ``Langfuse.flush`` sends what is left."""
    from langfuse import Langfuse
    from langfuse.langchain import CallbackHandler

    sink = stack.enter_context(SinkProcess())
    client = Langfuse(public_key="pk-lf-benchmark", secret_key="sk-lf-benchmark", host=sink.url)
    handler = CallbackHandler(public_key="pk-lf-benchmark")
    return Traced(label, handler, client.flush, sink)


def openinference(label: str, stack: ExitStack) -> Traced:
    """OpenInference's LangChain tracer on an OpenTelemetry tracer provider of its own, with a
    batch span processor and the OTLP/HTTP exporter. The tracer is passed as a callback (the
    class its instrumentor adds to every callback manager), so that it traces only its own
    samples; ``force_flush`` sends what is left."""
    from openinference.instrumentation.langchain._tracer import OpenInferenceTracer
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    sink = stack.enter_context(SinkProcess())
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(sink.url + "/v1/traces")))
    stack.callback(provider.shutdown)
    tracer = OpenInferenceTracer(
        tracer=provider.get_tracer("benchmark"), separate_trace_from_runtime_context=True
    )
    return Traced(label, tracer, lambda: provider.force_flush(int(FLUSH_TIMEOUT * 1000)), sink)


PEERS: dict[str, Callable[[str, ExitStack], Traced]] = {
    "LangSmith LangChainTracer": langsmith,
    "Langfuse CallbackHandler": langfuse,
    "OpenInference LangChain tracer": openinference,
}


def start_peers(stack: ExitStack) -> tuple[list[Traced], dict[str, str]]:
    """The peers that are installed, their sinks entered into ``stack``; and, by label, why
    each of the others is left out."""
    peers: list[Traced] = []
    missing: dict[str, str] = {}
    for label, start in PEERS.items():
        try:
            peers.append(start(label, stack))
        except ImportError as exc:
            missing[label] = f"not installed ({exc.name or exc})"
    return peers, missing
