"""``SqlConnector.write_many``: a chunk of rows in one transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors import ConnectFailed, RecordError, SqlConnector, build_connector
from connectors.outbound import OutboundPolicy
from tests.connectors.sqldb import Database, activities, members
from tests.support import free_port


def counts(created: int = 0, updated: int = 0, unchanged: int = 0, deleted: int = 0) -> Any:
    return {"created": created, "updated": updated, "unchanged": unchanged, "deleted": deleted}


def people(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "email": f"{i}@x.org", **extra} for i in range(1, n + 1)]


def test_creates_updates_and_sees_unchanged_rows(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    rows = people(300, joined_at="2024-05-01T12:00:00+02:00", score=9.5)
    assert sql.write_many(table, "id", rows) == counts(created=300)
    assert sql.write_many(table, "id", rows) == counts(unchanged=300)
    rows[5] = {**rows[5], "name": "Six"}
    rows[7] = {"id": 8, "email": "eight@x.org"}  # fewer columns: the others are kept
    assert sql.write_many(table, "id", [*rows, *people(302)[300:]]) == counts(2, 2, 298)
    got = {row["id"]: row for row in database.rows(table)}
    assert len(got) == 302 and got[6]["name"] == "Six"
    assert got[8]["email"] == "eight@x.org" and got[8]["joined_at"] is not None
    assert str(got[1]["joined_at"]) == "2024-05-01 10:00:00"


def test_one_bad_row_writes_nothing(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    sql.write_many(table, "id", people(3))
    rows = [*people(3, name="new"), {"id": 4, "email": None}, *people(6)[4:]]
    with pytest.raises(RecordError, match="database error") as err:
        sql.write_many(table, "id", rows)
    assert not err.value.retryable
    assert [(r["id"], r["name"]) for r in database.rows(table)] == [(1, None), (2, None), (3, None)]
    with pytest.raises(RecordError, match="'joined_at' needs an ISO-8601"):
        sql.write_many(table, "id", [*people(5), {"id": 9, "email": "e", "joined_at": "soon"}])
    with pytest.raises(RecordError, match="key column 'id' is missing"):
        sql.write_many(table, "id", [*people(5), {"email": "no id"}])
    with pytest.raises(RecordError, match="must be an object"):
        sql.write_many(table, "id", [*people(5), ["not", "a", "row"]])  # type: ignore[list-item]
    assert len(database.rows(table)) == 3


def test_a_key_twice_in_one_chunk_ends_as_written_in_order(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    rows = [
        {"id": 1, "email": "a@x.org", "name": "A"},
        {"id": 2, "email": "b@x.org"},
        {"id": 1, "email": "a@x.org", "name": "A"},
        {"id": 1, "email": "a2@x.org"},
    ]
    assert sql.write_many(table, "id", rows) == counts(created=2, updated=1, unchanged=1)
    assert [(r["id"], r["email"], r["name"]) for r in database.rows(table)] == [
        (1, "a2@x.org", "A"),
        (2, "b@x.org", None),
    ]


def test_composite_and_unique_keys(database: Database) -> None:
    table = activities(database)
    sql = database.connector()
    key = ["member_id", "course"]
    rows = [{"member_id": m, "course": c, "status": "new"} for m in (1, 2) for c in ("PY", "GO")]
    assert sql.write_many(table, key, rows) == counts(created=4)
    rows[1] = {**rows[1], "status": "done"}
    assert sql.write_many(table, key, rows) == counts(updated=1, unchanged=3)
    assert [r["status"] for r in database.rows(table)] == ["done", "new", "new", "new"]
    other = members(database)
    sql.write_many(other, "email", people(2))
    out = sql.write_many(other, "email", [{"id": 1, "email": "1@x.org", "name": "One"}])
    assert out == counts(updated=1)


def test_without_a_unique_index_and_in_other_modes(database: Database) -> None:
    table = database.create("loose", sa.Column("code", sa.String(10)), sa.Column("n", sa.Integer))
    sql = database.connector()
    rows = [{"code": "a", "n": 1}, {"code": "b", "n": 2}, {"code": "a", "n": 3}]
    assert sql.write_many(table, "code", rows) == counts(created=2, updated=1)
    assert sql.write_many(table, "code", rows[:2], "update") == counts(updated=1, unchanged=1)
    assert database.rows(table) == [{"code": "a", "n": 1}, {"code": "b", "n": 2}]
    with pytest.raises(RecordError, match="already exists"):
        sql.write_many(table, "code", [{"code": "c", "n": 0}, {"code": "a", "n": 0}], "insert")
    assert len(database.rows(table)) == 2  # "c" went back with the chunk
    assert sql.write_many(table, "code", [{"code": "a"}, {"code": "z"}], "delete") == counts(
        deleted=1, unchanged=1
    )
    assert sql.write_many(table, "code", []) == counts()
    with pytest.raises(RecordError, match="unknown write mode"):
        sql.write_many(table, "code", rows, "merge")


def test_an_unreachable_database_is_retryable_and_hides_the_password(
    database: Database, tmp_path: Any
) -> None:
    if database.backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'missing-dir' / 'data.db'}"
    else:
        parsed = make_url(database.url).set(port=free_port(), password="hunter2-secret")
        url = parsed.render_as_string(hide_password=False)
    sql = build_connector("sql", {"url": url}, policy=OutboundPolicy())
    assert isinstance(sql, SqlConnector)
    with pytest.raises(ConnectFailed) as err:
        sql.write_many("members", "id", people(2))
    assert err.value.retryable and "hunter2" not in str(err.value)
