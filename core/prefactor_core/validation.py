"""Argument checks at the API boundary (the only errors the core raises into callers)."""

from __future__ import annotations

from typing import get_args

from prefactor_core.payloads import PayloadPolicy
from prefactor_http.models.types import FinishStatus, InstancePurpose

__all__ = ["FINISH_STATUSES", "PURPOSES", "check_id", "check_policy", "check_status"]

FINISH_STATUSES: tuple[str, ...] = get_args(FinishStatus)
PURPOSES: tuple[str, ...] = get_args(InstancePurpose)
MAX_ID_LENGTH = 64


def check_id(name: str, value: object, *, optional: bool = False) -> None:
    """`ValueError` unless ``value`` is a non-empty string of at most 64 characters."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{name} must be at most {MAX_ID_LENGTH} characters")


def check_status(status: object) -> str:
    """``status`` if it is a finish status; `ValueError` otherwise."""
    if status not in FINISH_STATUSES:
        raise ValueError(f"status must be one of {', '.join(FINISH_STATUSES)}; got {status!r}")
    return str(status)


def check_policy(policy: object) -> PayloadPolicy | None:
    """``policy`` if it is None or a `PayloadPolicy`; `TypeError` otherwise."""
    if policy is not None and not isinstance(policy, PayloadPolicy):
        raise TypeError(f"policy must be a PayloadPolicy, got {type(policy).__name__}")
    return policy
