"""Database engine, sessions and migrations.

SQLite (the default) runs in WAL mode and every writing transaction begins
``IMMEDIATE``: the API, workers and scheduler write from several processes, and a
deferred transaction that reads then writes can fail with "database is locked" without
waiting. Read-only work uses ``Database.read()``: a deferred transaction, which in WAL
mode never waits for a writer nor holds one up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from ihook.group_commit import GroupCommit

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
"""Alembic's script location."""
READ_ONLY = "ihook_read_only"
"""Execution option of ``Database.read()`` sessions: SQLite begins them deferred."""


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and immediate writes."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """An engine and its session factory; one per process."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.readers = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        from ihook.routing import Routing, note_changes  # it needs the models

        self.routing = Routing()
        """The configuration every event reads, cached for this process."""
        note_changes(self.sessions, self.routing)
        note_changes(self.readers, self.routing)
        self.group = GroupCommit(self.session)
        """Shares one transaction among writes of this process's threads that arrive together."""

    @property
    def is_sqlite(self) -> bool:
        """True when the backend is SQLite (upserts and locks differ)."""
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only: on SQLite it takes no write lock.

        Writing in it may fail with "database is locked" instead of waiting; use
        ``session()`` for anything that writes.
        """
        with self.readers() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        upgrade(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection (after fork, at shutdown)."""
        self.engine.dispose()


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at our migrations and ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def driver_cursor(session: Session) -> Iterator[Any]:
    """A DBAPI cursor in ``session``'s transaction; driver errors raised as SQLAlchemy's.

    For the few statements every webhook runs, where SQLAlchemy's execution costs ten
    times the driver's. ``IntegrityError``, ``OperationalError`` … come out as they would
    from a Core statement.
    """
    connection = session.connection()
    error = connection.dialect.loaded_dbapi.Error
    cursor = connection.connection.cursor()
    try:
        yield cursor
    except error as exc:
        raise DBAPIError.instance(None, None, exc, error) from exc
    finally:
        cursor.close()


_Param = tuple[str, Any, Callable[[Any], Any] | None]
"""A parameter of a prepared statement: its name, the column's default, its bind processor."""


class PreparedInsert:
    """An ``INSERT`` into ``table`` compiled once per SQL dialect, run on the DBAPI cursor.

    For the hottest writes (an event and its runs, on every webhook): executing a Core
    statement costs about 100 µs of Python in SQLAlchemy each time, the driver's own
    ``execute`` about 10. The rows are converted as SQLAlchemy would (the columns' bind
    processors, Python-side defaults for columns a row leaves out) and the statement
    runs in the session's transaction. Driver errors are raised as SQLAlchemy's
    (``IntegrityError`` for a duplicate key), as a Core statement's would be.
    """

    def __init__(self, table: Table, columns: Sequence[str]):
        self.table = table
        self.columns = tuple(columns)
        self._compiled: dict[str, tuple[str, list[_Param]]] = {}

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (each holding ``columns``) in ``session``'s transaction."""
        if not rows:
            return
        connection = session.connection()
        dialect = connection.dialect
        sql, params = self._for(dialect)
        if dialect.positional:
            values: list[Any] = [
                tuple(_bind(row, name, default, process) for name, default, process in params)
                for row in rows
            ]
        else:
            values = [
                {name: _bind(row, name, default, process) for name, default, process in params}
                for row in rows
            ]
        with driver_cursor(session) as cursor:
            if len(values) == 1:
                cursor.execute(sql, values[0])
            else:
                cursor.executemany(sql, values)

    def _for(self, dialect: Dialect) -> tuple[str, list[_Param]]:
        """The statement's SQL for ``dialect``, and its parameters in order."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            statement = self.table.insert().compile(dialect=dialect, column_keys=list(self.columns))
            params = []
            for name in statement.positiontup or list(statement.params):
                column = self.table.c[name]
                # The compiler adds the columns a row leaves out that have a Python default.
                default = None if name in self.columns else column.default
                process = column.type.dialect_impl(dialect).bind_processor(dialect)
                params.append((name, default, process))
            compiled = self._compiled[dialect.name] = (str(statement), params)
        return compiled


def _bind(row: Mapping[str, Any], name: str, default: Any, process: Any) -> Any:
    """The driver's value for parameter ``name`` of ``row``."""
    if default is None:
        value = row[name]
    else:  # SQLAlchemy wraps a callable default to take the execution context
        value = default.arg if default.is_scalar else default.arg(None)
    if isinstance(value, Enum):
        value = value.value
    return value if process is None else process(value)
