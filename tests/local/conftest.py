"""Fixtures for the local server's tests: a shared server per module and a thin HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import Api, client_for

from prefactor_local.faults import FaultConfig
from prefactor_local.server import LocalServer


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for a whole module, for tests that do not depend on global state."""
    path: Path = tmp_path_factory.mktemp("shared") / "local.db"
    with LocalServer(db_path=path) as server:
        yield server


@pytest.fixture
def server(shared_server: LocalServer) -> Iterator[LocalServer]:
    """The module's shared server, with faults switched off again after each test."""
    yield shared_server
    shared_server.faults = FaultConfig()


@pytest.fixture
def api(server: LocalServer) -> Iterator[Api]:
    """An `Api` on the shared server."""
    with client_for(server) as client:
        yield Api(client)


@pytest.fixture
def own_api(local_server: LocalServer) -> Iterator[Api]:
    """An `Api` on a fresh server of its own (see `local_server`)."""
    with client_for(local_server) as client:
        yield Api(client)
