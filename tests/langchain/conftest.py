"""Fixtures for the LangChain adapter tests: a handler reporting to the local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _lc_support import make_client

from prefactor_integrations.langchain import PrefactorCallbackHandler, uninstrument
from prefactor_local.server import LocalServer


@pytest.fixture
def handler(local_server: LocalServer) -> Iterator[PrefactorCallbackHandler]:
    """A handler reporting to ``local_server``; closed after the test."""
    h = PrefactorCallbackHandler(make_client(local_server), agent_name="test-agent")
    yield h
    h.close(timeout=5.0)


@pytest.fixture(autouse=True)
def _no_global_instrumentation() -> Iterator[None]:
    """Every test starts and ends without process-wide instrumentation."""
    uninstrument()
    yield
    uninstrument()
