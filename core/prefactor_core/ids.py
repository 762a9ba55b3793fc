"""Prefactor identifiers (PFIDs), made on the client.

A PFID is 160 bits written as 32 lowercase Crockford base-32 characters: a 48-bit Unix time in
milliseconds, 2 zero bits, a 30-bit partition and 80 random bits. Spans take the partition of
their instance so the server can keep them together.

The last 24 of the 80 random bits of an id made here are a keyed digest of the rest, with a key
drawn once per process. That lets `issued_here` tell an id this process made from any other id
without remembering every id ever issued.
"""

from __future__ import annotations

import hashlib
import os
import random
import time

__all__ = ["PFID_LENGTH", "is_pfid", "issued_here", "new_pfid", "pfid_partition"]

PFID_LENGTH = 32
_PARTITION_BITS = 30
_RANDOM_BITS = 80
_TAG_BITS = 24
_FREE_BITS = _RANDOM_BITS - _TAG_BITS
_PARTITION_MASK = (1 << _PARTITION_BITS) - 1
_TAG_MASK = (1 << _TAG_BITS) - 1

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {char: value for value, char in enumerate(_ALPHABET)}
# Two characters (10 bits) per lookup: encoding is on the hot path.
_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]
_SHIFTS = tuple(range(150, -1, -10))

_KEY = os.urandom(16)
# Seeded from the OS and reseeded in a forked child, so parent and child never share ids.
_rng = random.Random(os.urandom(32))


def _reseed_after_fork() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed_after_fork)


def _tag(head: int) -> int:
    digest = hashlib.blake2b(head.to_bytes(17, "big"), key=_KEY, digest_size=3).digest()
    return int.from_bytes(digest, "big")


def _encode(value: int) -> str:
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def _decode(text: str) -> int | None:
    if len(text) != PFID_LENGTH:
        return None
    value = 0
    try:
        for char in text:
            value = (value << 5) | _DECODE[char]
    except KeyError:
        return None
    return value


def new_pfid(partition: int | None = None, *, timestamp_ms: int | None = None) -> str:
    """A fresh PFID; ``partition`` (30 bits) defaults to a random one."""
    millis = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    if not 0 <= millis < 1 << 48:
        raise ValueError("timestamp out of range for a PFID")
    if partition is None:
        partition = _rng.getrandbits(_PARTITION_BITS)
    elif not 0 <= partition <= _PARTITION_MASK:
        raise ValueError("partition must fit in 30 bits")
    head = (millis << (2 + _PARTITION_BITS + _FREE_BITS)) | (partition << _FREE_BITS)
    head |= _rng.getrandbits(_FREE_BITS)
    return _encode((head << _TAG_BITS) | _tag(head))


def is_pfid(text: object) -> bool:
    """Whether ``text`` is a well-formed PFID (length, alphabet and the two zero bits)."""
    if not isinstance(text, str):
        return False
    value = _decode(text)
    return value is not None and (value >> (_PARTITION_BITS + _RANDOM_BITS)) & 0b11 == 0


def pfid_partition(text: str) -> int | None:
    """The 30-bit partition of a PFID, or None when ``text`` is not one."""
    value = _decode(text) if is_pfid(text) else None
    return None if value is None else (value >> _RANDOM_BITS) & _PARTITION_MASK


def issued_here(text: str) -> bool:
    """Whether ``text`` is a PFID made by `new_pfid` in this process (or before a fork)."""
    value = _decode(text) if is_pfid(text) else None
    return value is not None and value & _TAG_MASK == _tag(value >> _TAG_BITS)
