"""Payload preparation: JSON-safe serialisation, size caps and redaction.

Adapters hand over raw objects; the export thread calls `prepare_payload` on them just before
they are sent, so none of this work happens on the agent's thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from prefactor_core.payloads.policy import (
    DEFAULT_KEEP_KEYS,
    DEFAULT_MAX_FIELD_CHARS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    PayloadPolicy,
)
from prefactor_core.payloads.redact import DEFAULT_SECRET_KEYS, DEFAULT_SECRET_PATTERNS
from prefactor_core.payloads.serialize import MAX_KEY_CHARS, Deferred, Serializer, json_size

__all__ = [
    "DEFAULT_KEEP_KEYS",
    "DEFAULT_MAX_FIELD_CHARS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_PATTERNS",
    "EXACT_POLICY",
    "Deferred",
    "PayloadPolicy",
    "PreparedPayload",
    "prepare_json",
    "prepare_payload",
    "to_jsonable",
]

DEFAULT_POLICY = PayloadPolicy()
EXACT_POLICY = PayloadPolicy(
    redact_secrets=False,
    max_field_chars=1_000_000,
    max_payload_bytes=16 * 1024 * 1024,
    max_items=100_000,
    max_depth=64,
)
"""For data the user declared (agent version, schemas): JSON-safe, nothing hidden."""
_MAX_PASSES = 4
# The serialiser's running estimate of a payload's size is never below a sixth of its JSON
# size (the widest case: a control character, one char written as six bytes ``\u0000``).
_WORST_EXPANSION = 6


@dataclass(frozen=True)
class PreparedPayload:
    """A payload ready to send (``data``) and how many cuts were made (``truncated``)."""

    data: dict[str, Any] | None
    truncated: int = 0


def to_jsonable(value: Any, policy: PayloadPolicy | None = None) -> Any:
    """``value`` as bounded JSON-safe data (no mask applied)."""
    return Serializer(policy or DEFAULT_POLICY).convert(value)


def _as_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"value": value}


def _bounded(value: Any, policy: PayloadPolicy) -> tuple[dict[str, Any], int]:
    """Serialise, then tighten the budget until the JSON fits ``max_payload_bytes``."""
    limit = policy.max_payload_bytes
    budget = limit
    size = 0
    for _ in range(_MAX_PASSES):
        serializer = Serializer(policy, budget)
        data = _as_object(serializer.convert(value))
        if (budget - serializer.budget) * _WORST_EXPANSION <= limit:
            return data, serializer.truncated  # small enough that measuring it is not needed
        size = json_size(data)
        if size <= limit:
            return data, serializer.truncated
        budget = max(1, int(budget * limit / size * 0.8))
    return {"…": f"[truncated {size} bytes]"}, 1


def prepare_payload(value: Any, policy: PayloadPolicy | None = None) -> PreparedPayload:
    """Serialise, redact, cap and mask ``value`` into a JSON object (None stays None).

    Never raises. A value that is not a mapping is wrapped as ``{"value": ...}``. When the
    policy's ``mask`` raises, the payload is withheld and replaced by a note saying so.
    """
    if value is None:
        return PreparedPayload(None, 0)
    policy = policy or DEFAULT_POLICY
    data, truncated = _bounded(value, policy)
    if policy.mask is not None:
        try:
            masked = policy.mask(data)
        except Exception as exc:
            return PreparedPayload({"…": f"[withheld: mask raised {type(exc).__name__}]"}, 0)
        if masked is None:
            return PreparedPayload({}, truncated)
        data, extra = _bounded(masked, policy)
        truncated += extra
    return PreparedPayload(data, truncated)


# Types orjson would write in a form of its own: left to the `Serializer`, whose form is ours.
_NATIVE_ONLY = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_CONTAINERS = (dict, list, tuple)


def _within(value: Any, policy: PayloadPolicy) -> bool:
    """Whether JSON-native ``value`` is within the policy's depth, item and key limits and
    holds only finite floats, so the `Serializer` would return it unchanged."""
    max_depth, max_items = policy.max_depth, policy.max_items
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        container, depth = stack.pop()
        if depth >= max_depth or len(container) > max_items:
            return False
        if type(container) is dict:
            for key in container:
                if len(key) > MAX_KEY_CHARS:
                    return False
            children: Any = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind in _CONTAINERS:
                stack.append((child, depth + 1))
            elif kind is float and not math.isfinite(child):
                return False
    return True


def prepare_json(value: Any, policy: PayloadPolicy | None = None) -> tuple[bytes | None, int]:
    """`prepare_payload` as compact JSON bytes, and how many cuts were made.

    A payload that is already JSON-native, small enough that no string can exceed the cap, and
    holds nothing a secret pattern could match (a substring test over its JSON) is written by
    orjson as it is; anything else takes the exact path. Both give the same JSON. Never
    raises.
    """
    if value is None:
        return None, 0
    policy = policy or DEFAULT_POLICY
    if policy.capture_content and policy.mask is None:
        try:
            raw = orjson.dumps(value, option=_NATIVE_ONLY)
        except (TypeError, orjson.JSONEncodeError):
            raw = None
        if (
            raw is not None
            and len(raw) <= policy.max_field_chars
            and len(raw) <= policy.max_payload_bytes
            and type(value) in _CONTAINERS
            and _within(value, policy)
        ):
            redactor = policy._redactor
            if redactor is None or not redactor.may_match(raw):
                if type(value) is not dict:
                    return b'{"value":' + raw + b"}", 0
                return _exact(raw), 0
    prepared = prepare_payload(value, policy)
    if prepared.data is None:
        return None, prepared.truncated
    return _exact(orjson.dumps(prepared.data)), prepared.truncated


def _exact(data: bytes) -> bytes:
    """``data`` in a block of its own size: orjson's result keeps its whole write buffer
    (32 KB or more, whatever it holds), and prepared payloads wait in memory by the thousand."""
    return bytes(memoryview(data))
