"""Payload preparation: JSON-safe serialisation, size caps and redaction.

Adapters hand over raw objects; the export thread calls `prepare_payload` on them just before
they are sent, so none of this work happens on the agent's thread.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from prefactor_core.payloads.policy import (
    DEFAULT_KEEP_KEYS,
    DEFAULT_MAX_FIELD_CHARS,
    DEFAULT_MAX_PAYLOAD_BYTES,
    PayloadPolicy,
)
from prefactor_core.payloads.redact import (
    DEFAULT_SECRET_KEYS,
    DEFAULT_SECRET_PATTERNS,
    MAX_KEY_CHARS,
    Redactor,
)
from prefactor_core.payloads.serialize import (
    NOTHING,
    Deferred,
    Serializer,
    duck_dump,
    json_size,
)

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


# Types orjson would write in a form of its own: they go through `_plain`, which gives the
# `Serializer`'s form, or to the `Serializer` itself.
_NATIVE_ONLY = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_CONTAINERS = (dict, list, tuple)
# Stands in when a policy redacts nothing: knows no secret key and changes no string.
_NO_REDACTOR = Redactor({}, frozenset())


class _Plain:
    """orjson's ``default``: the plain value the `Serializer` would make of a few well-known
    objects (deferred values, pydantic models, dataclasses, dates, subclasses of the JSON
    types), noting what it made so that the result can be checked; anything else raises, and
    the payload takes the exact path."""

    __slots__ = ("made",)

    def __init__(self) -> None:
        self.made: list[Any] = []

    def __call__(self, obj: Any) -> Any:
        if type(obj) is Deferred:
            value = obj.resolve()
        elif isinstance(obj, dt.datetime):
            value = (obj if obj.tzinfo else obj.replace(tzinfo=dt.timezone.utc)).isoformat()
        elif isinstance(obj, (dt.date, dt.time)):
            value = obj.isoformat()
        elif isinstance(obj, Mapping):
            value = dict(obj)
        elif isinstance(obj, str):
            value = str.__str__(obj)
        elif isinstance(obj, (list, tuple)):
            as_dict = getattr(obj, "_asdict", None)
            value = as_dict() if isinstance(obj, tuple) and callable(as_dict) else list(obj)
        else:
            value = duck_dump(obj)
            if value is NOTHING:
                raise TypeError(type(obj).__qualname__)
        self.made.append(value)
        return value


def _within(value: Any, policy: PayloadPolicy, depth_used: int = 0) -> bool:
    """Whether JSON data ``value`` is one the `Serializer` would return unchanged: within the
    policy's depth, item and key limits, only finite floats, no secret-named key with a value,
    no string a secret pattern changes (strings are short here: none needs cutting)."""
    max_depth, max_items = policy.max_depth - depth_used, policy.max_items
    redactor = policy._redactor or _NO_REDACTOR
    clean, plain_keys = redactor.clean, redactor.plain_keys
    redacting = redactor is not _NO_REDACTOR
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        container, depth = stack.pop()
        if depth >= max_depth or len(container) > max_items:
            return False
        if type(container) is dict:
            if not container.keys() <= plain_keys:
                for key, child in container.items():
                    if not redactor.plain_key(key) and (
                        len(key) > MAX_KEY_CHARS or child is not None
                    ):
                        return False
            children: Any = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind is str:
                if redacting and child not in clean and not redactor.is_clean(child):
                    return False
            elif kind is dict or kind is list or kind is tuple:
                stack.append((child, depth + 1))
            elif kind is float and not math.isfinite(child):
                return False
    return True


def _finite(values: list[Any]) -> bool:
    """Whether every float in ``values`` (and what they hold) is finite: JSON has no NaN,
    which orjson writes as null and the `Serializer` as ``"NaN"``."""
    stack = list(values)
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
    return True


def _fast(value: Any, policy: PayloadPolicy) -> bytes | None:
    """``value``'s JSON when the exact path would give the same, else None."""
    if type(value) not in _CONTAINERS:
        return None
    plain = _Plain()
    try:
        raw = orjson.dumps(value, default=plain, option=_NATIVE_ONLY)
    except (TypeError, orjson.JSONEncodeError):
        return None
    if len(raw) > policy.max_field_chars or len(raw) > policy.max_payload_bytes:
        return None  # a string may need cutting, or the whole
    if plain.made:
        # Each object made plain takes a level of depth in the `Serializer`'s count.
        # NaN and infinities are written as null: only then can the objects have held any.
        if b"null" in raw and not _finite(plain.made):
            return None
        if not _within(orjson.loads(raw), policy, len(plain.made)):
            return None
    elif not _within(value, policy):
        return None
    return raw if type(value) is dict else b'{"value":' + raw + b"}"


def prepare_json(value: Any, policy: PayloadPolicy | None = None) -> tuple[bytes | None, int]:
    """`prepare_payload` as compact JSON bytes, and how many cuts were made.

    A payload small enough that no string can exceed the cap, made of JSON data and well-known
    objects, and holding nothing to redact (its strings checked one by one, the verdicts on
    short ones remembered) is written by orjson directly; anything else takes the exact path.
    Both give the same JSON.
    Never raises.
    """
    if value is None:
        return None, 0
    policy = policy or DEFAULT_POLICY
    if policy.capture_content and policy.mask is None:
        raw = _fast(value, policy)
        if raw is not None:
            return _exact(raw), 0
    prepared = prepare_payload(value, policy)
    if prepared.data is None:
        return None, prepared.truncated
    return _exact(orjson.dumps(prepared.data)), prepared.truncated


def _exact(data: bytes) -> bytes:
    """``data`` in a block of its own size: orjson's result keeps its whole write buffer
    (32 KB or more, whatever it holds), and prepared payloads wait in memory by the thousand."""
    return bytes(memoryview(data))
