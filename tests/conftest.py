"""Fixtures shared by the whole suite: a real local Prefactor server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from prefactor_local.server import LocalServer


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[LocalServer]:
    """A `prefactor_local` server on a free loopback port, with its own SQLite file."""
    with LocalServer(db_path=tmp_path / "local.db") as server:
        yield server


@pytest.fixture
def core_config(local_server: LocalServer) -> Any:
    """A `PrefactorCoreConfig` aimed at `local_server`, with short retry delays."""
    from prefactor_core import PrefactorCoreConfig, QueueConfig
    from prefactor_http.config import HttpClientConfig

    return PrefactorCoreConfig(
        http_config=HttpClientConfig(
            api_url=local_server.url,
            api_token=local_server.token,
            request_timeout=5.0,
            max_retries=3,
            initial_retry_delay=0.01,
            max_retry_delay=0.05,
        ),
        queue_config=QueueConfig(max_retries=2, retry_delay_base=0.01, shutdown_timeout=5.0),
        termination_poll_interval=1.0,
    )


@pytest.fixture
async def core_client(core_config: Any) -> AsyncIterator[Any]:
    """An initialised `PrefactorCoreClient` for `core_config`, closed afterwards."""
    from prefactor_core import PrefactorCoreClient

    client = PrefactorCoreClient(core_config)
    await client.initialize()
    try:
        yield client
    finally:
        await client.close()
