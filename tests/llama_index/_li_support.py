"""Test support: a client for the local server, LlamaIndex fixtures on mock models, and readers
for what the server stored."""

from __future__ import annotations

from typing import Any

from _span_tree import tree_lines
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

import prefactor_integrations
from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig
from prefactor_http.config import HttpClientConfig
from prefactor_integrations.llama_index import PrefactorSpanHandler
from prefactor_local.server import LocalServer

FINISHED = {"complete", "failed", "cancelled"}

CITIES = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
}


def make_client(server: LocalServer) -> PrefactorCoreClient:
    """A core client pointed at ``server``."""
    http = HttpClientConfig(api_url=server.url, api_token=server.token, max_retries=1)
    return PrefactorCoreClient(PrefactorCoreConfig(http_config=http))


def build_index() -> VectorStoreIndex:
    """A small real vector index embedded with ``MockEmbedding``."""
    docs = [
        Document(text=f"The capital of {country} is {city}.", metadata={"country": country})
        for country, city in CITIES.items()
    ]
    return VectorStoreIndex.from_documents(docs, embed_model=MockEmbedding(embed_dim=8))


def mock_llm() -> MockLLM:
    """A mock LLM answering with eight words."""
    return MockLLM(max_tokens=8)


def stored(
    server: LocalServer, handler: PrefactorSpanHandler
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Flush (the package-level flush), then every stored instance (oldest first) with its
    spans; ``handler`` must have nothing left open."""
    assert prefactor_integrations.flush(15.0), "exporter did not drain"
    instances = list(reversed(server.store.list_instances()))
    return [(inst, server.store.list_spans(inst["id"])) for inst in instances]


def only_instance(
    server: LocalServer, handler: PrefactorSpanHandler
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The single stored instance and its spans (fails if there is not exactly one)."""
    runs = stored(server, handler)
    assert len(runs) == 1, [(i["id"], [s["schema_name"] for s in sp]) for i, sp in runs]
    return runs[0]


def check_tree(spans: list[dict[str, Any]], *, root_type: str) -> dict[str, Any]:
    """Assert one root of ``root_type``, every parent resolving and every span finished.

    Returns the root span.
    """
    ids = {s["id"] for s in spans}
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert len(roots) == 1, outline(spans)
    assert roots[0]["schema_name"] == root_type, outline(spans)
    for span in spans:
        assert span["parent_span_id"] is None or span["parent_span_id"] in ids, span
        assert span["status"] in FINISHED, (span["schema_name"], span["status"], outline(spans))
        assert span["finished_at"] is not None, span
    return roots[0]


def label(span: dict[str, Any]) -> str:
    """``"<schema_name> <name>"`` (tool name for tools, else the instrumented method)."""
    payload = span.get("payload") or {}
    name = payload.get("tool_name") or payload.get("name") or ""
    return f"{span['schema_name']} {name}".rstrip()


def outline(spans: list[dict[str, Any]], *, statuses: bool = True) -> str:
    """The tree as indented labels, siblings by start time."""

    def line(span: dict[str, Any]) -> str:
        return label(span) + (f" [{span['status']}]" if statuses else "")

    def order(_: dict[str, Any] | None, siblings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(siblings, key=lambda s: (s["started_at"] or "", label(s)))

    return "\n".join(tree_lines(spans, line, order))


def shape(spans: list[dict[str, Any]]) -> str:
    """The tree as indented span types only (siblings by start time)."""
    return "\n".join(tree_lines(spans, lambda s: s["schema_name"].removeprefix("llama_index:")))


def of_type(spans: list[dict[str, Any]], schema_name: str) -> list[dict[str, Any]]:
    """The spans of one type, by start time."""
    found = [s for s in spans if s["schema_name"] == schema_name]
    return sorted(found, key=lambda s: s["started_at"] or "")


def parent_of(spans: list[dict[str, Any]], span: dict[str, Any]) -> dict[str, Any]:
    """The parent span of ``span``."""
    return next(s for s in spans if s["id"] == span["parent_span_id"])
