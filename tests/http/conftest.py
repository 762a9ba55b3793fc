"""Fixtures for the prefactor_http tests: configs and clients aimed at the local server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from _http_support import FAST_RETRIES, ConfigFactory, WireRecorder

from prefactor_http import HttpClientConfig, PrefactorHttpClient
from prefactor_local.server import LocalServer


@pytest.fixture
def make_config(local_server: LocalServer) -> ConfigFactory:
    """Build a config for the local server with fast retries; keywords override."""

    def make(**overrides: Any) -> HttpClientConfig:
        values = {**FAST_RETRIES, **overrides}
        values.setdefault("api_url", local_server.url)
        values.setdefault("api_token", local_server.token)
        return HttpClientConfig(**values)

    return make


@pytest.fixture
def wire() -> WireRecorder:
    """A pass-through transport that records what the client sends."""
    return WireRecorder()


@pytest.fixture
async def client(
    make_config: ConfigFactory, wire: WireRecorder
) -> AsyncIterator[PrefactorHttpClient]:
    """An open client for the local server whose requests are recorded by `wire`."""
    async with PrefactorHttpClient(make_config(), transport=wire) as opened:
        yield opened
