"""When to retry a failed request and how long to wait first.

`RetryHandler` is the published ``prefactor-http`` 0.4 helper, kept for compatibility.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from prefactor_http.config import HttpClientConfig
from prefactor_http.exceptions import (
    PrefactorApiError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
)

__all__ = [
    "RetryAttempt",
    "RetryCallback",
    "RetryHandler",
    "RetryPolicy",
    "parse_retry_after",
]

_JITTER_LOW = 0.75
_JITTER_HIGH = 1.25

_RETRYABLE_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryAttempt:
    """A retry about to happen: ``attempt`` is the 1-based retry number, ``delay`` in seconds."""

    path: str
    attempt: int
    delay: float
    error: BaseException


RetryCallback = Callable[[RetryAttempt], object]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = now or datetime.now(timezone.utc)
        seconds = (when - current).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class RetryPolicy:
    """The retry rules of one `HttpClientConfig`."""

    def __init__(self, config: HttpClientConfig, rng: random.Random | None = None) -> None:
        self.max_retries = config.max_retries
        self.initial_delay = config.initial_retry_delay
        self.max_delay = config.max_retry_delay
        self.multiplier = config.retry_multiplier
        self.status_codes = frozenset(config.retry_on_status_codes)
        self._rng = rng or random.Random()

    def should_retry(self, exc: BaseException) -> bool:
        """Transport failures always; HTTP errors only when their status is configured."""
        if isinstance(exc, (PrefactorApiError, PrefactorResponseContractError)):
            return exc.status_code is not None and exc.status_code in self.status_codes
        return isinstance(exc, _RETRYABLE_TRANSPORT_ERRORS)

    def retries_status(self, status: int) -> bool:
        """Whether an answer with HTTP ``status`` is worth another attempt: the configured
        ``retry_on_status_codes`` (429 and 5xx but 501 by default), and 408."""
        return status == 408 or status in self.status_codes

    def backoff(self, retry_index: int) -> float:
        """Jittered exponential delay before retry ``retry_index`` (0-based), capped."""
        try:
            base = self.initial_delay * self.multiplier**retry_index
        except OverflowError:
            return self.max_delay
        return min(base * self._rng.uniform(_JITTER_LOW, _JITTER_HIGH), self.max_delay)

    def delay_for(self, exc: BaseException, retry_index: int) -> float:
        """The wait before the next attempt: ``Retry-After`` when the server sent one."""
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, (int, float)):
            return min(float(retry_after), self.max_delay)
        return self.backoff(retry_index)


class RetryHandler:
    """The published ``prefactor-http`` 0.4 retry helper, kept for compatibility.

    ``await RetryHandler(config).execute(operation, is_retryable, *args, **kwargs)`` awaits
    ``operation(*args, **kwargs)`` up to ``config.max_retries + 1`` times with this module's
    backoff, retrying only errors ``is_retryable`` accepts. When every attempt failed it raises
    `PrefactorRetryExhaustedError` (or the error itself when ``max_retries`` is 0).
    """

    def __init__(self, config: HttpClientConfig) -> None:
        self.config = config
        self._policy = RetryPolicy(config)

    def _calculate_delay(self, attempt: int) -> float:
        return self._policy.backoff(attempt)

    async def execute(
        self,
        operation: Callable[..., Awaitable[Any]],
        is_retryable: Callable[[Exception], bool],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Run ``operation`` with retries; see the class docstring."""
        retries = self.config.max_retries
        for attempt in range(retries + 1):
            try:
                return await operation(*args, **kwargs)
            except Exception as exc:
                if not is_retryable(exc) or retries == 0:
                    raise
                if attempt == retries:
                    raise PrefactorRetryExhaustedError(
                        f"Operation failed after {retries + 1} attempts", exc
                    ) from exc
                await asyncio.sleep(self._calculate_delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover
