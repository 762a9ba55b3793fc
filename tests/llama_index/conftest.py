"""Fixtures for the LlamaIndex adapter tests: instrumentation reporting to the local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _li_support import build_index, make_client
from llama_index.core import VectorStoreIndex

from prefactor_integrations.llama_index import PrefactorSpanHandler, instrument, uninstrument
from prefactor_local.server import LocalServer


@pytest.fixture(autouse=True)
def _no_global_instrumentation() -> Iterator[None]:
    """Every test starts and ends with LlamaIndex uninstrumented."""
    uninstrument()
    yield
    uninstrument()


@pytest.fixture
def traced(local_server: LocalServer) -> Iterator[PrefactorSpanHandler]:
    """LlamaIndex instrumented, reporting to ``local_server``."""
    handler = instrument(make_client(local_server), agent_name="llama-test")
    yield handler
    uninstrument()


@pytest.fixture
def index() -> VectorStoreIndex:
    """A small vector index on mock embeddings (built before instrumenting is irrelevant:
    index building outside a run is not traced by default)."""
    return build_index()
