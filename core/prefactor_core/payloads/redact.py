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


@lru_cache(maxsize=64)
def _compile(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((name, re.compile(pattern)) for name, pattern in items)


class Redactor:
    """Replaces secrets in strings, and the values of secret-named keys."""

    def __init__(self, patterns: Mapping[str, str], keys: frozenset[str]) -> None:
        self._patterns = _compile(tuple(patterns.items()))
        self._keys = keys

    def is_secret_key(self, key: str) -> bool:
        """Whether values stored under ``key`` are secrets."""
        return key.lower().replace("-", "_") in self._keys

    def redact(self, text: str) -> str:
        """``text`` with every secret pattern replaced."""
        if len(text) < _MIN_SECRET_LENGTH:
            return text
        for name, pattern in self._patterns:
            if pattern.groupindex.get("secret"):
                text = pattern.sub(_group_replacer(name), text)
            else:
                text = pattern.sub(f"[REDACTED:{name}]", text)
        return text


def _group_replacer(name: str) -> _GroupReplacer:
    return _GroupReplacer(name)


class _GroupReplacer:
    def __init__(self, name: str) -> None:
        self._label = f"[REDACTED:{name}]"

    def __call__(self, match: re.Match[str]) -> str:
        whole = match.group(0)
        start, end = match.span("secret")
        offset = match.start()
        return whole[: start - offset] + self._label + whole[end - offset :]
