"""The ``sql`` connector: rows of an existing database's tables, written by key, read by filter.

Tables and columns are reflected with SQLAlchemy Core and every statement is built from
those objects, never from text, so a name the database does not have is refused before
any SQL exists. Engines (and their pools) are shared per URL across connector instances:
the platform builds connectors per run, and a pool per run would reconnect every time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import sqlalchemy as sa
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from connectors.errors import ConfigError, ConnectFailed, ConnectorError, RecordError
from connectors.outbound import OutboundPolicy
from connectors.registry import register_connector
from connectors.sqlvalues import to_db, to_json_value

WRITE_MODES = ("insert", "update", "upsert", "delete")
"""insert refuses an existing key, update a missing one, upsert takes either."""

DEFAULT_POOL_SIZE = 5
"""Connections kept open per database URL when the config does not say."""

MAX_SELECT_ROWS = 10_000
"""Most rows one ``select`` may return."""

REFLECT_TTL = 60.0
"""Seconds a reflected table is trusted before it is read again (schemas do change)."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL connection; a black-holed host must not hang a run."""

_NATIVE_UPSERT: dict[str, Callable[[sa.Table], Any]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}
# SQLite reports bad SQL and a missing file alike as OperationalError; only these are
# worth retrying.
_SQLITE_TRANSIENT = ("unable to open", "locked", "busy", "disk i/o")
_MAX_MESSAGE = 500

_ENGINES: dict[tuple[str, int], Engine] = {}
_TABLES: dict[tuple[str, int, str | None, str], tuple[float, sa.Table]] = {}
_LOCK = threading.Lock()


def _check_url(value: str) -> None:
    try:
        make_url(value)
    except (sa_exc.ArgumentError, ValueError):
        # SQLAlchemy's message repeats the URL, password included.
        raise ValidationError("Not a valid SQLAlchemy URL.") from None


class SqlConfig(Schema):
    """Config of a ``sql`` connector; ``url`` usually holds a password, so it is never dumped."""

    url = fields.String(required=True, load_only=True, validate=_check_url)
    schema = fields.String(validate=validate.Length(min=1, max=128))
    allow_tables = fields.List(
        fields.String(validate=validate.Length(min=1)), validate=validate.Length(min=1)
    )
    pool_size = fields.Integer(
        load_default=DEFAULT_POOL_SIZE, validate=validate.Range(min=1, max=100)
    )


def shared_engine(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Engine:
    """The engine for ``url``, made on first use and kept for the process."""
    with _LOCK:
        engine = _ENGINES.get((url, pool_size))
        if engine is None:
            engine = _ENGINES[(url, pool_size)] = _create_engine(url, pool_size)
        return engine


def dispose_engines() -> None:
    """Close every shared engine's pool (process shutdown, tests)."""
    with _LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
        _TABLES.clear()
    for engine in engines:
        engine.dispose()


def _create_engine(url: str, pool_size: int) -> Engine:
    parsed = make_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True}
    backend = parsed.get_backend_name()
    if not (backend == "sqlite" and parsed.database in (None, "", ":memory:")):
        options.update(pool_size=pool_size, max_overflow=pool_size)
    if backend == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    try:
        return sa.create_engine(parsed, **options)
    except (sa_exc.SQLAlchemyError, ImportError, TypeError) as exc:
        message = _scrub(str(exc), parsed.password)
        raise ConfigError(f"sql connector cannot use its URL: {message}") from None


def _scrub(message: str, password: Any) -> str:
    text = " ".join(message.split())
    if password:
        text = text.replace(str(password), "***")
    return text[:_MAX_MESSAGE]


def _unique_sets(table: sa.Table) -> set[frozenset[str]]:
    """Column sets the database keeps unique: the primary key, unique constraints and indexes."""
    sets = {frozenset(c.name for c in table.primary_key.columns)}
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            sets.add(frozenset(c.name for c in constraint.columns))
    for index in table.indexes:
        if index.unique:
            sets.add(frozenset(c.name for c in index.columns))
    sets.discard(frozenset())
    return sets


@register_connector
class SqlConnector:
    """Writes rows by key and reads them by equality filters, in one database."""

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
        cache_key = (*self._engine_key, self.schema, name)
        now = time.monotonic()
        cached = _TABLES.get(cache_key)
        if cached is not None and now - cached[0] < REFLECT_TTL:
            return cached[1]
        with self._errors(None):
            try:
                table = sa.Table(name, sa.MetaData(), schema=self.schema, autoload_with=self.engine)
            except sa_exc.NoSuchTableError:
                raise RecordError(f"unknown table {name!r}") from None
        _TABLES[cache_key] = (now, table)
        return table

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
        if mode not in WRITE_MODES:
            raise RecordError(f"unknown write mode {mode!r} (use {', '.join(WRITE_MODES)})")
        if not isinstance(data, Mapping):
            raise RecordError(f"row data must be an object, got {type(data).__name__}")
        t = self.table(table)
        key_values = dict(key) if isinstance(key, Mapping) else self.make_key(key, data)
        if not key_values:
            raise RecordError("key must name at least one column")
        self._check_columns(t, [*key_values, *data])
        keys = {name: to_db(t.c[name], value) for name, value in key_values.items()}
        row = {name: to_db(t.c[name], value) for name, value in data.items()} | keys
        with self._errors(table), self.engine.begin() as conn:
            if mode == "upsert":
                action = self._upsert(conn, t, keys, row)
            elif mode == "delete":
                deleted = conn.execute(sa.delete(t).where(*self._match(t, keys))).rowcount
                action = "deleted" if deleted else "unchanged"
            else:
                action = self._insert_or_update(conn, t, keys, row, mode)
        return {"table": table, "key": key_values, "action": action, "data": dict(data)}

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
        """Rows whose columns equal ``where``'s values (null matches NULL), as JSON-safe dicts.

        ``order_by`` names columns, ``-name`` for descending; the primary key otherwise.
        """
        t = self.table(table)
        where = dict(where or {})
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RecordError(f"limit must be 1-{MAX_SELECT_ROWS}, got {limit!r}")
        if limit > MAX_SELECT_ROWS:
            raise RecordError(f"limit must be 1-{MAX_SELECT_ROWS}, got {limit!r}")
        order_names = [name[1:] if name.startswith("-") else name for name in order_by or ()]
        self._check_columns(t, [*where, *order_names])
        stmt = sa.select(t).limit(limit)
        if where:
            stmt = stmt.where(*self._match(t, where))
        if order_by:
            stmt = stmt.order_by(
                *(
                    t.c[name].desc() if spec.startswith("-") else t.c[name].asc()
                    for spec, name in zip(order_by, order_names, strict=True)
                )
            )
        elif t.primary_key.columns:
            stmt = stmt.order_by(*t.primary_key.columns)
        with self._errors(table), self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [{str(name): to_json_value(value) for name, value in row.items()} for row in rows]

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
        names = [spec[1:] if spec.startswith("-") else spec for spec in specs]
        self._check_columns(t, names)
        if not after:
            return self.select(table, where, limit=limit, order_by=specs)
        missing = [repr(name) for name in names if after.get(name) is None]
        if missing:
            raise RecordError(f"keyset column(s) {', '.join(missing)} missing or null in after")
        self._check_columns(t, where or {})
        # (a, b) after (x, y) is a > x OR (a = x AND b > y); '<' where the order is descending.
        bound = {name: to_db(t.c[name], after[name]) for name in names}
        later = [
            sa.and_(
                *(t.c[n] == bound[n] for n in names[:i]),
                t.c[name] < bound[name] if spec.startswith("-") else t.c[name] > bound[name],
            )
            for i, (spec, name) in enumerate(zip(specs, names, strict=True))
        ]
        if type(limit) is not int or not 0 < limit <= MAX_SELECT_ROWS:  # bool is not a limit
            raise RecordError(f"limit must be 1-{MAX_SELECT_ROWS}, got {limit!r}")
        order = [
            t.c[n].desc() if s.startswith("-") else t.c[n].asc()
            for s, n in zip(specs, names, strict=True)
        ]
        stmt = sa.select(t).where(sa.or_(*later), *self._match(t, where or {}))
        with self._errors(table), self.engine.connect() as conn:
            found = conn.execute(stmt.order_by(*order).limit(limit)).mappings().all()
        return [{str(name): to_json_value(value) for name, value in row.items()} for row in found]

    def close(self) -> None:
        """Nothing to release: the engine is shared by every connector on the same URL."""

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _check_columns(table: sa.Table, names: Iterable[Any]) -> None:
        unknown = sorted({repr(n) for n in names if not isinstance(n, str) or n not in table.c})
        if unknown:
            s = "s" if len(unknown) > 1 else ""
            raise RecordError(f"unknown column{s} {', '.join(unknown)} in table {table.name!r}")

    @staticmethod
    def _match(table: sa.Table, values: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
        for name, value in values.items():
            if isinstance(value, Mapping | list):
                raise RecordError(f"filter on {name!r} must be a single value (equality only)")
        return [table.c[name] == to_db(table.c[name], value) for name, value in values.items()]

    def _existing(
        self, conn: Connection, t: sa.Table, keys: Mapping[str, Any], *, lock: bool
    ) -> sa.RowMapping | None:
        stmt = sa.select(t).where(*self._match(t, keys)).limit(1)
        if lock:
            stmt = stmt.with_for_update()  # SQLite has no row locks; its writes serialize anyway
        return conn.execute(stmt).mappings().first()

    def _insert_or_update(
        self, conn: Connection, t: sa.Table, keys: dict[str, Any], row: dict[str, Any], mode: str
    ) -> str:
        old = self._existing(conn, t, keys, lock=True)
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
        if all(old[name] == value for name, value in row.items()):
            return "unchanged"
        conn.execute(sa.update(t).where(*self._match(t, keys)).values(row))
        return "updated"

    def _upsert(
        self, conn: Connection, t: sa.Table, keys: dict[str, Any], row: dict[str, Any]
    ) -> str:
        make_insert = _NATIVE_UPSERT.get(conn.dialect.name)
        # ON CONFLICT needs a unique index on exactly the key columns; without one the
        # key is only a convention, so fall back to select-then-write under a row lock.
        if make_insert is None or frozenset(keys) not in _unique_sets(t):
            return self._insert_or_update(conn, t, keys, row, "upsert")
        old = self._existing(conn, t, keys, lock=False)
        if old is not None and all(old[name] == value for name, value in row.items()):
            return "unchanged"
        stmt = make_insert(t).values(row)
        target = [t.c[name] for name in keys]
        changes = {name: stmt.excluded[name] for name in row if name not in keys}
        if changes:
            stmt = stmt.on_conflict_do_update(index_elements=target, set_=changes)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=target)
        conn.execute(stmt)
        return "created" if old is None else "updated"

    @contextmanager
    def _errors(self, table: str | None) -> Iterator[None]:
        """Turn SQLAlchemy's errors into connector errors, without the URL or its password."""
        try:
            yield
        except sa_exc.SQLAlchemyError as exc:
            if table is not None:
                # The table may have changed under a cached reflection; read it afresh next time.
                _TABLES.pop((*self._engine_key, self.schema, table), None)
            raise self._translate(exc) from None

    def _translate(self, exc: sa_exc.SQLAlchemyError) -> ConnectorError:
        orig = getattr(exc, "orig", None)
        message = _scrub(str(orig if orig is not None else exc), self._password)
        if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
            return ConnectFailed(f"database connection failed: {message}")
        if isinstance(exc, sa_exc.DBAPIError):
            unreachable = exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError)
            if unreachable and self.engine.dialect.name == "sqlite":
                unreachable = exc.connection_invalidated or any(
                    marker in message.lower() for marker in _SQLITE_TRANSIENT
                )
            if unreachable:
                return ConnectFailed(f"database unavailable: {message}")
        return RecordError(f"database error: {message}")
