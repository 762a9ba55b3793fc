"""Errors raised by `prefactor_http`, and the transient/permanent classification.

``is_transient_http_error`` and ``is_permanent_http_error`` are the published
``prefactor-http`` 0.4 names of the classification, kept for compatibility.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorValidationError",
    "is_permanent_http_error",
    "is_transient_error",
    "is_transient_http_error",
]


class PrefactorHttpError(Exception):
    """Base class of every error raised by `prefactor_http`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PrefactorApiError(PrefactorHttpError):
    """The API answered with an error status (``status_code``) and error ``code``.

    ``retry_after`` holds the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        code: str = "unknown",
        status_code: int | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code}, code={self.code})"


class PrefactorAuthError(PrefactorApiError):
    """The token was missing, wrong or not allowed (HTTP 401/403)."""


class PrefactorNotFoundError(PrefactorApiError):
    """The resource does not exist (HTTP 404)."""


class PrefactorValidationError(PrefactorApiError):
    """The request was rejected as invalid (HTTP 400/422); ``errors`` maps field to problems."""

    def __init__(
        self,
        message: str,
        code: str = "invalid_request",
        status_code: int | None = 422,
        errors: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code, status_code, retry_after=retry_after)
        self.errors: dict[str, Any] = dict(errors or {})

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}: {self.errors}" if self.errors else base


class PrefactorRetryExhaustedError(PrefactorHttpError):
    """Every attempt failed; ``last_error`` is the failure of the final attempt."""

    def __init__(self, message: str, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error

    def __str__(self) -> str:
        if self.last_error is None:
            return self.message
        return f"{self.message}: {type(self.last_error).__name__}: {self.last_error}"


class PrefactorClientError(PrefactorHttpError):
    """The client was used wrongly, e.g. a request before the session was opened."""


class PrefactorResponseContractError(PrefactorHttpError):
    """The response could not be read: not JSON, not an object, or ``details`` of a wrong shape.

    ``status_code`` is the HTTP status when the body itself was unreadable and ``None`` when a
    successful envelope failed the model; ``body_snippet`` is the body with whitespace collapsed,
    cut to 200 characters (plus ``...``).
    """

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        body_snippet: str | None = None,
        cause: BaseException | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body_snippet = body_snippet
        self.cause = cause
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.body_snippet is None:
            return self.message
        return f"{self.message}: {self.body_snippet!r}"


_TRANSIENT_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    asyncio.TimeoutError,
    TimeoutError,
    ConnectionError,
)


def _transient_status(status: int | None) -> bool:
    return status is not None and (status == 429 or status >= 500)


def is_transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` may succeed if tried again later.

    Transient: connection failures, timeouts, dropped connections, HTTP 429 and 5xx (also when
    the body was unreadable), and retries exhausted on a transient failure. Everything else
    (other 4xx such as 409, malformed successful responses, client misuse) is permanent.
    """
    if isinstance(exc, PrefactorRetryExhaustedError):
        return exc.last_error is not None and is_transient_error(exc.last_error)
    if isinstance(exc, PrefactorApiError):
        return _transient_status(exc.status_code)
    if isinstance(exc, PrefactorResponseContractError):
        return _transient_status(exc.status_code)
    if isinstance(exc, PrefactorHttpError):
        return False
    return isinstance(exc, _TRANSIENT_TRANSPORT_ERRORS)


# -- kept for the published prefactor-http 0.4 ----------------------------------------------

is_transient_http_error = is_transient_error
"""Published name of `is_transient_error`."""


def is_permanent_http_error(exc: BaseException) -> bool:
    """Whether retrying the same request is pointless: an HTTP 4xx other than 429, or a
    response that could not be read on a non-retryable status. Transport failures and
    errors that are not HTTP errors are neither transient nor permanent here."""
    if isinstance(exc, PrefactorRetryExhaustedError):
        return exc.last_error is not None and is_permanent_http_error(exc.last_error)
    if isinstance(exc, PrefactorApiError):
        status = exc.status_code
        return status is not None and 400 <= status < 500 and status != 429
    if isinstance(exc, PrefactorResponseContractError):
        return not _transient_status(exc.status_code)
    return False
