"""Checks of option values at the API boundary: known names (with the closest as a suggestion),
real booleans, bounded numbers, and boolean environment variables."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable

__all__ = ["check_bool", "check_int", "check_known_fields", "check_seconds", "env_bool"]


def check_known_fields(owner: str, given: Iterable[str], known: Iterable[str]) -> None:
    """`TypeError` naming the first of ``given`` not in ``known``, with a did-you-mean."""
    names = sorted(known)
    for name in given:
        if name in names:
            continue
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(names)}"
        raise TypeError(f"{owner} has no field {name!r}{hint}")


def check_bool(name: str, value: object) -> bool:
    """``value`` when it is a real bool; `TypeError` naming ``name`` otherwise (a string such as
    ``"false"`` is truthy, so it would silently mean the opposite)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` when it is an integer from ``low`` to ``high``; else `ValueError` saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_seconds(name: str, value: object, low: float, high: float) -> float:
    """``value`` when it is a number of seconds from ``low`` to ``high``; else `ValueError`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not low <= value <= high  # `not` refuses NaN too
    ):
        raise ValueError(
            f"{name} must be a number of seconds from {low:g} to {high:g}, got {value!r}"
        )
    return float(value)


_ENV_TRUE = frozenset({"1", "true", "yes", "on"})
_ENV_FALSE = frozenset({"0", "false", "no", "off"})


def env_bool(variable: str, default: bool) -> bool:
    """Environment variable ``variable`` as a bool: 1/true/yes/on or 0/false/no/off (any case),
    ``default`` when unset or empty; anything else raises `ValueError` naming the variable."""
    text = os.environ.get(variable, "").strip().lower()
    if not text:
        return default
    if text in _ENV_TRUE:
        return True
    if text in _ENV_FALSE:
        return False
    raise ValueError(
        f"environment variable {variable} must be 1, true, yes or on (or 0, false, no, off), "
        f"got {os.environ[variable]!r}"
    )
