"""Prefixed, sortable ids: ``evt_`` + 26 chars of Crockford base32 (ULID layout).

The first 10 characters encode milliseconds since the epoch, so ids sort by creation
time and index well; the last 16 are random.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"

PREFIXES = (
    "ep",
    "evt",
    "wf",
    "run",
    "sub",
    "dlv",
    "pol",
    "con",
    "tok",
    "rej",
    "cln",
    "poll",
    "job",
)
"""Known id prefixes, one per resource."""


def new_id(prefix: str, at: float | None = None) -> str:
    """A new id such as ``evt_01hf3k…``; sortable by creation time (``at``: epoch
    seconds, now by default)."""
    moment = time.time() if at is None else at
    value = (int(moment * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
