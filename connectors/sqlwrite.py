"""Writing ``sql`` rows by key inside a transaction the caller holds.

Rows reach here already converted for their columns (``to_db``) and split into ``keys``
(the key columns' values) and ``row`` (every column written, keys included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from connectors.errors import RecordError
from connectors.sqlengine import unique_sets
from connectors.sqlvalues import to_json_value
from connectors.sqlwhere import conditions

ACTIONS = ("created", "updated", "unchanged", "deleted")
"""What writing one row did."""

KEYS_PER_SELECT = 500
"""Keys looked up per query when a chunk's existing rows are read."""

_NATIVE_UPSERT: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}

Keyed = tuple[dict[str, Any], dict[str, Any]]
"""A row to write: its key columns' values and all its columns' values."""


def native_upsert(conn: Connection, table: sa.Table, key_names: Sequence[str]) -> bool:
    """Whether the database can upsert on ``key_names`` (ON CONFLICT needs a unique index)."""
    return conn.dialect.name in _NATIVE_UPSERT and frozenset(key_names) in unique_sets(table)


def write_row(
    conn: Connection, t: sa.Table, keys: dict[str, Any], row: dict[str, Any], mode: str
) -> str:
    """Write one row in ``mode``; return the action taken."""
    if mode == "upsert":
        return upsert(conn, t, keys, row)
    if mode == "delete":
        deleted = conn.execute(sa.delete(t).where(*conditions(t, keys))).rowcount
        return "deleted" if deleted else "unchanged"
    return insert_or_update(conn, t, keys, row, mode)


def insert_or_update(
    conn: Connection, t: sa.Table, keys: dict[str, Any], row: dict[str, Any], mode: str
) -> str:
    """Select the row under a lock, then insert or update it as ``mode`` allows."""
    old = _existing(conn, t, keys, lock=True)
    if mode == "insert":
        if old is not None:
            raise RecordError(f"a row with key {keys!r} already exists in {t.name!r}")
        conn.execute(sa.insert(t).values(row))
        return "created"
    if old is None:
        if mode == "update":
            raise RecordError(f"no row with key {keys!r} in {t.name!r}")
        conn.execute(sa.insert(t).values(row))
        return "created"
    if _same(old, row):
        return "unchanged"
    conn.execute(sa.update(t).where(*conditions(t, keys)).values(row))
    return "updated"


def upsert(conn: Connection, t: sa.Table, keys: dict[str, Any], row: dict[str, Any]) -> str:
    """Insert or update one row: ON CONFLICT where a unique index covers exactly the keys."""
    # Without such an index the key is only a convention, so select-then-write under a lock.
    if not native_upsert(conn, t, list(keys)):
        return insert_or_update(conn, t, keys, row, "upsert")
    old = _existing(conn, t, keys, lock=False)
    if old is not None and _same(old, row):
        return "unchanged"
    _on_conflict(conn, t, list(keys), [row])
    return "created" if old is None else "updated"


def upsert_many(
    conn: Connection, t: sa.Table, key_names: Sequence[str], rows: list[Keyed]
) -> list[str]:
    """Upsert ``rows`` with a few statements (``native_upsert`` must hold); their actions.

    Existing rows are read by key first, so rows that would not change are not written and
    each row gets the action writing it alone, in order, would have had.
    """
    state = _existing_many(conn, t, key_names, [keys for keys, _ in rows])
    pending: dict[tuple[Any, ...], dict[str, Any]] = {}
    actions = []
    for keys, row in rows:
        ident = _ident(keys.values())
        old = state.get(ident)
        if old is not None and _same(old, row):
            actions.append("unchanged")
            continue
        actions.append("created" if old is None else "updated")
        state[ident] = {**(old or {}), **row}
        # A key twice in one statement is an error on PostgreSQL; merged, it ends the same.
        pending[ident] = {**pending.get(ident, {}), **row}
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in pending.values():
        by_columns[frozenset(row)].append(row)
    for group in by_columns.values():
        _on_conflict(conn, t, key_names, group)
    return actions


def _on_conflict(
    conn: Connection, t: sa.Table, key_names: Sequence[str], rows: list[dict[str, Any]]
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE for rows that share their columns (executemany)."""
    stmt = _NATIVE_UPSERT[conn.dialect.name](t)
    target = [t.c[name] for name in key_names]
    changes = {name: stmt.excluded[name] for name in rows[0] if name not in key_names}
    if changes:
        stmt = stmt.on_conflict_do_update(index_elements=target, set_=changes)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=target)
    if len(rows) == 1:
        conn.execute(stmt.values(rows[0]))
    else:
        conn.execute(stmt, rows)


def _existing(
    conn: Connection, t: sa.Table, keys: Mapping[str, Any], *, lock: bool
) -> sa.RowMapping | None:
    stmt = sa.select(t).where(*conditions(t, keys)).limit(1)
    if lock:
        stmt = stmt.with_for_update()  # SQLite has no row locks; its writes serialize anyway
    return conn.execute(stmt).mappings().first()


def _existing_many(
    conn: Connection, t: sa.Table, key_names: Sequence[str], keys: list[dict[str, Any]]
) -> dict[tuple[Any, ...], Mapping[Any, Any]]:
    """The rows that have any of ``keys``, by ``_ident`` of their key values."""
    columns = [t.c[name] for name in key_names]
    wanted = list({_ident(k.values()): tuple(k[n] for n in key_names) for k in keys}.values())
    found: dict[tuple[Any, ...], Mapping[Any, Any]] = {}
    for start in range(0, len(wanted), KEYS_PER_SELECT):
        part = wanted[start : start + KEYS_PER_SELECT]
        match = (
            columns[0].in_([v[0] for v in part])
            if len(columns) == 1
            else sa.tuple_(*columns).in_(part)
        )
        for old in conn.execute(sa.select(t).where(match)).mappings():
            found[_ident(old[name] for name in key_names)] = old
    return found


def _ident(values: Any) -> tuple[Any, ...]:
    # Keys as JSON sees them, so a datetime read back meets the one written. A miss only
    # costs a write ("created" for "updated"): ON CONFLICT still finds the row.
    return tuple(to_json_value(v) for v in values)


def _same(old: Mapping[Any, Any], row: Mapping[str, Any]) -> bool:
    return all(old[name] == value for name, value in row.items())
