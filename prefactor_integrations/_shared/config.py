"""Finding the Prefactor client an adapter reports to: given explicitly, or from the environment."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from prefactor_core.fields import env_bool

if TYPE_CHECKING:
    from prefactor_core import PrefactorCoreClient
    from prefactor_http.config import HttpClientConfig

__all__ = [
    "ENV_AGENT_ID",
    "ENV_API_TOKEN",
    "ENV_API_URL",
    "ENV_ENVIRONMENT_ID",
    "PrefactorConfigurationError",
    "client_from_env",
    "env_flag",
    "resolve_agent_id",
    "resolve_client",
    "resolve_environment_id",
]

ENV_API_URL = "PREFACTOR_API_URL"
ENV_API_TOKEN = "PREFACTOR_API_TOKEN"
ENV_AGENT_ID = "PREFACTOR_AGENT_ID"
ENV_ENVIRONMENT_ID = "PREFACTOR_ENVIRONMENT_ID"

_clients: dict[tuple[str, str, str, str | None], PrefactorCoreClient] = {}
_clients_lock = threading.Lock()


class PrefactorConfigurationError(ValueError):
    """Raised when no client was given and the environment does not say how to build one."""


def env_flag(name: str) -> bool:
    """True when environment variable ``name`` is 1/true/yes/on, False when unset or
    0/false/no/off (any case); `ValueError` naming it for anything else."""
    return env_bool(name, False)


def resolve_agent_id(agent_id: str | None) -> str | None:
    """``agent_id`` if given, else ``PREFACTOR_AGENT_ID``, else None.

    None is valid with a deployment-scoped token (the server derives the agent from it).
    """
    if agent_id:
        return agent_id
    return os.environ.get(ENV_AGENT_ID) or None


def resolve_environment_id(environment_id: str | None) -> str | None:
    """``environment_id`` if given, else ``PREFACTOR_ENVIRONMENT_ID``, else None."""
    if environment_id:
        return environment_id
    return os.environ.get(ENV_ENVIRONMENT_ID) or None


def client_from_env(*, sdk_entry: str | None = None) -> PrefactorCoreClient:
    """A process-wide client built by `HttpClientConfig.from_env` (``PREFACTOR_API_URL``,
    ``PREFACTOR_API_TOKEN``, ``PREFACTOR_HTTP_TRANSPORT``).

    The same URL, token, transport and SDK entry always give the same client object, so
    creating a handler per request does not multiply clients. Raises
    :class:`PrefactorConfigurationError` naming the missing or invalid variables.
    """
    url = os.environ.get(ENV_API_URL, "").strip()
    token = os.environ.get(ENV_API_TOKEN, "").strip()
    missing = [n for n, v in ((ENV_API_URL, url), (ENV_API_TOKEN, token)) if not v]
    if missing:
        raise PrefactorConfigurationError(
            "Prefactor is not configured: no client was passed and the environment variable"
            f"{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not set. Set {ENV_API_URL} and "
            f"{ENV_API_TOKEN} (and {ENV_AGENT_ID} unless the token is deployment-scoped), "
            "or pass client=PrefactorCoreClient(...)."
        )
    from prefactor_http.config import HttpClientConfig

    try:
        http_config = HttpClientConfig.from_env()
    except ValueError as exc:
        raise PrefactorConfigurationError(str(exc)) from None
    key = (http_config.api_url, http_config.api_token, http_config.transport, sdk_entry)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _build_client(http_config, sdk_entry)
            _clients[key] = client
        return client


def resolve_client(
    client: PrefactorCoreClient | None = None, *, sdk_entry: str | None = None
) -> PrefactorCoreClient:
    """``client`` when given, else :func:`client_from_env`."""
    if client is not None:
        return client
    return client_from_env(sdk_entry=sdk_entry)


def _build_client(http_config: HttpClientConfig, sdk_entry: str | None) -> PrefactorCoreClient:
    from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig

    config = PrefactorCoreConfig(http_config=http_config)
    if sdk_entry:
        return PrefactorCoreClient(config, sdk_header_entry=sdk_entry)
    return PrefactorCoreClient(config)
