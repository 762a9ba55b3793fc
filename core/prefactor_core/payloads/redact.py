"""Built-in secret patterns and the string redaction they drive."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_PATTERNS",
    "Redactor",
]

DEFAULT_SECRET_PATTERNS: Mapping[str, str] = {
    # A URL's password: scheme://user:PASSWORD@host
    "url_password": r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:(?P<secret>[^\s@/]+)@",
    "bearer": r"(?i)\bbearer\s+(?P<secret>[a-z0-9._~+/\-]{8,}=*)",
    "api_key": r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",
    "slack_token": r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_\-]{35}",
    "jwt": r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
    "assignment": (
        r"(?i)\b(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?token|auth[_\-]?token|token)"
        r"\s*[=:]\s*[\"']?(?P<secret>[^\s\"'&,;]{3,})"
    ),
    "email": r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b",
}
"""Named regular expressions of secrets. A match is replaced by ``[REDACTED:<name>]``; when the
pattern has a group named ``secret`` only that group is replaced."""

DEFAULT_SECRET_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "secret_key",
        "api_key",
        "apikey",
        "x_api_key",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "token",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "private_key",
        "aws_secret_access_key",
    }
)
"""Mapping keys (compared lower-case, ``-`` read as ``_``) whose string values are replaced."""

_MIN_SECRET_LENGTH = 6
MAX_KEY_CHARS = 200  # longer mapping keys are cut
_REMEMBERED = 20_000  # verdicts kept per redactor
_REMEMBERED_CHARS = 200  # on strings up to this long


@lru_cache(maxsize=64)
def _compile(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((name, re.compile(pattern)) for name, pattern in items)


# Text each built-in pattern cannot match without (one of these substrings): a substring test is
# a hundred times cheaper than the regex, and most strings hold no secret at all.
# ``(case-insensitive, substrings)``; case-insensitive ones are checked against ASCII text only.
_NEEDS: Mapping[str, tuple[bool, tuple[str, ...]]] = {
    "url_password": (False, ("://",)),
    "bearer": (True, ("bearer",)),
    "api_key": (False, ("sk-", "pk-", "rk-")),
    "aws_access_key": (False, ("AKIA", "ASIA")),
    "github_token": (False, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    "slack_token": (False, ("xox",)),
    "google_api_key": (False, ("AIza",)),
    "jwt": (False, ("eyJ",)),
    "assignment": (True, ("pass", "pwd", "secret", "key", "token")),
    "email": (False, ("@",)),
}


def _needs(name: str, pattern: re.Pattern[str]) -> tuple[bool, tuple[str, ...]] | None:
    """The substring test of a built-in pattern (None for a pattern of the user's own)."""
    if DEFAULT_SECRET_PATTERNS.get(name) != pattern.pattern:
        return None
    return _NEEDS.get(name)


class Redactor:
    """Replaces secrets in strings, and the values of secret-named keys."""

    def __init__(self, patterns: Mapping[str, str], keys: frozenset[str]) -> None:
        self._patterns = tuple(
            (name, pattern, _needs(name, pattern), _GroupReplacer(name))
            for name, pattern in _compile(tuple(patterns.items()))
        )
        self._keys = keys
        # Short strings and keys known to need nothing: they repeat from payload to payload
        # (names, models, roles, ids), and the quick path of `prepare_json` asks about every
        # one of them.
        self.clean: set[str] = set()
        self.plain_keys: set[str] = set()

    def is_clean(self, text: str) -> bool:
        """Whether `redact` leaves ``text`` as it is."""
        if text in self.clean:
            return True
        if self.redact(text) != text:
            return False
        if len(text) <= _REMEMBERED_CHARS:
            if len(self.clean) >= _REMEMBERED:
                self.clean.clear()
            self.clean.add(text)
        return True

    def plain_key(self, key: str) -> bool:
        """Whether ``key`` is neither a secret name nor too long to keep as it is."""
        if key in self.plain_keys:
            return True
        if len(key) > MAX_KEY_CHARS or self.is_secret_key(key):
            return False
        if len(self.plain_keys) >= _REMEMBERED:
            self.plain_keys.clear()
        self.plain_keys.add(key)
        return True

    def is_secret_key(self, key: str) -> bool:
        """Whether values stored under ``key`` are secrets."""
        return key.lower().replace("-", "_") in self._keys

    def redact(self, text: str) -> str:
        """``text`` with every secret pattern replaced."""
        if len(text) < _MIN_SECRET_LENGTH:
            return text
        ascii_lower = text.lower() if text.isascii() else None
        for name, pattern, needs, replacer in self._patterns:
            if needs is not None:
                any_case, parts = needs
                haystack = ascii_lower if any_case else text
                if haystack is not None:
                    for part in parts:
                        if part in haystack:
                            break
                    else:
                        continue
            if pattern.groupindex.get("secret"):
                text = pattern.sub(replacer, text)
            else:
                text = pattern.sub(f"[REDACTED:{name}]", text)
            if ascii_lower is not None:
                ascii_lower = text.lower()
        return text


class _GroupReplacer:
    def __init__(self, name: str) -> None:
        self._label = f"[REDACTED:{name}]"

    def __call__(self, match: re.Match[str]) -> str:
        whole = match.group(0)
        start, end = match.span("secret")
        offset = match.start()
        return whole[: start - offset] + self._label + whole[end - offset :]
