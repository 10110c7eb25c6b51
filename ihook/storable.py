"""Text a database can store: no U+0000 and no unpaired surrogate.

PostgreSQL refuses both in ``text`` and ``jsonb`` (``\\u0000`` is an "unsupported Unicode
escape sequence"; a lone surrogate cannot be encoded as UTF-8), and SQLite's driver
cannot encode a lone surrogate either. JSON carries both (``"\\u0000"``, ``"\\ud800"``)
and URLs carry ``%00``, so input is checked where it comes in, and refused with the
place named, instead of failing in the database as a server error.
"""

from __future__ import annotations

import re
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REASON = "holds U+0000 or an unpaired surrogate, which cannot be stored"


def storable(text: str) -> bool:
    """Whether ``text`` can be stored as it is."""
    return UNSTORABLE.search(text) is None


def unstorable_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) in ``value`` that cannot be stored.

    ``""`` names ``value`` itself; None: every string in it can be stored.
    """
    if isinstance(value, str):
        return None if storable(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not storable(key):
                return inner
            found = unstorable_at(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = unstorable_at(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None
