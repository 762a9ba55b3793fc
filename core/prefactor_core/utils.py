"""Small helpers: idempotency keys, timestamps, the runtime description."""

from __future__ import annotations

import logging
import platform
import sys
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from prefactor_core._version import __version__

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "build_runtime_environment",
    "datetime_from_ns",
    "ensure_utc",
    "generate_idempotency_key",
    "utc_now",
    "validate_idempotency_key",
    "warn_missing_adaptor_config",
]

logger = logging.getLogger("prefactor_core")

MAX_IDEMPOTENCY_KEY_LENGTH = 64


def generate_idempotency_key() -> str:
    """A fresh idempotency key (a UUID4 string, 36 characters)."""
    return str(uuid.uuid4())


def validate_idempotency_key(key: str) -> str:
    """Return ``key`` if usable; `ValueError` when empty or longer than 64 characters."""
    if not isinstance(key, str):
        raise TypeError(f"Idempotency key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("Idempotency key must not be empty")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"Idempotency key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"got {len(key)}"
        )
    return key


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def datetime_from_ns(nanoseconds: int) -> datetime:
    """An aware UTC datetime from nanoseconds since the Unix epoch (`time.time_ns`), to the
    microsecond."""
    return _EPOCH + timedelta(microseconds=nanoseconds // 1000)


def ensure_utc(value: datetime | None) -> datetime | None:
    """``value`` as aware UTC; a naive datetime is taken as UTC. `TypeError` for non-datetimes."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"timestamp must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def build_runtime_environment(sdk_entries: Iterable[str] | str | None = ()) -> dict[str, Any]:
    """Describe the running SDK and interpreter, for ``agent_version["runtime_environment"]``.

    ``sdk_entries`` are adapter entries such as ``"prefactor-langchain@1.0.0"``: a list, or
    (as the published SDK takes them) one string of entries separated by spaces.
    """
    if sdk_entries is None:
        sdk_entries = ()
    elif isinstance(sdk_entries, str):
        sdk_entries = sdk_entries.split()
    agent_sdk = [entry for entry in sdk_entries if not entry.startswith("prefactor-core@")]
    implementation = platform.python_implementation().lower()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "agent_sdk": agent_sdk,
        "os": platform.system().lower() or sys.platform,
        "prefactor_sdk": [f"prefactor-core@{__version__}", f"prefactor-http@{__version__}"],
        "runtime": f"{implementation}@{version}",
    }


_warned_adaptors: set[str] = set()


def warn_missing_adaptor_config(
    instance_id: str | None, adaptor_name: str, create_client_call: str | None = None
) -> None:
    """Log (once per adaptor) that an instance was registered before the adaptor configured
    the client, so its SDK header entry is missing from that registration.

    The arguments are the published SDK's: the instance, the adaptor's name and the call that
    builds a client the right way (e.g. ``"PrefactorMiddleware.create_client(config)"``).
    """
    if adaptor_name in _warned_adaptors:
        return
    _warned_adaptors.add(adaptor_name)
    advice = f" Use {create_client_call} to create the client first." if create_client_call else ""
    logger.warning(
        "Agent instance %s was registered before the %s could configure the client; "
        "its SDK header entry was not sent with that registration.%s",
        instance_id or "(unknown)",
        adaptor_name,
        advice,
    )
