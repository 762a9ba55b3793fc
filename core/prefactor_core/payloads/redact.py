"""Built-in secret patterns and the string redaction they drive."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

__all__ = [
    "DEFAULT_SECRET_KEYS",
    "DEFAULT_SECRET_PATTERNS",
    "Redactor",
    "key_parts",
    "scrub_token",
]

# The formats follow the rule catalogue of gitleaks (its list of providers and token shapes);
# the expressions are our own. ``(name, expression, case-insensitive triggers, exact triggers)``:
# a pattern runs only on text holding one of its triggers (lower-case ones are looked for in the
# lower-cased text), a substring test far cheaper than the expression.
_BUILT_IN: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "private_key",
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
        (),
        ("PRIVATE KEY",),
    ),
    # scheme://user:PASSWORD@host, the user possibly empty and the password holding "@"
    (
        "url_password",
        r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:(?P<secret>[^\s/?#]+)@(?=[^\s@/?#]*(?:[/?#\s\"'<>,;)\]]|$))",
        (),
        ("://",),
    ),
    ("bearer", r"(?i)\bbearer\s+(?P<secret>[a-z0-9._~+/\-]{8,}=*)", ("bearer",), ()),
    (
        "basic_auth",
        r"(?i)\bbasic\s+(?P<secret>(?=[a-z0-9+/]*[0-9+/=])[a-z0-9+/]{8,}={0,2})",
        ("basic",),
        (),
    ),
    ("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", (), ("_live_", "_test_")),
    ("api_key", r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}", (), ("sk-", "pk-", "rk-")),
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",
        (),
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA"),
    ),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})",
        (),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    (
        "gitlab_token",
        r"\bgl(?:pat|dt|rt|ptt|cbt|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,}",
        (),
        ("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "glsoat-", "glft-", "glimt-", "glagent-"),
    ),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}", (), ("hf_",)),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b", (), ("npm_",)),
    ("pypi_token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}", (), ("pypi-",)),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_\-]{20,24}\.[A-Za-z0-9_\-]{40,46}", (), ("SG.",)),
    ("slack_token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}", (), ("xox",)),
    (
        "slack_webhook",
        r"(?i)https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{20,}",
        ("hooks.slack.com",),
        (),
    ),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}", (), ("AIza",)),
    ("twilio_key", r"\bSK[0-9a-fA-F]{32}\b", (), ("SK",)),
    ("telegram_bot_token", r"\b\d{8,10}:AA[A-Za-z0-9_\-]{33}\b", (), (":AA",)),
    ("shopify_token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b", (), ("shp",)),
    ("digitalocean_token", r"\bdo[opr]_v1_[a-f0-9]{64}\b", (), ("_v1_",)),
    ("databricks_token", r"\bdapi[a-f0-9]{32}(?:-\d)?\b", (), ("dapi",)),
    ("square_token", r"\b(?:EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_\-]{22,60}", (), ("EAAA", "sq0")),
    ("linear_key", r"\blin_api_[A-Za-z0-9]{40}\b", (), ("lin_api_",)),
    ("age_secret_key", r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b", (), ("AGE-SECRET-KEY-",)),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", (), ("eyJ",)),
    # NAME=value, NAME: value and "name": "value" for any name ending in a secret word
    # (DB_PASSWORD=..., AWS_SECRET_ACCESS_KEY=..., AccountKey=..., {"password": "..."}).
    (
        "assignment",
        r"(?i)(?:password|passwd|pwd|passphrase|secret|api[_\-]?key|access[_\-]?key"
        r"|account[_\-]?key|private[_\-]?key|secret[_\-]?key|token|credentials?|auth)"
        r"[\"']?\s*[=:]\s*[\"']?(?P<secret>[^\s\"'&,;]{3,})",
        ("pass", "pwd", "secret", "key", "token", "credential", "auth"),
        (),
    ),
    ("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", (), ("@",)),
)

DEFAULT_SECRET_PATTERNS: Mapping[str, str] = {name: rx for name, rx, _, _ in _BUILT_IN}
"""Named regular expressions of secrets. A match is replaced by ``[REDACTED:<name>]``; when the
pattern has a group named ``secret`` only that group is replaced."""

DEFAULT_SECRET_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secret_key",
        "api_key",
        "apikey",
        "access_key",
        "account_key",
        "token",
        "auth",
        "authorization",
        "cookie",
        "private_key",
        "credential",
        "credentials",
    }
)
"""Mapping key names whose values are replaced. A key matches when its last name parts (split at
``_``, ``-``, ``.``, spaces and camelCase, compared lower-case) are those of one of these:
``db_password``, ``OPENAI_API_KEY``, ``secretKey``, ``session_token`` and ``X-Auth`` match;
``token_count`` and ``keyboard`` do not."""

_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def key_parts(key: str) -> tuple[str, ...]:
    """``key``'s name parts, lower-case: ``"OpenAI-apiKey"`` gives ``("open", "ai", "api",
    "key")``."""
    return tuple(part.lower() for part in _PARTS.findall(key))


_MIN_SECRET_LENGTH = 6
MAX_KEY_CHARS = 200  # longer mapping keys are cut
_REMEMBERED = 20_000  # verdicts kept per redactor
_REMEMBERED_CHARS = 200  # on strings up to this long


@lru_cache(maxsize=64)
def _compile(items: tuple[tuple[str, str], ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((name, re.compile(pattern)) for name, pattern in items)


_TRIGGERS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    name: (lower, exact) for name, _, lower, exact in _BUILT_IN
}


@lru_cache(maxsize=256)
def _combined(names: tuple[str, ...]) -> re.Pattern[str]:
    """One expression for the built-in patterns ``names``: group ``n<i>`` is pattern ``i``'s
    whole match and ``s<i>`` its secret part."""
    parts = []
    for index, name in enumerate(names):
        body = DEFAULT_SECRET_PATTERNS[name]
        flags = "(?i:" if body.startswith("(?i)") else "(?:"
        body = body.removeprefix("(?i)").replace("(?P<secret>", f"(?P<s{index}>")
        parts.append(f"(?P<n{index}>{flags}{body}))")
    return re.compile("|".join(parts))


class Redactor:
    """Replaces secrets in strings, and the values of secret-named keys."""

    def __init__(self, patterns: Mapping[str, str], keys: frozenset[str]) -> None:
        # Built-in patterns (unchanged by the user) run as one expression over the text, after
        # a substring test picks the ones that can match; the user's own run one by one.
        self._built_in: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []
        own: dict[str, str] = {}
        for name, pattern in patterns.items():
            if DEFAULT_SECRET_PATTERNS.get(name) == pattern:
                self._built_in.append((name, *_TRIGGERS[name]))
            else:
                own[name] = pattern
        # Each trigger with the patterns it lets run; triggers holding a punctuation mark are
        # grouped under it, so text without that mark costs one substring test per group.
        exact_table: dict[str, dict[str, list[str]]] = {}
        lower_table: dict[str, dict[str, list[str]]] = {}
        for name, lower_parts, exact_parts in self._built_in:
            for table, parts in ((lower_table, lower_parts), (exact_table, exact_parts)):
                for part in parts:
                    gate = next((c for c in part if c in _GATES), "")
                    table.setdefault(gate, {}).setdefault(part, []).append(name)
        self._exact_of = _grouped(exact_table)
        self._lower_of = _grouped(lower_table)
        self._order = {name: index for index, (name, _, _) in enumerate(self._built_in)}
        self._always = tuple(name for name, low, exact in self._built_in if not (low or exact))
        self._patterns = tuple(
            (name, pattern, _GroupReplacer(name)) for name, pattern in _compile(tuple(own.items()))
        )
        self._keys = keys
        wanted = {key_parts(key) for key in keys if key_parts(key)}
        self._key_parts = frozenset(wanted)
        self._key_lengths = tuple(sorted({len(parts) for parts in wanted}))
        self._key_verdicts: dict[str, bool] = {}
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
        """Whether values stored under ``key`` are secrets (see `DEFAULT_SECRET_KEYS`)."""
        verdict = self._key_verdicts.get(key)
        if verdict is None:
            verdict = key.lower().replace("-", "_") in self._keys
            if not verdict:
                parts = key_parts(key)
                wanted = self._key_parts
                verdict = any(parts[-length:] in wanted for length in self._key_lengths)
            if len(key) <= MAX_KEY_CHARS:
                if len(self._key_verdicts) >= _REMEMBERED:
                    self._key_verdicts.clear()
                self._key_verdicts[key] = verdict
        return verdict

    def redact(self, text: str) -> str:
        """``text`` with every secret pattern replaced."""
        if len(text) < _MIN_SECRET_LENGTH:
            return text
        if self._built_in:
            text = self._built_in_pass(text)
        for name, pattern, replacer in self._patterns:
            if pattern.groupindex.get("secret"):
                text = pattern.sub(replacer, text)
            else:
                text = pattern.sub(f"[REDACTED:{name}]", text)
        return text

    def _built_in_pass(self, text: str) -> str:
        names: set[str] = set(self._always)
        _pick(self._exact_of, text, names)
        if self._lower_of:
            if text.isascii():
                _pick(self._lower_of, text.lower(), names)
            else:
                # Elsewhere a letter such as the long s (U+017F) matches "s" under the
                # patterns' IGNORECASE but not under `lower`: every such pattern runs.
                for _, group in self._lower_of:
                    for _, owners in group:
                        names.update(owners)
        if "assignment" in names and "=" not in text and ":" not in text:
            names.discard("assignment")  # NAME=value or NAME: value, nothing else
        if not names:
            return text
        chosen = tuple(sorted(names, key=self._order.__getitem__))
        return _combined(chosen).sub(_CombinedReplacer.of(chosen), text)


_GATES = "_-.:@"
_Groups = tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...]


def _grouped(table: Mapping[str, Mapping[str, list[str]]]) -> _Groups:
    return tuple(
        (gate, tuple((part, tuple(owners)) for part, owners in parts.items()))
        for gate, parts in table.items()
    )


def _pick(groups: _Groups, text: str, names: set[str]) -> None:
    """Add to ``names`` the patterns whose triggers ``text`` holds."""
    for gate, group in groups:
        if gate and gate not in text:
            continue
        for part, owners in group:
            if part in text:
                names.update(owners)


TOKEN_LABEL = b"[REDACTED:api_token]"


def scrub_token(data: bytes | None, token: bytes) -> bytes | None:
    """Prepared JSON ``data`` with every copy of the client's API ``token`` replaced, whatever
    the payload policy (one substring search when it holds none)."""
    if data is None or not token or token not in data:
        return data
    return data.replace(token, TOKEN_LABEL)


class _CombinedReplacer:
    """The replacement of a match of `_combined`: the secret part, or the whole, labelled."""

    _made: dict[tuple[str, ...], _CombinedReplacer] = {}

    def __init__(self, names: tuple[str, ...]) -> None:
        self._labels = [f"[REDACTED:{name}]" for name in names]

    @classmethod
    def of(cls, names: tuple[str, ...]) -> _CombinedReplacer:
        replacer = cls._made.get(names)
        if replacer is None:
            if len(cls._made) > 256:
                cls._made.clear()
            replacer = cls._made[names] = cls(names)
        return replacer

    def __call__(self, match: re.Match[str]) -> str:
        index = int(match.lastgroup[1:]) if match.lastgroup else 0
        label = self._labels[index]
        whole = match.group(0)
        if f"s{index}" not in match.re.groupindex or match.start(f"s{index}") < 0:
            return label
        start, end = match.span(f"s{index}")
        offset = match.start()
        return whole[: start - offset] + label + whole[end - offset :]


class _GroupReplacer:
    def __init__(self, name: str) -> None:
        self._label = f"[REDACTED:{name}]"

    def __call__(self, match: re.Match[str]) -> str:
        whole = match.group(0)
        start, end = match.span("secret")
        offset = match.start()
        return whole[: start - offset] + self._label + whole[end - offset :]
