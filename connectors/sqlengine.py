"""What the ``sql`` connector shares per database: engines, reflected tables, error meanings.

Engines (and their pools) are kept per URL for the process: the platform builds connectors
per run, and a pool per run would reconnect every time. Reflected tables are kept a short
while (``REFLECT_TTL``) for the same reason. Nothing here repeats a URL's password.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

from connectors.errors import ConfigError, ConnectFailed, ConnectorError, RecordError

DEFAULT_POOL_SIZE = 5
"""Connections kept open per database URL when the config does not say."""

REFLECT_TTL = 60.0
"""Seconds a reflected table is trusted before it is read again (schemas do change)."""

CONNECT_TIMEOUT = 10
"""Seconds to wait for a PostgreSQL connection; a black-holed host must not hang a run."""

EngineKey = tuple[str, int]
"""An engine's identity: its URL and pool size."""

# SQLite reports bad SQL and a missing file alike as OperationalError; only these are
# worth retrying.
_SQLITE_TRANSIENT = ("unable to open", "locked", "busy", "disk i/o")
_MAX_MESSAGE = 500

_ENGINES: dict[EngineKey, Engine] = {}
_TABLES: dict[tuple[str, int, str | None, str], tuple[float, sa.Table]] = {}
_LOCK = threading.Lock()


def check_url(value: str) -> None:
    """Marshmallow validator: ``value`` parses as a SQLAlchemy URL (the message hides it)."""
    try:
        make_url(value)
    except (sa_exc.ArgumentError, ValueError):
        # SQLAlchemy's message repeats the URL, password included.
        raise ValidationError("Not a valid SQLAlchemy URL.") from None


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
        message = scrub(str(exc), parsed.password)
        raise ConfigError(f"sql connector cannot use its URL: {message}") from None


def reflect(key: EngineKey, engine: Engine, schema: str | None, name: str) -> sa.Table:
    """The table ``name`` as the database has it, read again after ``REFLECT_TTL``.

    NoSuchTableError becomes RecordError; other SQLAlchemy errors are the caller's to
    translate.
    """
    cache_key = (*key, schema, name)
    now = time.monotonic()
    cached = _TABLES.get(cache_key)
    if cached is not None and now - cached[0] < REFLECT_TTL:
        return cached[1]
    try:
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=engine)
    except sa_exc.NoSuchTableError:
        raise RecordError(f"unknown table {name!r}") from None
    _TABLES[cache_key] = (now, table)
    return table


def forget(key: EngineKey, schema: str | None, name: str) -> None:
    """Drop a cached reflection: the table may have changed under it."""
    _TABLES.pop((*key, schema, name), None)


def unique_sets(table: sa.Table) -> set[frozenset[str]]:
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


def scrub(message: str, password: Any) -> str:
    """``message`` on one line, without ``password``, at most 500 characters."""
    text = " ".join(message.split())
    if password:
        text = text.replace(str(password), "***")
    return text[:_MAX_MESSAGE]


def translate(exc: sa_exc.SQLAlchemyError, password: Any, dialect: str) -> ConnectorError:
    """The connector error for a SQLAlchemy error: ConnectFailed when worth retrying."""
    orig = getattr(exc, "orig", None)
    message = scrub(str(orig if orig is not None else exc), password)
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return ConnectFailed(f"database connection failed: {message}")
    if isinstance(exc, sa_exc.DBAPIError):
        unreachable = exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError)
        if unreachable and dialect == "sqlite":
            unreachable = exc.connection_invalidated or any(
                marker in message.lower() for marker in _SQLITE_TRANSIENT
            )
        if unreachable:
            return ConnectFailed(f"database unavailable: {message}")
    return RecordError(f"database error: {message}")
