"""The ``records`` connector: keyed JSON documents in the platform's record store.

The platform owns the storage and hands it in as a ``RecordStore``; this module holds the
rules (collection names, keys, write modes) so every caller applies them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from connectors.errors import RecordError

WRITE_MODES = ("insert", "update", "upsert")
"""insert refuses an existing key, update a missing one, upsert takes either."""

MAX_KEY_LENGTH = 255
"""Longest record key accepted."""

KEY_SEPARATOR = ":"
"""Joins the values of a compound key."""

_COLLECTION = re.compile(r"^[a-z0-9_.-]{1,64}$")


class RecordStore(Protocol):
    """Where records live; implemented by the platform over its database."""

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The record's data, or None."""

    def write(self, collection: str, key: str, data: dict[str, Any], *, mode: str) -> str:
        """Write by ``mode``; return "created", "updated" or "unchanged"; RecordError if refused."""

    def delete(self, collection: str, key: str) -> bool:
        """Delete; return whether the record existed."""

    def page(self, collection: str, after: str | None, limit: int) -> list[tuple[str, Any]]:
        """Up to ``limit`` ``(key, data)`` pairs in key order, after the key ``after``."""


def check_collection(collection: str) -> str:
    """Return ``collection`` or raise RecordError when the name is not allowed."""
    if not isinstance(collection, str) or not _COLLECTION.match(collection):
        raise RecordError(
            f"bad collection name {collection!r}: use 1-64 of a-z, 0-9, '_', '.', '-'"
        )
    return collection


def check_key(key: str) -> str:
    """Return ``key`` or raise RecordError when it is empty or too long."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise RecordError(f"record key must be 1-{MAX_KEY_LENGTH} characters, got {key!r}")
    return key


def make_key(key_spec: str | Sequence[str], data: Mapping[str, Any]) -> str:
    """The key of ``data``: the values of the ``key_spec`` fields joined with ':'."""
    names = [key_spec] if isinstance(key_spec, str) else list(key_spec)
    if not names:
        raise RecordError("key must name at least one field")
    if not isinstance(data, Mapping):
        raise RecordError(f"record data must be an object to take a key from, got {data!r:.80}")
    parts = []
    for name in names:
        value = data.get(name)
        if value is None:
            raise RecordError(f"key field {name!r} is missing or null")
        if isinstance(value, Mapping | list):
            raise RecordError(f"key field {name!r} must be a scalar, got {type(value).__name__}")
        parts.append(str(value))
    return check_key(KEY_SEPARATOR.join(parts))


class RecordsConnector:
    """Reads and writes records through the injected store.

    Not in the connector registry: it has no config, only the platform's store.
    """

    kind = "records"

    def __init__(self, store: RecordStore):
        self.store = store

    make_key = staticmethod(make_key)

    def write(
        self, collection: str, key: str, data: Mapping[str, Any], mode: str = "upsert"
    ) -> dict[str, Any]:
        """Write ``data`` under ``key``; return collection, key, action and data."""
        if mode not in WRITE_MODES:
            raise RecordError(f"unknown write mode {mode!r} (use {', '.join(WRITE_MODES)})")
        if not isinstance(data, Mapping):
            raise RecordError(f"record data must be an object, got {type(data).__name__}")
        check_collection(collection)
        check_key(key)
        action = self.store.write(collection, key, dict(data), mode=mode)
        return {"collection": collection, "key": key, "action": action, "data": dict(data)}

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The record's data, or None."""
        return self.store.get(check_collection(collection), check_key(key))

    def delete(self, collection: str, key: str) -> bool:
        """Delete the record; return whether it existed."""
        return self.store.delete(check_collection(collection), check_key(key))

    def page(
        self, collection: str, after: str | None = None, limit: int = 500
    ) -> list[tuple[str, Any]]:
        """Up to ``limit`` ``(key, data)`` pairs in key order, after the key ``after``."""
        return self.store.page(check_collection(collection), after, limit)

    def close(self) -> None:
        """Nothing to release: the platform owns the store."""
