"""Parsing a request body as JSON the API can store: bounded depth, finite numbers, valid text.

The standard parser accepts what the rest of the server cannot handle (nesting deep enough to
exhaust the stack, `1e999` as infinity, lone UTF-16 surrogates that SQLite and the response
encoder reject), so each is refused here with a 400 in the API's error envelope.
"""

from __future__ import annotations

import json
import math
from typing import Any

from prefactor_local.errors import ApiError

MAX_DEPTH = 128  # object and array levels, the body's own envelope included


def parse_json_body(body: bytes | bytearray) -> Any:
    """The parsed body, or `ApiError(400, "invalid_json")` saying what is wrong with it."""
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise _invalid(f"nesting deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(str(exc)) from None
    _check_tree(value)
    return value


def _invalid(reason: str) -> ApiError:
    return ApiError(400, "invalid_json", f"Request body is not valid JSON: {reason}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:40]} is out of range")
    return number


def _check_tree(value: Any) -> None:
    """Depth and lone surrogates, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise _invalid(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise _invalid(f"lone surrogate \\u{code:04x} in a string") from None
