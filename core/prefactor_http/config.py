"""Connection, timeout and retry settings for `PrefactorHttpClient`."""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DEFAULT_RETRY_STATUS_CODES", "TRANSPORTS", "HttpClientConfig"]

DEFAULT_RETRY_STATUS_CODES: tuple[int, ...] = (429, 500, 502, 503, 504)
TRANSPORTS: tuple[str, ...] = ("httpx", "aiohttp")
"""What carries the requests: httpx's own connection pool (the default), or aiohttp's through
the ``httpx-aiohttp`` transport (the ``aiohttp`` extra), which costs about half the CPU per
request."""

_ENV_URL = "PREFACTOR_API_URL"
_ENV_TOKEN = "PREFACTOR_API_TOKEN"
_ENV_TRANSPORT = "PREFACTOR_HTTP_TRANSPORT"

logger = logging.getLogger("prefactor_http")


# Visible ASCII only: anything else cannot travel in an Authorization header.
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")
# A token pasted together with its header scheme ("Bearer abc"); the client adds the scheme.
_BEARER_PREFIX = re.compile(r"bearer\s+", re.IGNORECASE)


def _clean_token(token: object) -> str:
    """The token without surrounding space or a ``Bearer `` prefix; `ValueError` naming the
    setting and the fix (never the token) when it cannot be sent."""
    if not isinstance(token, str) or not token.strip():
        raise ValueError(
            f"api_token is required: set the environment variable {_ENV_TOKEN} to your "
            "Prefactor API token, or pass api_token=..."
        )
    token = token.strip()
    prefix = _BEARER_PREFIX.match(token)
    if prefix is not None:
        logger.debug("api_token started with 'Bearer '; using the token without it")
        token = token[prefix.end() :]
    if not _TOKEN_CHARS.fullmatch(token):
        # Never echo the token: it is a secret even when it is malformed.
        raise ValueError(
            f"api_token ({_ENV_TOKEN}) contains spaces, control or non-ASCII characters, so "
            "it cannot be sent as a bearer token: set it to the token alone, exactly as "
            "Prefactor shows it (no quotes, no line breaks)"
        )
    return token


def _check_url(url: str) -> None:
    """`ValueError` unless ``url`` is an http(s) base URL requests can be sent to."""
    if any(char.isspace() or not char.isprintable() for char in url):
        raise ValueError(f"api_url must not contain spaces or control characters: {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError as exc:
        raise ValueError(f"api_url is not a valid URL ({exc}): {url!r}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"api_url must start with http:// or https://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"api_url has no host: {url!r}")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"api_url must not have a query or fragment: {url!r}")


_API_SUFFIX = "/api/v1"


def _base_url(url: str) -> str:
    """``url`` without a trailing ``/api/v1`` (every request path already starts with it)."""
    trimmed = url.rstrip("/")
    if trimmed.lower().endswith(_API_SUFFIX):
        base = trimmed[: -len(_API_SUFFIX)]
        logger.info("api_url ended with %s; using %s (request paths add it)", _API_SUFFIX, base)
        return base
    return url


def _positive(name: str, value: float) -> None:
    # `not value > 0` also rejects NaN.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be positive (a number), got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _check_transport(transport: object) -> None:
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}; got {transport!r}")
    if transport == "aiohttp":
        try:
            import httpx_aiohttp  # noqa: F401
        except ImportError:
            raise ValueError(
                'transport="aiohttp" needs the httpx-aiohttp package: '
                'pip install "prefactor-integrations[aiohttp]"'
            ) from None


@dataclass(repr=False)
class HttpClientConfig:
    """Settings for `PrefactorHttpClient`, validated on construction.

    ``api_url`` is the base URL (``https://app.prefactorai.com``); every request goes to
    ``api_url.rstrip('/') + path``, and a trailing ``/api/v1`` is removed (paths start with
    it). ``request_timeout`` bounds a whole attempt (connect, send, wait, read) and
    ``connect_timeout`` the connection set-up alone, both in seconds. A failed attempt is
    retried up to ``max_retries`` times with exponential backoff starting at
    ``initial_retry_delay`` and growing by ``retry_multiplier``, capped at ``max_retry_delay``.
    Only transport failures and the HTTP statuses in ``retry_on_status_codes`` are retried.
    ``transport`` is one of `TRANSPORTS`: ``"aiohttp"`` needs
    ``pip install "prefactor-integrations[aiohttp]"``.

    The token is never shown by ``repr()`` or ``str()``.
    """

    api_url: str
    api_token: str
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    initial_retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    retry_multiplier: float = 2.0
    retry_on_status_codes: tuple[int, ...] = DEFAULT_RETRY_STATUS_CODES
    transport: str = "httpx"

    def __post_init__(self) -> None:
        if not isinstance(self.api_url, str) or not self.api_url.strip():
            raise ValueError("api_url is required")
        self.api_url = self.api_url.strip()
        _check_url(self.api_url)
        self.api_url = _base_url(self.api_url)
        self.api_token = _clean_token(self.api_token)

        _positive("request_timeout", self.request_timeout)
        _positive("connect_timeout", self.connect_timeout)
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(
                f"max_retries must be non-negative (an integer), got {self.max_retries!r}"
            )
        _positive("initial_retry_delay", self.initial_retry_delay)
        _positive("max_retry_delay", self.max_retry_delay)
        if self.initial_retry_delay > self.max_retry_delay:
            raise ValueError(
                f"initial_retry_delay must be <= max_retry_delay, got "
                f"{self.initial_retry_delay} > {self.max_retry_delay}"
            )
        if (
            isinstance(self.retry_multiplier, bool)
            or not isinstance(self.retry_multiplier, (int, float))
            or not self.retry_multiplier >= 1
            or math.isinf(self.retry_multiplier)
        ):
            raise ValueError(f"retry_multiplier must be >= 1, got {self.retry_multiplier!r}")

        codes = tuple(self.retry_on_status_codes)
        for code in codes:
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise ValueError(
                    f"retry_on_status_codes must hold HTTP status codes (100-599), got {code!r}"
                )
        self.retry_on_status_codes = codes
        _check_transport(self.transport)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={'***' if f.name == 'api_token' else repr(getattr(self, f.name))}"
            for f in fields(self)
        )
        return f"{type(self).__name__}({shown})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, **overrides: Any) -> HttpClientConfig:
        """Build a config from ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN`` (and the
        optional ``PREFACTOR_HTTP_TRANSPORT``).

        Keyword arguments set the other fields (or override the environment). A missing or
        empty variable raises `ValueError` naming it.
        """
        values: dict[str, Any] = {}
        transport = os.environ.get(_ENV_TRANSPORT, "").strip()
        if transport and "transport" not in overrides:
            if transport not in TRANSPORTS:
                raise ValueError(
                    f"environment variable {_ENV_TRANSPORT}: transport must be one of "
                    f"{', '.join(TRANSPORTS)}; got {transport!r}"
                )
            values["transport"] = transport
        for field_name, env_name in (("api_url", _ENV_URL), ("api_token", _ENV_TOKEN)):
            if field_name in overrides:
                continue
            value = os.environ.get(env_name, "").strip()
            if not value:
                what = "API URL" if field_name == "api_url" else "API token"
                raise ValueError(
                    f"environment variable {env_name} is not set: set it to your Prefactor "
                    f"{what}, or pass {field_name}=..."
                )
            values[field_name] = value
        values.update(overrides)
        return cls(**values)
