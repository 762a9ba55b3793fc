"""3. LlamaIndex overhead: a ``VectorStoreIndex`` query engine on ``MockLLM`` and
``MockEmbedding``, not instrumented vs instrumented (``instrument()`` / ``uninstrument()``
switched between samples, modes interleaved), reporting to a local server in its own process.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks._common import Mode, Row, Settings, fmt_ms, interleave, median
from benchmarks._server import ServerProcess, make_client

NAME = "llama_index"
TITLE = "3 LlamaIndex overhead"
QUESTION = "What is the capital of Kenya?"
CITIES = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima"}

__all__ = ["NAME", "TITLE", "run"]


def _query_engine() -> Any:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    documents = [
        Document(text=f"The capital of {country} is {city}.", metadata={"country": country})
        for country, city in CITIES.items()
    ]
    index = VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    return index.as_query_engine(llm=MockLLM(max_tokens=16), similarity_top_k=2)


def run(settings: Settings) -> list[Row]:
    """Run the benchmark; one row per mode."""
    from prefactor_integrations.llama_index import instrument, uninstrument

    engine = _query_engine()
    uninstrument()
    with ServerProcess() as server:
        client = make_client(server.url, server.token)

        def query() -> None:
            engine.query(QUESTION)

        def on() -> None:
            instrument(client, agent_name="benchmark-rag")

        def off() -> float:
            uninstrument()
            start = time.perf_counter()
            client.tracer.flush(120)
            return time.perf_counter() - start

        plain = Mode("plain", query)
        traced = Mode("instrumented", query, before=on, after=off)
        on()
        for _ in range(2 if settings.quick else 10):
            query()
        off()
        for _ in range(2 if settings.quick else 10):
            query()
        interleave([plain, traced], samples=settings.runs, batch=settings.batch)
        uninstrument()
        client.tracer.flush(60)
        counts = server.counts()
        stats = client.stats()

    base = median(plain.samples)
    value = median(traced.samples)
    added = value - base
    queries = settings.runs * settings.batch + (2 if settings.quick else 10)
    spans = counts["agent_spans"] / queries
    return [
        Row(TITLE, "not instrumented", f"{fmt_ms(base)}/query", "baseline (wall time per query)"),
        Row(
            TITLE,
            "instrument()",
            f"{fmt_ms(added, signed=True)}/query",
            f"{added / base:+.0%} ({fmt_ms(value)}/query); {spans:.1f} spans/query; "
            "CPU of the agent's threads "
            f"{fmt_ms(median(traced.agent_cpu) - median(plain.agent_cpu), signed=True)}/query, "
            f"of the exporter {fmt_ms(median(traced.export_cpu))}/query; "
            f"drain after batch {fmt_ms(median(traced.extra))}/query; "
            f"{stats.failed} failed, {stats.dropped} dropped",
        ),
    ]
