"""`PayloadPolicy`: what is captured from span payloads, how much, and what is hidden."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefactor_core.payloads.redact import DEFAULT_SECRET_KEYS, DEFAULT_SECRET_PATTERNS

__all__ = ["DEFAULT_MAX_FIELD_CHARS", "DEFAULT_MAX_PAYLOAD_BYTES", "PayloadPolicy"]

DEFAULT_MAX_FIELD_CHARS = 10_000
DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024


@dataclass(frozen=True, eq=False)
class PayloadPolicy:
    """How span payloads are prepared before they leave the process.

    - ``capture_content``: when False, strings and bytes are replaced by their size
      (``"[123 chars]"``); keys, nesting, numbers and booleans are kept.
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

    def __post_init__(self) -> None:
        for name in ("max_field_chars", "max_payload_bytes", "max_depth", "max_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.mask is not None and not callable(self.mask):
            raise TypeError("mask must be callable")
