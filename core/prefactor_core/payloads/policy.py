"""`PayloadPolicy`: what is captured from span payloads, how much, and what is hidden."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from prefactor_core.fields import check_bool
from prefactor_core.payloads.redact import DEFAULT_SECRET_KEYS, DEFAULT_SECRET_PATTERNS, Redactor

__all__ = [
    "DEFAULT_KEEP_KEYS",
    "DEFAULT_MAX_FIELD_CHARS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_KEPT_CHARS",
    "PayloadPolicy",
]

DEFAULT_MAX_FIELD_CHARS = 10_000
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024
MAX_KEPT_CHARS = 200
"""Longest value of a ``keep_keys`` field still sent as text when content is not captured."""

DEFAULT_KEEP_KEYS: frozenset[str] = frozenset(
    {
        # what ran
        "name",
        "tool_name",
        "tools",
        "agent_name",
        "model",
        "model_name",
        "response_model",
        "provider",
        "operation",
        "kind",
        "type",
        "role",
        "class",
        "step",
        "schema_name",
        # ids
        "id",
        "ids",
        "run_id",
        "parent_run_id",
        "thread_id",
        "node_id",
        "tool_call_id",
        "span_id",
        "instance_id",
        # outcome
        "status",
        "finish_reason",
        "error_type",
        "timestamp",
    }
)
"""Keys whose short string values name or identify things rather than hold user content, in
any framework; each adapter adds its own framework's names (``AdapterSetup.resolve``)."""


def _check_patterns(patterns: object) -> None:
    """Compile the user's ``secret_patterns`` now, so a bad one fails here, not on every span."""
    if not isinstance(patterns, Mapping):
        raise TypeError("secret_patterns must map names to regular expressions (strings)")
    for name, pattern in patterns.items():
        if not isinstance(name, str) or not isinstance(pattern, str):
            raise TypeError(
                f"secret_patterns must map names to regular expressions (strings), "
                f"got {name!r}: {pattern!r}"
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"secret_patterns[{name!r}] is not a valid regular expression ({exc}): {pattern!r}"
            ) from None


@dataclass(frozen=True, eq=False)
class PayloadPolicy:
    """How span payloads are prepared before they leave the process.

    - ``capture_content``: when False, strings and bytes are replaced by their size
      (``"[123 chars]"``); keys, nesting, numbers and booleans are kept, and so are the string
      values (up to ``MAX_KEPT_CHARS`` long) of ``keep_keys``, alone or in a list.
    - ``keep_keys``: field names whose values are identifiers (names, models, roles, ids,
      statuses), kept as text when ``capture_content`` is False. Matched exactly, at any depth.
    - ``mask``: called with each prepared payload (a JSON-safe dict) in the export thread; its
      return value is sent instead. If it raises, the payload is withheld.
    - ``max_field_chars``: longest string kept; longer ones end with
      ``"…[truncated <original length> chars]"``.
    - ``max_payload_bytes``: cap on one payload's JSON size; what does not fit is cut with a
      marker giving the original size.
    - ``redact_secrets``: apply ``secret_patterns`` to every string and replace the values of
      ``secret_keys``.
    - ``max_depth`` / ``max_items``: nesting depth and items per container that are kept.
    """

    capture_content: bool = True
    mask: Callable[[Any], Any] | None = None
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    redact_secrets: bool = True
    secret_patterns: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_SECRET_PATTERNS)
    )
    secret_keys: frozenset[str] = DEFAULT_SECRET_KEYS
    max_depth: int = 32
    max_items: int = 1_000
    keep_keys: frozenset[str] = DEFAULT_KEEP_KEYS

    def __post_init__(self) -> None:
        keep = self.keep_keys
        if isinstance(keep, str) or not all(isinstance(key, str) for key in keep):
            raise TypeError("keep_keys must be a collection of strings")
        if not isinstance(keep, frozenset):
            object.__setattr__(self, "keep_keys", frozenset(keep))
        for name in ("max_field_chars", "max_payload_bytes", "max_depth", "max_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mask is not None and not callable(self.mask):
            raise TypeError("mask must be callable")
        for name in ("capture_content", "redact_secrets"):
            check_bool(name, getattr(self, name))
        _check_patterns(self.secret_patterns)

    @cached_property
    def _redactor(self) -> Redactor | None:
        """The redactor of ``secret_patterns`` and ``secret_keys`` (None when
        ``redact_secrets`` is off), built once per policy: payloads are many, policies few."""
        if not self.redact_secrets:
            return None
        return Redactor(self.secret_patterns, self.secret_keys)
