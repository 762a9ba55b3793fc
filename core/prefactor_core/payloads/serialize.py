"""Turn any Python object into bounded, JSON-safe data.

Runs in the export thread, never on the agent's thread. It never raises: whatever cannot be read
becomes a short descriptive string. Strings and containers beyond the policy's limits are cut
and marked with their original size, and the number of cuts is reported.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import inspect
import json
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from os import PathLike
from typing import Any

from prefactor_core.payloads.policy import MAX_KEPT_CHARS, PayloadPolicy
from prefactor_core.payloads.redact import MAX_KEY_CHARS

__all__ = ["Deferred", "Serializer", "json_size"]

REDACTED = "[REDACTED]"
_SEQUENCE_TYPES = (list, tuple, set, frozenset)
_INT_LIMIT = 1 << 63


def json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON of ``value`` (which must be JSON-safe)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return len(text.encode("utf-8"))


def _clean_text(text: str) -> str:
    """``text`` with lone surrogates (not encodable as UTF-8) replaced by U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)
    return text


def _type_name(obj: Any) -> str:
    try:
        return type(obj).__qualname__
    except Exception:  # pragma: no cover - a broken metaclass
        return "object"


def _safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        return f"<{_type_name(obj)} object>"
    return text if isinstance(text, str) else f"<{_type_name(obj)} object>"


class Deferred:
    """A payload value worked out in the export thread: ``fn(arg)``, when it is serialised.

    Lets an adapter hand over a framework object (a list of chat messages, say) together with
    the function that turns it into the shape to store, so that conversion costs the agent's
    thread nothing. ``fn`` must only read ``arg``; what it returns is serialised as usual, and
    if it raises, the value becomes a short note, like any unreadable object.
    """

    __slots__ = ("arg", "fn")

    def __init__(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self.fn = fn
        self.arg = arg

    def resolve(self) -> Any:
        """The value: ``fn(arg)``."""
        return self.fn(self.arg)

    def __repr__(self) -> str:
        return f"Deferred({getattr(self.fn, '__qualname__', self.fn)!r})"


class Serializer:
    """One pass of preparation under a policy; ``truncated`` counts the cuts it made."""

    def __init__(self, policy: PayloadPolicy, budget: int | None = None) -> None:
        self.policy = policy
        self.redactor = policy._redactor
        self.budget = policy.max_payload_bytes if budget is None else budget
        self.truncated = 0
        self._active: set[int] = set()
        self._tight = self.budget < policy.max_field_chars

    # -- entry point ------------------------------------------------------------------------

    def convert(self, obj: Any, depth: int = 0) -> Any:
        """JSON-safe, bounded form of ``obj``."""
        kind = type(obj)
        if obj is None or kind is bool:
            self.budget -= 5
            return obj
        if kind is str:
            return self._string(obj)
        if kind is int:
            return self._int(obj)
        if kind is float:
            return self._float(obj)
        if isinstance(obj, Enum):
            return self.convert(obj.value, depth)
        if isinstance(obj, str):
            return self._string(str.__str__(obj))
        if isinstance(obj, bool):
            return bool(obj)
        if isinstance(obj, int):
            return self._int(int(obj))
        if isinstance(obj, float):
            return self._float(float(obj))
        if depth >= self.policy.max_depth:
            return self._cut(f"…[truncated: nested deeper than {self.policy.max_depth}]")
        try:
            return self._structured(obj, depth)
        except RecursionError:
            return self._cut("…[truncated: nested too deep]")
        except Exception as exc:
            return self._string(f"<unserializable {_type_name(obj)}: {type(exc).__name__}>")

    # -- scalars ----------------------------------------------------------------------------

    def _cut(self, marker: str) -> str:
        self.truncated += 1
        return self._note(marker)

    def _note(self, marker: str) -> str:
        self.budget -= len(marker) + 2
        return marker

    def _int(self, value: int) -> int | str:
        if -_INT_LIMIT <= value < _INT_LIMIT:
            self.budget -= 8
            return value
        return self._string(f"<int of {value.bit_length()} bits>")

    def _float(self, value: float) -> float | str:
        self.budget -= 12
        if math.isfinite(value):
            return value
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"

    def _string(self, text: str, keep: bool = False) -> str:
        size = len(text)
        if not self.policy.capture_content and not (keep and size <= MAX_KEPT_CHARS):
            out = f"[{size} chars]"
            self.budget -= len(out) + 2
            return out
        cap = max(0, min(self.policy.max_field_chars, self.budget))
        cut = size > cap
        if self.redactor is not None:
            # Redact a little past the cut so a secret straddling it does not leak its start.
            text = self.redactor.redact(text[: cap + 256] if cut else text)
            cut = cut or len(text) > cap
        if cut:
            text = text[:cap] + f"…[truncated {size} chars]"
            self.truncated += 1
        text = _clean_text(text)
        self.budget -= len(text) + 2
        return text

    def _bytes(self, data: bytes | bytearray | memoryview) -> str:
        size = len(data)
        if not self.policy.capture_content:
            out = f"[{size} bytes]"
            self.budget -= len(out) + 2
            return out
        cap = max(0, min(self.policy.max_field_chars, self.budget))
        head = bytes(data[: cap + 4])
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if size <= cap:
                return self._string(text)
        encoded = base64.b64encode(bytes(data[: cap * 3 // 4])).decode("ascii")
        out = "base64:" + encoded
        if size > cap * 3 // 4:
            out += f"…[truncated {size} bytes]"
            self.truncated += 1
        self.budget -= len(out) + 2
        return out

    def _key(self, key: Any) -> str:
        if type(key) is str and len(key) <= MAX_KEY_CHARS and key.isascii():
            return key
        if isinstance(key, str):
            text = str.__str__(key)
        elif key is None or isinstance(key, (bool, int, float)):
            text = str(key)
        elif isinstance(key, Enum):
            text = str(key.value)
        else:
            text = _safe_repr(key)
        if len(text) > MAX_KEY_CHARS:
            text = text[:MAX_KEY_CHARS] + "…"
        return _clean_text(text)

    # -- containers and objects -------------------------------------------------------------

    def _structured(self, obj: Any, depth: int) -> Any:
        if type(obj) is Deferred:
            return self.convert(obj.resolve(), depth)
        if isinstance(obj, Mapping):
            return self._mapping(obj, obj, depth)
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return self._bytes(obj)
        as_dict = getattr(obj, "_asdict", None)
        if isinstance(obj, tuple) and callable(as_dict):
            return self._mapping(obj, as_dict(), depth)
        if isinstance(obj, _SEQUENCE_TYPES) or type(obj).__name__ == "deque":
            return self._sequence(obj, depth)
        if isinstance(obj, dt.datetime):
            if obj.tzinfo is None:
                obj = obj.replace(tzinfo=dt.timezone.utc)
            return self._string(obj.isoformat())
        if isinstance(obj, (dt.date, dt.time)):
            return self._string(obj.isoformat())
        if isinstance(obj, dt.timedelta):
            return self._float(obj.total_seconds())
        if isinstance(obj, (uuid.UUID, Decimal, PathLike, complex)):
            return self._string(str(obj))
        if isinstance(obj, BaseException):
            return self._mapping(
                obj,
                {"error_type": _type_name(obj), "message": _exception_message(obj)},
                depth,
            )
        if isinstance(obj, type):
            return self._string(f"<class {obj.__module__}.{obj.__qualname__}>")
        if inspect.isgenerator(obj) or inspect.isasyncgen(obj) or inspect.iscoroutine(obj):
            # Never iterate: that would consume the caller's generator.
            return self._string(f"<{_type_name(obj)} {getattr(obj, '__qualname__', '')}>".strip())
        dumped = duck_dump(obj)
        if dumped is not NOTHING:
            return self._object(obj, dumped, depth)
        if hasattr(obj, "__next__") and hasattr(obj, "__iter__"):
            return self._string(f"<{_type_name(obj)} iterator>")
        return self._string(_safe_repr(obj))

    def _object(self, obj: Any, dumped: Any, depth: int) -> Any:
        key = id(obj)
        if key in self._active:
            return self._note("<cycle>")
        self._active.add(key)
        try:
            return self.convert(dumped, depth + 1)
        finally:
            self._active.discard(key)

    def _mapping(self, owner: Any, mapping: Any, depth: int) -> dict[str, Any]:
        key = id(owner)
        if key in self._active:
            return {"…": self._note("<cycle>")}
        self._active.add(key)
        try:
            items = list(mapping.items())
            if not self._tight and len(items) <= self.policy.max_items:
                budget, truncated = self.budget, self.truncated
                out = self._mapping_in_order(items, depth)
                if self.budget >= self.policy.max_field_chars:
                    return out
                # The budget ran low on the way: start again, small values first, and from
                # now on always so (the budget only shrinks), so no value is walked thrice.
                self.budget, self.truncated = budget, truncated
                self._tight = True
            return self._mapping_small_first(items, depth)
        finally:
            self._active.discard(key)

    def _mapping_in_order(self, items: list[tuple[Any, Any]], depth: int) -> dict[str, Any]:
        """Every item, in order. Exact while the budget stays above ``max_field_chars``: no
        value is cut for want of budget then, so the order spent does not matter."""
        out: dict[str, Any] = {}
        for raw_key, value in items:
            name = self._key(raw_key)
            self.budget -= len(name) + 4
            out[name] = self._item(name, value, depth)
        return out

    def _mapping_small_first(self, items: list[tuple[Any, Any]], depth: int) -> dict[str, Any]:
        total = len(items)
        order: list[int] | range = range(total)
        small = [_is_small(value) for _, value in items]
        if 0 < sum(small) < total:
            # Small scalars take their share of the budget first, so a cut falls on bulky
            # values, never on the fields that say what a payload is (names, ids, counts).
            order = sorted(order, key=lambda index: not small[index])
        kept: dict[int, tuple[str, Any]] = {}
        cut: str | None = None
        for position, index in enumerate(order):
            if position >= self.policy.max_items or self.budget <= 0:
                cut = self._cut(f"[truncated {total - position} of {total} keys]")
                break
            raw_key, value = items[index]
            name = self._key(raw_key)
            self.budget -= len(name) + 4
            kept[index] = (name, self._item(name, value, depth))
        out = dict(kept[index] for index in sorted(kept))
        if cut is not None:
            out["…"] = cut
        return out

    def _item(self, name: str, value: Any, depth: int) -> Any:
        """The value stored under ``name``: redacted, kept as an identifier, or converted."""
        if self.redactor is not None and value is not None and self.redactor.is_secret_key(name):
            self.budget -= len(REDACTED)
            return REDACTED
        if self._keeps(name):
            return self._identifier(value, depth + 1, nested=True)
        return self.convert(value, depth + 1)

    def _keeps(self, name: str) -> bool:
        return not self.policy.capture_content and name in self.policy.keep_keys

    def _identifier(self, value: Any, depth: int, nested: bool) -> Any:
        """A ``keep_keys`` value: short strings (directly, or items of a list) stay text."""
        if isinstance(value, str):
            return self._string(str.__str__(value), keep=True)
        if isinstance(value, Enum) and isinstance(value.value, str):
            return self._string(value.value, keep=True)
        if isinstance(value, uuid.UUID):
            return self._string(str(value), keep=True)
        if nested and isinstance(value, (list, tuple)) and depth < self.policy.max_depth:
            return self._sequence(value, depth, keep=True)
        return self.convert(value, depth)

    def _sequence(self, obj: Any, depth: int, keep: bool = False) -> list[Any]:
        key = id(obj)
        if key in self._active:
            return [self._note("<cycle>")]
        self._active.add(key)
        try:
            items = list(obj)
            if isinstance(obj, (set, frozenset)):
                try:
                    items.sort()
                except TypeError:
                    pass
            total = len(items)
            out: list[Any] = []
            for index, value in enumerate(items):
                if index >= self.policy.max_items or self.budget <= 0:
                    out.append(self._cut(f"…[truncated {total - index} of {total} items]"))
                    break
                self.budget -= 1
                if keep:
                    out.append(self._identifier(value, depth + 1, nested=False))
                else:
                    out.append(self.convert(value, depth + 1))
            return out
        finally:
            self._active.discard(key)


_SMALL_STRING = 200


def _is_small(value: Any) -> bool:
    kind = type(value)
    return (
        value is None
        or kind is bool
        or kind is int
        or kind is float
        or (kind is str and len(value) <= _SMALL_STRING)
    )


class _Nothing:
    pass


NOTHING: Any = _Nothing()


def _exception_message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return _safe_repr(exc)


def duck_dump(obj: Any) -> Any:
    """A plain view of well-known object shapes, or ``NOTHING``.

    Array-likes (``dtype`` + ``tolist``, as numpy), pydantic models (``model_dump``, or ``dict``
    with ``__fields__``; LangChain messages and documents are such models) and dataclasses are
    recognised by their attributes, so no library needs to be imported.
    """
    cls = type(obj)
    if hasattr(cls, "dtype") or hasattr(obj, "dtype"):
        tolist = getattr(obj, "tolist", None)
        if callable(tolist):
            size = getattr(obj, "size", None)
            if isinstance(size, int) and size > 100_000:
                return f"<array shape={getattr(obj, 'shape', '?')} dtype={obj.dtype}>"
            return tolist()
    model_dump = getattr(cls, "model_dump", None)
    if callable(model_dump):
        return obj.model_dump()
    if hasattr(cls, "__fields__") and callable(getattr(cls, "dict", None)):
        return obj.dict()
    if dataclasses.is_dataclass(obj):
        return {field.name: getattr(obj, field.name, None) for field in dataclasses.fields(obj)}
    return NOTHING
