"""Prefactor identifiers (PFIDs), made on the client.

A PFID is 160 bits written as 32 lowercase Crockford base-32 characters: a 48-bit Unix time in
milliseconds, 2 zero bits, a 30-bit partition and 80 random bits. Spans take the partition of
their instance so the server can keep them together.

The three fields fall on character boundaries (10, 6 and 16 characters), so an id is put
together from text rather than encoded bit by bit: the time characters change once per
millisecond and are kept, the partition characters of a span are its instance's, and the 80
"random" bits are a 20-bit counter followed by 60 bits drawn once per process (its *block*).
Ids of one process differ by time or counter, ids of two processes by their blocks. A forked
child draws a block of its own, so parent and child never share ids; the block is also what
lets `issued_here` tell an id this process made (or its parent, before the fork) from any other
id without remembering every id ever issued.

Making an id takes no lock: the counter is an `itertools.count`, whose step is atomic in
CPython, and the kept time characters are replaced as one tuple.
"""

from __future__ import annotations

import itertools
import os
import random
import time

__all__ = [
    "PFID_LENGTH",
    "is_pfid",
    "issued_here",
    "new_pfid",
    "pfid_partition",
    "pfid_partition_text",
    "random_partition_text",
    "related_pfid",
]

PFID_LENGTH = 32
_PARTITION_BITS = 30
_PARTITION_MASK = (1 << _PARTITION_BITS) - 1
_TIME_LIMIT = 1 << 48
_COUNTER_BITS = 20
_BLOCK_BITS = 60

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {char: value for value, char in enumerate(_ALPHABET)}
# Two characters (10 bits) per lookup.
_PAIRS = tuple(_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024))

_time_ns = time.time_ns
# Seeded from the OS and reseeded in a forked child.
_rng = random.Random(os.urandom(32))
_counter = itertools.count(_rng.getrandbits(_COUNTER_BITS))


def _encode(value: int, chars: int) -> str:
    """``value`` as ``chars`` (even) base-32 characters."""
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in range(chars * 5 - 10, -1, -10)])


def _new_block() -> str:
    return _encode(_rng.getrandbits(_BLOCK_BITS), 12)


_block = _new_block()
_blocks = frozenset({_block})  # this process's block and those of the processes it forked from
_last_time: tuple[int, str] = (-1, "")


def _reseed_after_fork() -> None:
    global _block, _blocks
    _rng.seed(os.urandom(32))
    _block = _new_block()
    _blocks = _blocks | {_block}


os.register_at_fork(after_in_child=_reseed_after_fork)


def _time_text(millis: int) -> str:
    """The 10 characters of a time (48 bits) and the two zero bits."""
    global _last_time
    last = _last_time
    if last[0] == millis:
        return last[1]
    text = _encode(millis << 2, 10)
    _last_time = (millis, text)
    return text


def pfid_partition_text(partition: int) -> str:
    """The 6 characters of a 30-bit partition."""
    if not 0 <= partition <= _PARTITION_MASK:
        raise ValueError("partition must fit in 30 bits")
    return _PAIRS[partition >> 20] + _PAIRS[(partition >> 10) & 1023] + _PAIRS[partition & 1023]


def _unique_text() -> str:
    """The 16 characters of the 80 bits that make an id unique: counter, then block."""
    count = next(_counter)
    return _PAIRS[(count >> 10) & 1023] + _PAIRS[count & 1023] + _block


def new_pfid(partition: int | None = None, *, timestamp_ms: int | None = None) -> str:
    """A fresh PFID; ``partition`` (30 bits) defaults to a random one."""
    millis = _time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    if not 0 <= millis < _TIME_LIMIT:
        raise ValueError("timestamp out of range for a PFID")
    if partition is None:
        partition = _rng.getrandbits(_PARTITION_BITS)
    return _time_text(millis) + pfid_partition_text(partition) + _unique_text()


def related_pfid(partition_text: str) -> str:
    """A fresh PFID in the partition whose 6 characters are ``partition_text`` (see
    `pfid_partition_text`; a PFID's are ``text[10:16]``). The caller vouches for them."""
    return _time_text(_time_ns() // 1_000_000) + partition_text + _unique_text()


def is_pfid(text: object) -> bool:
    """Whether ``text`` is a well-formed PFID (length, alphabet and the two zero bits)."""
    return (
        isinstance(text, str)
        and len(text) == PFID_LENGTH
        and not text.strip(_ALPHABET)
        and not _DECODE[text[9]] & 0b11
    )


def pfid_partition(text: str) -> int | None:
    """The 30-bit partition of a PFID, or None when ``text`` is not one."""
    if not is_pfid(text):
        return None
    value = 0
    for char in text[10:16]:
        value = (value << 5) | _DECODE[char]
    return value


def issued_here(text: str) -> bool:
    """Whether ``text`` is a PFID made by `new_pfid` in this process (or before a fork)."""
    return is_pfid(text) and text[20:] in _blocks


def random_partition_text() -> str:
    """The 6 characters of a random partition."""
    return pfid_partition_text(_rng.getrandbits(_PARTITION_BITS))
