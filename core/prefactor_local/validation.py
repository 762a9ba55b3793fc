"""Reading typed fields out of request bodies while collecting every error at once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefactor_local.errors import validation_error
from prefactor_local.timeutil import format_ts, parse_ts

MAX_ID_LENGTH = 64
MAX_KEY_LENGTH = 64


class Errors:
    """Per-field messages, nested by path like the API's `errors` object."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: Iterable[str], message: str) -> None:
        """Record `message` for the field at `path`."""
        parts = list(path) or ["body"]
        node = self.tree
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        leaf = node.setdefault(parts[-1], [])
        if isinstance(leaf, list):
            leaf.append(message)

    def raise_if_any(self) -> None:
        """Raise a 422 ApiError when anything was recorded."""
        if self.tree:
            raise validation_error(self.tree)


class Fields:
    """Typed access to one JSON object; `null` counts as absent everywhere."""

    def __init__(
        self, data: Mapping[str, Any], errors: Errors | None = None, path: tuple[str, ...] = ()
    ) -> None:
        self.data = data
        self.errors = errors if errors is not None else Errors()
        self.path = path

    def _error(self, key: str, message: str) -> None:
        self.errors.add((*self.path, key), message)

    def present(self, key: str) -> bool:
        """Whether `key` is in the object with a non-null value."""
        return self.data.get(key) is not None

    def string(
        self, key: str, *, required: bool = False, max_length: int | None = None
    ) -> str | None:
        """A string field; empty strings are rejected."""
        value = self.data.get(key)
        if value is None:
            if required:
                self._error(key, "is required")
            return None
        if not isinstance(value, str):
            self._error(key, "must be a string")
            return None
        if value == "":
            self._error(key, "must not be empty")
            return None
        if max_length is not None and len(value) > max_length:
            self._error(key, f"must be at most {max_length} characters, got {len(value)}")
            return None
        return value

    def nullable_string(self, key: str) -> tuple[bool, str | None]:
        """(present, value) for fields where an explicit null clears the stored value."""
        if key not in self.data:
            return False, None
        value = self.data[key]
        if value is None:
            return True, None
        if not isinstance(value, str):
            self._error(key, "must be a string or null")
            return False, None
        return True, value

    def ident(self, key: str, *, required: bool = False) -> str | None:
        """An id: a non-empty string of at most 64 characters."""
        return self.string(key, required=required, max_length=MAX_ID_LENGTH)

    def idempotency_key(self, key: str = "idempotency_key") -> str | None:
        """An idempotency key: a non-empty string of at most 64 characters."""
        return self.string(key, max_length=MAX_KEY_LENGTH)

    def choice(self, key: str, choices: Iterable[str], *, required: bool = False) -> str | None:
        """A string restricted to `choices`."""
        allowed = tuple(choices)
        value = self.data.get(key)
        if value is None:
            if required:
                self._error(key, "is required")
            return None
        if not isinstance(value, str) or value not in allowed:
            self._error(key, f"must be one of: {', '.join(allowed)}")
            return None
        return value

    def obj(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        """A JSON object field."""
        value = self.data.get(key)
        if value is None:
            if required:
                self._error(key, "is required")
            return None
        if not isinstance(value, dict):
            self._error(key, "must be a JSON object")
            return None
        return value

    def nested(self, key: str, *, required: bool = True) -> Fields | None:
        """A sub-object read with the same error collector."""
        value = self.obj(key, required=required)
        if value is None:
            return None
        return Fields(value, self.errors, (*self.path, key))

    def timestamp(self, key: str) -> str | None:
        """An aware ISO-8601 timestamp, returned normalised to UTC."""
        value = self.data.get(key)
        if value is None:
            return None
        try:
            return format_ts(parse_ts(value))
        except ValueError as exc:
            self._error(key, str(exc))
            return None

    def boolean(self, key: str, default: bool) -> bool:
        """A boolean field with a default."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self._error(key, "must be a boolean")
            return default
        return value

    def raise_if_any(self) -> None:
        """Raise a 422 ApiError when any field failed."""
        self.errors.raise_if_any()


def require_object(body: Any) -> Fields:
    """Wrap a request body, answering 422 unless it is a JSON object."""
    if not isinstance(body, dict):
        raise validation_error({"body": ["must be a JSON object"]})
    return Fields(body)
