"""The ``sql`` connector: rows of an existing database's tables, written by key, read by filter.

Tables and columns are reflected with SQLAlchemy Core and every statement is built from
those objects, never from text, so a name the database does not have is refused before
any SQL exists. Engines, reflection and error meanings live in ``connectors.sqlengine``,
filters and keyset paging in ``connectors.sqlwhere``, row writes in ``connectors.sqlwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import sqlalchemy as sa
from marshmallow import Schema, fields, validate
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from connectors.errors import RecordError
from connectors.outbound import OutboundPolicy
from connectors.registry import register_connector
from connectors.sqlengine import (
    DEFAULT_POOL_SIZE,
    check_url,
    dispose_engines,
    forget,
    reflect,
    shared_engine,
    translate,
)
from connectors.sqlvalues import to_db, to_json_value
from connectors.sqlwhere import Compare, after_row, column_names, conditions, ordering
from connectors.sqlwrite import ACTIONS, Keyed, native_upsert, upsert_many, write_row

__all__ = [
    "MAX_SELECT_ROWS",
    "WRITE_MODES",
    "Compare",
    "SqlConfig",
    "SqlConnector",
    "dispose_engines",
    "shared_engine",
]

WRITE_MODES = ("insert", "update", "upsert", "delete")
"""insert refuses an existing key, update a missing one, upsert takes either."""

MAX_SELECT_ROWS = 10_000
"""Most rows one ``select`` may return."""


class SqlConfig(Schema):
    """Config of a ``sql`` connector; ``url`` usually holds a password, so it is never dumped."""

    url = fields.String(required=True, load_only=True, validate=check_url)
    schema = fields.String(validate=validate.Length(min=1, max=128))
    allow_tables = fields.List(
        fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1)
    )
    pool_size = fields.Integer(
        load_default=DEFAULT_POOL_SIZE, validate=validate.Range(min=1, max=100)
    )


@register_connector
class SqlConnector:
    """Writes rows by key and reads them by filters, in one database."""

    kind = "sql"
    Config = SqlConfig

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        policy: OutboundPolicy | None = None,
        client: httpx.Client | None = None,
    ):
        url: str = config["url"]
        self._password = make_url(url).password
        self._engine_key = (url, int(config.get("pool_size", DEFAULT_POOL_SIZE)))
        self.schema: str | None = config.get("schema")
        allowed = config.get("allow_tables")
        self.allow_tables = frozenset(allowed) if allowed is not None else None
        self.engine = shared_engine(*self._engine_key)

    def __repr__(self) -> str:
        return f"<SqlConnector {self.engine.dialect.name} schema={self.schema!r}>"

    @staticmethod
    def make_key(key_spec: str | Sequence[str], data: Mapping[str, Any]) -> dict[str, Any]:
        """The key of ``data``: ``{column: value}`` for each column ``key_spec`` names."""
        names = [key_spec] if isinstance(key_spec, str) else list(key_spec)
        if not names:
            raise RecordError("key must name at least one column")
        if not isinstance(data, Mapping):
            raise RecordError(f"row data must be an object to take a key from, got {data!r:.80}")
        key = {}
        for name in names:
            value = data.get(name)
            if value is None:
                raise RecordError(f"key column {name!r} is missing or null")
            key[name] = value
        return key

    def table(self, name: str) -> sa.Table:
        """The reflected table ``name``; RecordError if it is unknown or not allowed."""
        if not isinstance(name, str) or not name:
            raise RecordError(f"table name must be a non-empty string, got {name!r}")
        if self.allow_tables is not None and name not in self.allow_tables:
            allowed = ", ".join(sorted(self.allow_tables))
            raise RecordError(f"table {name!r} is not allowed (this connector allows: {allowed})")
        with self._errors(None):
            return reflect(self._engine_key, self.engine, self.schema, name)

    def write(
        self,
        table: str,
        key: str | Sequence[str] | Mapping[str, Any],
        data: Mapping[str, Any],
        mode: str = "upsert",
    ) -> dict[str, Any]:
        """Write ``data`` as the row whose ``key`` columns match; return table, key, action, data.

        ``key`` names the key columns (their values come from ``data``) or is already
        ``{column: value}``. The action is "created", "updated", "unchanged" or "deleted"
        ("unchanged" too when a delete found no row).
        """
        self._check_mode(mode)
        t = self.table(table)
        key_values = dict(key) if isinstance(key, Mapping) else self.make_key(key, data)
        keys, row = self._prepare(t, key_values, data)
        with self._errors(table), self.engine.begin() as conn:
            action = write_row(conn, t, keys, row, mode)
        return {"table": table, "key": key_values, "action": action, "data": dict(data)}

    def write_many(
        self,
        table: str,
        key: str | Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        mode: str = "upsert",
    ) -> dict[str, int]:
        """Write ``rows`` (each keyed by the ``key`` columns) in one transaction; count actions.

        All rows are written or none: a bad row, a refused write or a lost connection rolls
        the whole chunk back. Returns how many rows were created, updated, unchanged and
        deleted, as ``write`` would have said row by row.
        """
        self._check_mode(mode)
        t = self.table(table)
        names = [key] if isinstance(key, str) else list(key)
        prepared: list[Keyed] = [
            self._prepare(t, self.make_key(names, data), data) for data in rows
        ]
        counts = dict.fromkeys(ACTIONS, 0)
        if not prepared:
            return counts
        with self._errors(table), self.engine.begin() as conn:
            if mode == "upsert" and native_upsert(conn, t, names):
                actions = upsert_many(conn, t, names, prepared)
            else:
                actions = [write_row(conn, t, keys, row, mode) for keys, row in prepared]
        for action in actions:
            counts[action] += 1
        return counts

    def delete(self, table: str, key: Mapping[str, Any]) -> bool:
        """Delete the rows matching ``key`` (``{column: value}``); return whether any existed."""
        return self.write(table, key, dict(key), "delete")["action"] == "deleted"

    def select(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        *,
        limit: int = 1000,
        order_by: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Rows that match ``where``, as JSON-safe dicts.

        ``where`` maps columns to a value (equality; null matches NULL), a ``Compare`` or a
        list of ``Compare`` that must all hold. ``order_by`` names columns, ``-name`` for
        descending; the primary key otherwise.
        """
        t = self.table(table)
        specs = list(order_by or (c.name for c in t.primary_key.columns))
        return self._rows(t, where, None, specs, limit)

    def select_page(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        *,
        after: Mapping[str, Any] | None = None,
        order_by: Sequence[str] | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """One page of ``select`` by keyset: the rows that sort after the row ``after``.

        ``order_by`` (the primary key by default) must name columns that are unique together
        and never null, or rows would be skipped or repeated between pages; ``after`` is the
        last row of the previous page (only its ``order_by`` columns are read).
        """
        t = self.table(table)
        specs = list(order_by or (c.name for c in t.primary_key.columns))
        if not specs:
            raise RecordError(f"table {table!r} has no primary key: give order_by to page it")
        return self._rows(t, where, after or None, specs, limit)

    def close(self) -> None:
        """Nothing to release: the engine is shared by every connector on the same URL."""

    # -- internals -------------------------------------------------------------------------

    def _rows(
        self,
        t: sa.Table,
        where: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        specs: list[str],
        limit: int,
    ) -> list[dict[str, Any]]:
        if type(limit) is not int or not 0 < limit <= MAX_SELECT_ROWS:  # bool is not a limit
            raise RecordError(f"limit must be 1-{MAX_SELECT_ROWS}, got {limit!r}")
        where = dict(where or {})
        self._check_columns(t, [*where, *column_names(specs)])
        clauses = conditions(t, where)
        if after is not None:
            clauses.append(after_row(t, specs, after))
        stmt = sa.select(t).where(*clauses).order_by(*ordering(t, specs)).limit(limit)
        with self._errors(t.name), self.engine.connect() as conn:
            found = conn.execute(stmt).mappings().all()
        return [{str(name): to_json_value(value) for name, value in row.items()} for row in found]

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in WRITE_MODES:
            raise RecordError(f"unknown write mode {mode!r} (use {', '.join(WRITE_MODES)})")

    def _prepare(self, t: sa.Table, key_values: Mapping[str, Any], data: Any) -> Keyed:
        """``(keys, row)`` converted for ``t``'s columns; RecordError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise RecordError(f"row data must be an object, got {type(data).__name__}")
        if not key_values:
            raise RecordError("key must name at least one column")
        self._check_columns(t, [*key_values, *data])
        keys = {name: to_db(t.c[name], value) for name, value in key_values.items()}
        row = {name: to_db(t.c[name], value) for name, value in data.items()} | keys
        return keys, row

    @staticmethod
    def _check_columns(table: sa.Table, names: Iterable[Any]) -> None:
        unknown = sorted({repr(n) for n in names if not isinstance(n, str) or n not in table.c})
        if unknown:
            s = "s" if len(unknown) > 1 else ""
            raise RecordError(f"unknown column{s} {', '.join(unknown)} in table {table.name!r}")

    @contextmanager
    def _errors(self, table: str | None) -> Iterator[None]:
        """Turn SQLAlchemy's errors into connector errors, without the URL or its password."""
        try:
            yield
        except sa_exc.SQLAlchemyError as exc:
            if table is not None:
                # The table may have changed under a cached reflection; read it afresh next time.
                forget(self._engine_key, self.schema, table)
            raise translate(exc, self._password, self.engine.dialect.name) from None
