"""Helpers shared by the endpoint clients: body building and envelope parsing."""

from __future__ import annotations

import inspect
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from prefactor_http.exceptions import PrefactorResponseContractError

__all__ = [
    "ControlSignalCallback",
    "encode_json",
    "iso_timestamp",
    "key_for_call",
    "parse_details",
    "validate_idempotency_key",
    "without_none",
]

logger = logging.getLogger("prefactor_http")

MAX_IDEMPOTENCY_KEY_LENGTH = 64

ControlSignalCallback = Callable[[str | None], object]

ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_idempotency_key(key: str | None) -> None:
    """Raise `ValueError` for a key longer than 64 characters (before any request is made)."""
    if key is None:
        return
    if not isinstance(key, str):
        raise TypeError(f"Idempotency key must be a string, got {type(key).__name__}")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"Idempotency key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"got {len(key)}"
        )


def key_for_call(key: str | None) -> str:
    """The idempotency key one call sends on every attempt: the caller's (checked), or a new
    UUID4 when there is none, so a retry after a lost response replays instead of writing twice.
    """
    validate_idempotency_key(key)
    return str(uuid.uuid4()) if key is None else key


def iso_timestamp(value: datetime | None) -> str | None:
    """An aware UTC ISO-8601 string; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"timestamp must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """The mapping minus its None values, in the same order."""
    return {key: value for key, value in values.items() if value is not None}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> bytes:
    """Compact, deterministic JSON bytes (encoded once, so every retry sends the same bytes)."""
    return json.dumps(
        value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    ).encode("utf-8")


def parse_details(envelope: Mapping[str, Any], model: type[ModelT], operation: str) -> ModelT:
    """Validate ``envelope["details"]`` as ``model``; a mismatch is a contract error."""
    details = envelope.get("details")
    if not isinstance(details, dict):
        raise PrefactorResponseContractError(
            f"Invalid response for {operation}: 'details' is missing or not an object"
        )
    try:
        return model.model_validate(details)
    except ValidationError as exc:
        raise PrefactorResponseContractError(
            f"Invalid response for {operation}: {exc.error_count()} field error(s) in 'details'",
            cause=exc,
        ) from exc


async def fire_control_signal(
    envelope: Mapping[str, Any], callback: ControlSignalCallback | None
) -> None:
    """Call ``callback(reason)`` when the envelope carries ``control.terminate``."""
    if callback is None:
        return
    control = envelope.get("control")
    if not isinstance(control, dict) or not control.get("terminate"):
        return
    reason = control.get("reason")
    try:
        result = callback(reason if isinstance(reason, str) else None)
        if inspect.isawaitable(result):
            await result
    except Exception:
        # The request itself succeeded; a faulty callback must not turn it into a failure.
        logger.warning("control_signal_callback raised", exc_info=True)
