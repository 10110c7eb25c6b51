"""Migrations build the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from ihook.db import Database, PreparedInsert
from ihook.models import Base, Event, Run, Workflow

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@both_backends
def test_migrations_match_the_models(database_url):
    db = Database(database_url)
    db.upgrade()  # a second upgrade is a no-op
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == []


def test_sqlite_runs_in_wal_mode(database_url):
    db = Database(database_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    db.dispose()


@both_backends
def test_times_come_back_aware_and_json_round_trips(database_url):
    db = Database(database_url)
    with db.session() as session:
        session.add(Event(id="evt_1", type="t", source="s", data={"a": [1, "x"]}, headers={}))
    with db.session() as session:
        event = session.get(Event, "evt_1")
        assert event.received_at.tzinfo is not None
        assert event.data == {"a": [1, "x"]}
    assert {"events", "runs", "records", "endpoints"} <= set(inspect(db.engine).get_table_names())
    db.dispose()


def test_a_read_session_neither_waits_for_nor_blocks_a_writer(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'read.db'}")
    with db.session() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
        session.execute(text("INSERT INTO t VALUES (1)"))
    with db.session() as writer:  # holds SQLite's write lock until the block ends
        writer.execute(text("INSERT INTO t VALUES (2)"))
        started = time.perf_counter()
        with db.read() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 1
        assert time.perf_counter() - started < 1  # a write session would wait up to 30 s
    with db.read() as reader:
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 2
    db.dispose()


@both_backends
def test_a_prepared_insert_writes_what_the_orm_would(database_url):
    db = Database(database_url)
    runs = PreparedInsert(Run.__table__, ("id", "workflow_id", "workflow_version", "event_id"))
    events = PreparedInsert(Event.__table__, ("id", "type", "source", "data", "headers"))

    def run(run_id: str) -> dict:
        return {"id": run_id, "workflow_id": "wf", "workflow_version": 3, "event_id": "evt_p"}

    with db.session() as session:
        session.add(Workflow(id="wf", name="wf", definition={}))
        session.flush()
        event = {"id": "evt_p", "type": "t", "source": "s", "data": {"a": [1, "é"]}}
        events.execute(session, [{**event, "headers": {"h": "v"}}])
        runs.execute(session, [run(f"run_{n}") for n in range(3)])
    with db.session() as session:
        stored = session.get(Event, "evt_p")
        assert (stored.data, stored.headers, stored.environment) == (
            event["data"],
            {"h": "v"},
            "live",
        )
        assert stored.received_at.tzinfo is not None
        stored_run = session.get(Run, "run_2")
        assert (stored_run.status, stored_run.attempt, stored_run.steps) == ("queued", 0, [])
        assert stored_run.created_at.tzinfo is not None
    # A duplicate key is SQLAlchemy's IntegrityError, and nothing of its transaction stays.
    with pytest.raises(IntegrityError), db.session() as session:
        runs.execute(session, [run("run_9")])
        runs.execute(session, [run("run_0")])
    with db.session() as session:
        assert session.get(Run, "run_9") is None
        assert session.scalar(select(func.count()).select_from(Run)) == 3
    db.dispose()

