"""Prefactor identifiers (PFIDs).

A PFID is 160 bits written as 32 lowercase Crockford base-32 characters: a 48-bit Unix time in
milliseconds, 2 zero bits, a 30-bit partition and 80 random bits. Ids made close together sort
by time, and ids sharing a partition can be kept together by the storage layer.
"""

from __future__ import annotations

import secrets
import time

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {char: value for value, char in enumerate(ALPHABET)}
PFID_LENGTH = 32
_PARTITION_BITS = 30
_RANDOM_BITS = 80
_TIME_BITS = 48


def new_pfid(partition: int | None = None, *, timestamp_ms: int | None = None) -> str:
    """Return a fresh PFID; `partition` (30 bits) defaults to a random one."""
    millis = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    if not 0 <= millis < 1 << _TIME_BITS:
        raise ValueError("timestamp out of range for a PFID")
    part = secrets.randbits(_PARTITION_BITS) if partition is None else partition
    if not 0 <= part < 1 << _PARTITION_BITS:
        raise ValueError("partition must fit in 30 bits")
    value = (millis << (2 + _PARTITION_BITS + _RANDOM_BITS)) | (part << _RANDOM_BITS)
    value |= secrets.randbits(_RANDOM_BITS)
    return _encode(value)


def is_pfid(text: str) -> bool:
    """Whether `text` is a well-formed PFID (length, alphabet and the two zero bits)."""
    if len(text) != PFID_LENGTH or any(char not in _DECODE for char in text):
        return False
    return (_decode(text) >> (_PARTITION_BITS + _RANDOM_BITS)) & 0b11 == 0


def pfid_partition(text: str) -> int | None:
    """The 30-bit partition of a PFID, or None when `text` is not a PFID."""
    if not is_pfid(text):
        return None
    return (_decode(text) >> _RANDOM_BITS) & ((1 << _PARTITION_BITS) - 1)


def pfid_timestamp_ms(text: str) -> int | None:
    """The creation time (Unix milliseconds) of a PFID, or None when `text` is not a PFID."""
    if not is_pfid(text):
        return None
    return _decode(text) >> (2 + _PARTITION_BITS + _RANDOM_BITS)


def _encode(value: int) -> str:
    chars = []
    for _ in range(PFID_LENGTH):
        chars.append(ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def _decode(text: str) -> int:
    value = 0
    for char in text:
        value = (value << 5) | _DECODE[char]
    return value
