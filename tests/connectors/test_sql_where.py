"""Comparison filters of the sql connector (``Compare``), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from connectors import RecordError, SqlConnector
from connectors.sql import Compare
from tests.connectors.sqldb import Database

TIMES = [
    "2024-05-01T00:00:00Z",
    "2024-05-01T12:00:00Z",
    "2024-05-02T00:00:00Z",
    "2024-05-02T23:59:59Z",
    "2024-05-03T00:00:00Z",
    None,
]


def orders(db: Database) -> tuple[str, SqlConnector]:
    """Six orders, ids 1-6: ``status`` paid/open/None, ``created_at`` from TIMES."""
    table = db.create(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(20)),
        sa.Column("amount", sa.Integer),
        sa.Column("created_at", sa.DateTime),
    )
    sql = db.connector()
    statuses = ["paid", "open", "paid", None, "paid", "open"]
    for n, (status, at) in enumerate(zip(statuses, TIMES, strict=True), start=1):
        sql.write(table, "id", {"id": n, "status": status, "amount": n * 10, "created_at": at})
    return table, sql


def ids(sql: SqlConnector, table: str, where: dict[str, Any]) -> list[int]:
    return [row["id"] for row in sql.select(table, where, limit=100)]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (Compare("eq", 30), [3]),
        (Compare("ne", 30), [1, 2, 4, 5, 6]),
        (Compare("gt", 30), [4, 5, 6]),
        (Compare("gte", 30), [3, 4, 5, 6]),
        (Compare("lt", 30), [1, 2]),
        (Compare("lte", 30), [1, 2, 3]),
        (Compare("in", [20, 40, 99]), [2, 4]),
        (Compare("in", []), []),
        ([Compare("gt", 10), Compare("lt", 50)], [2, 3, 4]),
    ],
)
def test_each_operator(database: Database, cond: Any, expected: list[int]) -> None:
    table, sql = orders(database)
    assert ids(sql, table, {"amount": cond}) == expected


def test_null_with_eq_ne_and_in(database: Database) -> None:
    table, sql = orders(database)
    assert ids(sql, table, {"status": None}) == [4]
    assert ids(sql, table, {"status": Compare("eq", None)}) == [4]
    assert ids(sql, table, {"status": Compare("ne", None)}) == [1, 2, 3, 5, 6]
    # ne is exactly "not eq": a row without a status is not 'paid'.
    assert ids(sql, table, {"status": Compare("ne", "paid")}) == [2, 4, 6]
    assert ids(sql, table, {"status": Compare("in", ["open", None])}) == [2, 4, 6]
    assert ids(sql, table, {"created_at": Compare("eq", None)}) == [6]


def test_a_time_window_of_iso_strings_on_a_datetime_column(database: Database) -> None:
    table, sql = orders(database)
    window = [Compare("gt", "2024-05-01T00:00:00Z"), Compare("lte", "2024-05-02T23:59:59Z")]
    assert ids(sql, table, {"created_at": window}) == [2, 3, 4]
    # The same instant written with an offset; the column holds UTC.
    later = Compare("gte", "2024-05-02T02:00:00+02:00")
    assert ids(sql, table, {"created_at": later, "status": "paid"}) == [3, 5]


def test_conditions_and_keyset_pages_together(database: Database) -> None:
    table, sql = orders(database)
    where = {"created_at": Compare("gte", "2024-05-01T12:00:00"), "status": Compare("ne", "x")}
    for order in (None, ["-created_at"], ["-amount", "id"]):
        expected = sql.select(table, where, limit=100, order_by=order)
        seen: list[dict[str, Any]] = []
        after = None
        while page := sql.select_page(table, where, after=after, order_by=order, limit=2):
            seen += page
            after = page[-1]
        assert seen == expected and len(seen) == 4, order


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"amount": {"gt": 1}}, "must be a single value or Compare"),
        ({"amount": [1, 2]}, r"use Compare\('in'"),
        ({"amount": []}, "must be a single value"),
        ({"amount": Compare("like", 1)}, "unknown operator 'like' on 'amount'"),
        ({"amount": Compare("gt", None)}, "'gt' on 'amount' needs a value, got null"),
        ({"amount": Compare("in", 3)}, "'in' on 'amount' takes a list"),
        ({"amount": Compare("in", [[1]])}, "single value"),
        ({"amount": Compare("eq", Compare("eq", 1))}, "not another condition"),
        ({"created_at": Compare("gt", "last week")}, "needs an ISO-8601"),
        ({"colour": Compare("eq", "red")}, "unknown column 'colour'"),
    ],
)
def test_bad_filters_are_record_errors(database: Database, where: Any, message: str) -> None:
    table, sql = orders(database)
    with pytest.raises(RecordError, match=message):
        sql.select(table, where)
    with pytest.raises(RecordError, match=message):
        sql.select_page(table, where, after={"id": 1})
