"""Comparison filters (``where: {column: {operator: jmespath}}``) in lookup and transfer, and
transfers into sql tables a chunk per transaction; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import ConnectFailed, RecordsConnector, SqlConnector
from connectors.outbound import OutboundPolicy
from tests.connectors.sqldb import Database, database_fixture  # noqa: F401
from workflows import DefinitionError, Resources, RunResult, validate_definition
from workflows.steps import transfer_io

RunSteps = Callable[..., RunResult]

ORDERS = 120
WINDOW = {"start": "2024-05-01T10:00:00Z", "end": "2024-05-01T20:00:00Z"}
"""Orders 11-20 were made in it."""


def only(result: RunResult) -> Any:
    assert result.status == "succeeded", result.error
    return result.output


@pytest.fixture
def tables(database: Database) -> dict[str, str]:
    """``orders`` (ids 1-120, one an hour from 2024-05-01 00:00 UTC, ``id`` minutes past;
    every third one open, the others paid; no created_at on 120) and an empty ``copies``
    with the same columns."""

    def columns() -> list[sa.Column[Any]]:
        return [
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("status", sa.String(10), nullable=False),
            sa.Column("created_at", sa.DateTime),
        ]

    orders = database.create("orders", *columns())
    copies = database.create("copies", *columns())
    start = datetime(2024, 5, 1)
    with database.engine.begin() as conn:
        conn.execute(
            database.metadata.tables[orders].insert(),
            [
                {
                    "id": n,
                    "status": "open" if n % 3 == 0 else "paid",
                    "created_at": None
                    if n == ORDERS
                    else start + timedelta(hours=n - 1, minutes=n),
                }
                for n in range(1, ORDERS + 1)
            ],
        )
    return {"orders": orders, "copies": copies}


@pytest.fixture
def resources(store: Any, database: Database) -> Resources:
    """The records store plus ``db``, an sql connector on the test database."""
    return Resources(
        connectors={"records": RecordsConnector(store), "db": database.connector()},
        outbound=OutboundPolicy(allow_private=True),
    )


def db(resources: Resources) -> SqlConnector:
    sql = resources.connectors["db"]
    assert isinstance(sql, SqlConnector)
    return sql


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [row["id"] for row in rows]


# lookup


def test_lookup_a_time_window_and_a_status(run_steps: RunSteps, tables: dict[str, str]) -> None:
    step = {
        "id": "paid",
        "type": "lookup",
        "connector": "db",
        "table": tables["orders"],
        "one": False,
        "limit": 100,
        "where": {
            "created_at": {"gt": "data.window.start", "lte": "data.window.end"},
            "status": "'paid'",
        },
    }
    assert ids(only(run_steps([step], {"window": WINDOW}))) == [11, 13, 14, 16, 17, 19, 20]


@pytest.mark.parametrize(
    ("where", "data", "expected"),
    [
        ({"id": {"in": "data.ids"}}, {"ids": [5, 7, 500]}, [5, 7]),
        ({"id": {"in": "data.ids"}}, {"ids": []}, []),
        ({"created_at": {"eq": "data.none"}}, {}, [120]),
        ({"id": {"gte": "`118`"}, "created_at": {"ne": "`null`"}}, {}, [118, 119]),
        ({"id": {"lt": "`4`"}, "status": {"ne": "'open'"}}, {}, [1, 2]),
    ],
)
def test_lookup_operators(
    run_steps: RunSteps, tables: dict[str, str], where: Any, data: Any, expected: list[int]
) -> None:
    step = {
        "id": "l",
        "type": "lookup",
        "connector": "db",
        "table": tables["orders"],
        "one": False,
        "limit": 100,
        "where": where,
    }
    assert ids(only(run_steps([step], data))) == expected


def test_lookup_with_a_null_bound_fails_the_step(
    run_steps: RunSteps, tables: dict[str, str]
) -> None:
    step = {
        "id": "l",
        "type": "lookup",
        "connector": "db",
        "table": tables["orders"],
        "where": {"created_at": {"gt": "data.window.start"}},
    }
    result = run_steps([step], {})
    assert result.status == "failed" and result.failed_step == "l"
    assert "'gt' on 'created_at' needs a value, got null" in (result.error or "")


# transfer


def copy(tables: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": "copy",
        "type": "transfer",
        "source": {
            "connector": "db",
            "table": tables["orders"],
            "where": {"created_at": {"gte": "data.window.start", "lt": "data.window.end"}},
        },
        "target": {"connector": "db", "table": tables["copies"], "key": "id"},
        **extra,
    }


def test_transfer_a_window_twice_adds_no_rows(
    run_steps: RunSteps, resources: Resources, tables: dict[str, str]
) -> None:
    window = {"start": "2024-05-01T06:00:00+02:00", "end": "2024-05-03T00:00:00Z"}
    step = copy(tables, chunk_size=7)
    expected = {"read": 44, "written": 44, "failed": 0, "chunks": 7, "retried_chunks": 0}
    assert only(run_steps([step], {"window": window})) == expected
    assert only(run_steps([step], {"window": window})) == expected
    rows = db(resources).select(tables["copies"], limit=1000)
    assert ids(rows) == list(range(5, 49))
    assert rows[0] == {"id": 5, "status": "paid", "created_at": "2024-05-01T04:05:00"}


NO_STATUS_ON_16 = "{id: id, status: id != `16` && status || null, created_at: created_at}"
"""A map that leaves order 16 without the status ``copies`` needs (chunk 1, row 1 of 4)."""


def test_transfer_skip_writes_the_good_rows_of_a_refused_chunk(
    run_steps: RunSteps, resources: Resources, tables: dict[str, str]
) -> None:
    step = copy(tables, chunk_size=4, on_error="skip", map=NO_STATUS_ON_16)
    out = only(run_steps([step], {"window": WINDOW}))
    assert (out["read"], out["written"], out["failed"], out["chunks"]) == (10, 9, 1, 3)
    assert len(out["errors"]) == 1
    assert out["errors"][0].startswith("chunk 1: row 1: RecordError: database error:")
    assert ids(db(resources).select(tables["copies"])) == [11, 12, 13, 14, 15, 17, 18, 19, 20]


def test_transfer_fail_leaves_a_refused_chunk_unwritten(
    run_steps: RunSteps, resources: Resources, tables: dict[str, str]
) -> None:
    step = copy(tables, chunk_size=4, map=NO_STATUS_ON_16)
    result = run_steps([step], {"window": WINDOW})
    assert result.status == "failed" and not result.retryable
    assert "chunk 1 (rows 4-7) failed: RecordError: database error:" in (result.error or "")
    assert "so far read 8, written 4, failed 0" in (result.error or "")
    # Chunk 1 went back whole: 15, which was good, was not written either.
    assert ids(db(resources).select(tables["copies"])) == [11, 12, 13, 14]


def test_transfer_retries_a_chunk_that_lost_its_connection(
    run_steps: RunSteps,
    resources: Resources,
    tables: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transfer_io, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    write_many = SqlConnector.write_many
    calls: list[int] = []

    def flaky(self: SqlConnector, *args: Any, **kwargs: Any) -> dict[str, int]:
        calls.append(1)
        done = write_many(self, *args, **kwargs)
        if len(calls) == 2:  # written, but the answer was lost
            raise ConnectFailed("database unavailable: connection reset")
        return done

    monkeypatch.setattr(SqlConnector, "write_many", flaky)
    out = only(run_steps([copy(tables, chunk_size=4, on_error="skip")], {"window": WINDOW}))
    assert out == {
        "read": 10,
        "written": 10,
        "failed": 0,
        "chunks": 3,
        "retried_chunks": 1,
        "errors": [],
    }
    assert len(calls) == 4
    assert ids(db(resources).select(tables["copies"])) == list(range(11, 21))


# validation


def errors_of(step: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(DefinitionError) as err:
        validate_definition({"name": "w", "steps": [step]}, connectors={"db": "sql"})
    return err.value.errors[f"steps.{step['id']}"]


def lookup(where: Any) -> dict[str, Any]:
    return {"id": "find", "type": "lookup", "connector": "db", "table": "orders", "where": where}


def test_validation_of_operator_objects() -> None:
    errors = errors_of(lookup({"created_at": {"gt": "data.[", "like": "'x%'"}}))
    assert errors == {
        "where.created_at": ["Unknown operator 'like' (use eq, ne, gt, gte, lt, lte, in)."]
    }
    errors = errors_of(lookup({"created_at": {"gt": "data.[", "lte": "steps.later.end"}}))
    assert list(errors) == ["where.created_at.gt", "where.created_at.lte"]
    assert "bad jmespath" in errors["where.created_at.gt"][0]
    assert errors["where.created_at.lte"] == ["References steps.later, which does not exist."]
    assert errors_of(lookup({"id": {}})) == {
        "where.id": ["Give at least one operator (eq, ne, gt, gte, lt, lte, in)."]
    }
    assert errors_of(lookup({"id": {"eq": 1}})) == {"where.id": ["eq: must be a jmespath string."]}
    assert errors_of(lookup({"id": 1})) == {
        "where.id": ["Must be a jmespath string or {operator: jmespath}."]
    }
    assert "where" in errors_of(lookup(["id"]))


def test_validation_of_a_transfer_source_where() -> None:
    step = {
        "id": "move",
        "type": "transfer",
        "source": {
            "connector": "db",
            "table": "orders",
            "where": {"id": {"in": "data.ids[", "gt": "`1`"}, "status": "'paid'"},
        },
        "target": {"connector": "db", "table": "copies", "key": "id"},
    }
    errors = errors_of(step)
    assert list(errors) == ["source.where.id.in"]
    assert "bad jmespath" in errors["source.where.id.in"][0]
    step["source"]["where"] = {"id": {"between": "`[1, 2]`"}}
    assert errors_of(step) == {
        "source.where.id": ["Unknown operator 'between' (use eq, ne, gt, gte, lt, lte, in)."]
    }


def test_a_valid_where_is_kept_as_given() -> None:
    where = {"created_at": {"gt": "data.a", "lte": "data.b"}, "status": "'paid'"}
    definition = validate_definition(
        {"name": "w", "steps": [lookup(where)]}, connectors={"db": "sql"}
    )
    assert definition["steps"][0]["where"] == where
