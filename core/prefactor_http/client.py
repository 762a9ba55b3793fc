"""`PrefactorHttpClient`: one pooled HTTP session, retries, error mapping."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import ipaddress
import json
import logging
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from prefactor_http._version import __version__
from prefactor_http._wire import encode_json, validate_idempotency_key
from prefactor_http.config import HttpClientConfig
from prefactor_http.endpoints.agent_instance import AgentInstanceClient
from prefactor_http.endpoints.agent_spans import AgentSpanClient
from prefactor_http.endpoints.agents import AgentClient
from prefactor_http.endpoints.bulk import BulkClient
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorValidationError,
)
from prefactor_http.redirects import redirect_message
from prefactor_http.retry import RetryAttempt, RetryCallback, RetryPolicy, parse_retry_after

__all__ = ["DEFAULT_SDK_HEADER", "PrefactorHttpClient"]

# httpx imports its transport stack on first use. Importing it now, in the importing thread,
# keeps requests from ever importing a module: a process forked while a background thread is
# half-way through an import finds that module broken (or its import lock held) in the child.
_TRANSPORT_MODULES = ("certifi", "httpcore", "httpcore._backends.anyio", "anyio._backends._asyncio")


def _preload_transport() -> None:
    for name in _TRANSPORT_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional part of the stack, or a layout that changed
            pass


_preload_transport()

logger = logging.getLogger("prefactor_http")

_attempt_deadline: Callable[[float | None], AbstractAsyncContextManager[Any]] | None = getattr(
    asyncio, "timeout", None
)

DEFAULT_SDK_HEADER = f"prefactor-http@{__version__}"
SNIPPET_LENGTH = 200

QueryParams = Mapping[str, str | int | float | bool | None]

_plain_http_warned = False
_plain_http_lock = threading.Lock()
_tls_context: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def shared_tls_context() -> ssl.SSLContext:
    """The process's TLS context for API connections (certifi's CAs, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), built on first use.

    Building one loads a CA bundle under OpenSSL's locks for tens of milliseconds. Built once,
    and first outside any background thread (the exporter builds it before starting its own),
    so a process forked meanwhile never inherits those locks held by a thread it does not have.
    """
    global _tls_context
    context = _tls_context
    if context is None:
        with _tls_lock:
            if _tls_context is None:
                _tls_context = httpx.create_ssl_context()
            context = _tls_context
    return context


def _after_fork_in_child() -> None:
    global _plain_http_lock, _tls_lock
    _plain_http_lock = threading.Lock()
    _tls_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def proxy_for(api_url: str) -> str | None:
    """The proxy the environment names for ``api_url`` (``HTTPS_PROXY``, ``ALL_PROXY``...),
    or None when there is none, ``NO_PROXY`` exempts the host, or the host is this machine."""
    parts = urlsplit(api_url)
    if _is_loopback_host(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


def _pooled_transport(config: HttpClientConfig) -> httpx.AsyncBaseTransport:
    """The connection pool of ``config.transport``, with the environment's proxy if any."""
    proxy = proxy_for(config.api_url)
    if config.transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(
            verify=shared_tls_context(),
            trust_env=False,  # the proxy is settled here, as for httpx
            proxy=None if proxy is None else httpx.Proxy(proxy),
        )
    return httpx.AsyncHTTPTransport(verify=shared_tls_context(), proxy=proxy)


def _warn_if_plain_http(api_url: str) -> None:
    """Log once per process when the token would travel unencrypted off this machine."""
    global _plain_http_warned
    parts = urlsplit(api_url)
    if parts.scheme != "http" or _is_loopback_host(parts.hostname):
        return
    with _plain_http_lock:
        if _plain_http_warned:
            return
        _plain_http_warned = True
    logger.warning(
        "The Prefactor API token will be sent over plain http:// to %s; "
        "use https:// for any host that is not this machine",
        parts.hostname,
    )


class PrefactorHttpClient:
    """Async client for the Prefactor API over one pooled httpx transport.

    Use it as ``async with PrefactorHttpClient(config) as client:`` (or ``await open()`` /
    ``await close()``). Endpoint groups: ``agent_instances``, ``agent_spans``, ``bulk`` and
    ``agents``. ``sdk_header`` replaces the whole ``X-Prefactor-SDK`` value; ``transport`` is
    handed to httpx; ``on_retry(RetryAttempt)`` is called before each retry's wait.
    """

    def __init__(
        self,
        config: HttpClientConfig,
        sdk_header: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: RetryCallback | None = None,
    ) -> None:
        self._config = config
        self._sdk_header = (sdk_header or "").strip() or DEFAULT_SDK_HEADER
        self._transport = transport
        self._on_retry = on_retry
        self._retry = RetryPolicy(config)
        self._base_url = config.api_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {config.api_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"prefactor-http/{__version__}",
            "X-Prefactor-SDK": self._sdk_header,
        }
        self._timeout: dict[str, float | None] = {}
        self._http: httpx.AsyncBaseTransport | None = None
        self.agent_instances = AgentInstanceClient(self)
        self.agent_spans = AgentSpanClient(self)
        self.bulk = BulkClient(self)
        self.agents = AgentClient(self)
        _warn_if_plain_http(config.api_url)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"{type(self).__name__}(api_url={self._config.api_url!r}, {state})"

    @property
    def config(self) -> HttpClientConfig:
        """The configuration this client was built with."""
        return self._config

    @property
    def sdk_header(self) -> str:
        """The ``X-Prefactor-SDK`` value sent with every request."""
        return self._sdk_header

    @sdk_header.setter
    def sdk_header(self, value: str) -> None:
        self._sdk_header = value.strip() or DEFAULT_SDK_HEADER
        self._headers["X-Prefactor-SDK"] = self._sdk_header

    @property
    def is_open(self) -> bool:
        """Whether the HTTP session is open."""
        return self._http is not None

    async def open(self) -> None:
        """Open the pooled HTTP session (done by ``async with``); a no-op when already open."""
        if self.is_open:
            return
        config = self._config
        self._timeout = httpx.Timeout(
            config.request_timeout, connect=config.connect_timeout
        ).as_dict()
        # Every request goes to the one API host, so one transport (and its connection pool)
        # serves them all. Requests go to it directly: the client layers above it (cookies,
        # redirects, auth flows) do nothing for this API and cost a fifth of a request's CPU.
        self._http = self._transport or _pooled_transport(config)

    async def close(self) -> None:
        """Close the HTTP session; safe to call more than once. ``open()`` may follow."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> PrefactorHttpClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def validate_token(self) -> dict[str, Any]:
        """Check the token with ``GET /api/v1/ping``; raises `PrefactorAuthError` if refused."""
        return await self.request("GET", "/api/v1/ping")

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: QueryParams | None = None,
        idempotency_key: str | None = None,
        json_data: Any = None,
    ) -> dict[str, Any]:
        """Send one API request with retries and return the parsed JSON envelope.

        ``json`` is encoded once, so every attempt sends the same bytes. ``idempotency_key``
        is sent as the ``Idempotency-Key`` header. Raises the errors of
        `prefactor_http.exceptions`; transport errors come from httpx. ``json_data`` is the
        published ``prefactor-http`` 0.4 name of ``json``, kept for compatibility.
        """
        if json is None:
            json = json_data
        validate_idempotency_key(idempotency_key)
        content = None if json is None else encode_json(json)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        query = None if params is None else {k: v for k, v in params.items() if v is not None}
        method = method.upper()
        retry_index = 0
        while True:
            try:
                return await self._attempt(
                    method, path, content, query, headers, attempt=retry_index + 1
                )
            except Exception as exc:
                if not self._retry.should_retry(exc):
                    raise
                if retry_index >= self._retry.max_retries:
                    if self._retry.max_retries == 0:
                        raise
                    raise PrefactorRetryExhaustedError(
                        f"Request to {path} failed after {retry_index + 1} attempts", exc
                    ) from exc
                delay = self._retry.delay_for(exc, retry_index)
                retry_index += 1
                logger.debug(
                    "%s %s: retry %d in %.3f s after %s",
                    method,
                    path,
                    retry_index,
                    delay,
                    type(exc).__name__,
                )
                await self._notify_retry(RetryAttempt(path, retry_index, delay, exc))
                await asyncio.sleep(delay)

    async def _notify_retry(self, attempt: RetryAttempt) -> None:
        if self._on_retry is None:
            return
        try:
            result = self._on_retry(attempt)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.warning("on_retry callback raised", exc_info=True)

    def _session(self) -> httpx.AsyncBaseTransport:
        if self._http is None:
            raise PrefactorClientError("HTTP session not initialized")
        return self._http

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self._session().handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _attempt(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        *,
        attempt: int,
    ) -> dict[str, Any]:
        self._session()
        started = time.perf_counter()
        all_headers = self._headers if headers is None else {**self._headers, **headers}
        try:
            # httpx bounds each phase; this bounds the whole attempt, as documented.
            request = self._send(
                httpx.Request(
                    method,
                    self._base_url + path,
                    params=params,
                    headers=all_headers,
                    content=content,
                    extensions={"timeout": self._timeout},
                )
            )
            if _attempt_deadline is not None:
                # A timer on the current task: cheaper than a task per attempt (wait_for).
                async with _attempt_deadline(self._config.request_timeout):
                    response = await request
            else:  # pragma: no cover - Python 3.10
                response = await asyncio.wait_for(request, timeout=self._config.request_timeout)
        except asyncio.TimeoutError as exc:
            self._log_attempt(method, path, "ReadTimeout", attempt, started)
            raise httpx.ReadTimeout(
                f"No complete response within request_timeout ({self._config.request_timeout} s)"
            ) from exc
        except Exception as exc:
            self._log_attempt(method, path, type(exc).__name__, attempt, started)
            raise
        self._log_attempt(method, path, response.status_code, attempt, started)
        return self._read_envelope(response, path)

    @staticmethod
    def _log_attempt(
        method: str, path: str, outcome: int | str, attempt: int, started: float
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.debug(
                "%s %s -> %s (attempt %d, %.1f ms)", method, path, outcome, attempt, elapsed_ms
            )

    def _redact(self, text: str) -> str:
        return text.replace(self._config.api_token, "***")

    def _snippet(self, raw: bytes) -> str:
        text = " ".join(raw.decode("utf-8", errors="replace").split())
        text = self._redact(text)
        return text if len(text) <= SNIPPET_LENGTH else text[:SNIPPET_LENGTH] + "..."

    def _read_envelope(self, response: httpx.Response, path: str) -> dict[str, Any]:
        status = response.status_code
        raw = response.content
        retry_after = (
            parse_retry_after(response.headers.get("Retry-After")) if status >= 400 else None
        )
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
            problem = "is not valid JSON"
        else:
            problem = "is empty" if not raw.strip() else "is not a JSON object"
        if 300 <= status < 400:
            location = response.headers.get("Location")
            if location:
                location = urljoin(self._config.api_url.rstrip("/") + path, location)
            problem = "was " + redirect_message(location, status)
            body = None
        elif not isinstance(body, dict):
            problem = f"{problem} (HTTP {status})"
        if not isinstance(body, dict):
            raise PrefactorResponseContractError(
                f"Response to {path} {problem}",
                status_code=status,
                body_snippet=self._snippet(raw),
                retry_after=retry_after,
            )
        if 200 <= status < 300:
            return body
        raise self._api_error(status, body, retry_after)

    def _api_error(
        self, status: int, body: dict[str, Any], retry_after: float | None
    ) -> PrefactorApiError:
        raw_message = body.get("message")
        message = (
            self._redact(raw_message)
            if isinstance(raw_message, str) and raw_message
            else (f"HTTP {status}")
        )
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, str) and raw_code else "unknown"
        if status in (401, 403):
            return PrefactorAuthError(message, code, status, retry_after=retry_after)
        if status == 404:
            return PrefactorNotFoundError(message, code, status, retry_after=retry_after)
        if status in (400, 422):
            errors = body.get("errors")
            return PrefactorValidationError(
                message,
                code,
                status,
                errors if isinstance(errors, dict) else None,
                retry_after=retry_after,
            )
        return PrefactorApiError(message, code, status, retry_after=retry_after)
