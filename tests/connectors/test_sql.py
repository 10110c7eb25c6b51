"""The sql connector against a real SQLite file and, when one is given, a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors import (
    ConfigError,
    ConnectFailed,
    RecordError,
    SqlConnector,
    TransientError,
    build_connector,
    connector_kinds,
)
from connectors.outbound import OutboundPolicy
from connectors.sql import SqlConfig, shared_engine
from connectors.sqlvalues import to_json_value
from tests.connectors.sqldb import Database, activities, members
from tests.support import free_port

# config and registry


def test_sql_connector_is_registered_with_a_config_schema() -> None:
    assert "sql" in connector_kinds()
    loaded = SqlConfig().load({"url": "postgresql+psycopg://u:pw@db/x"})
    assert loaded["pool_size"] == 5
    assert "url" not in SqlConfig().dump(loaded)


@pytest.mark.parametrize(
    ("config", "field_name"),
    [
        ({}, "url"),
        ({"url": "not a url at all hunter2"}, "url"),
        ({"url": "sqlite://", "pool_size": 0}, "pool_size"),
        ({"url": "sqlite://", "allow_tables": []}, "allow_tables"),
    ],
)
def test_sql_config_refused(config: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_connector("sql", config, policy=OutboundPolicy())
    assert field_name in str(err.value)
    assert "hunter2" not in str(err.value)


def test_sql_url_with_an_unknown_driver_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        build_connector("sql", {"url": "nosuchdb://u:hunter2@h/x"}, policy=OutboundPolicy())
    assert "hunter2" not in str(err.value)


def test_sql_engine_is_shared_per_url_and_outlives_close(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"))
    first = build_connector("sql", {"url": url}, policy=OutboundPolicy())
    second = build_connector("sql", {"url": url}, policy=OutboundPolicy())
    assert isinstance(first, SqlConnector) and isinstance(second, SqlConnector)
    assert first.engine is second.engine is shared_engine(url)
    first.write("kv", "k", {"k": "a", "v": "1"})
    first.close()
    first.close()
    assert second.select("kv") == [{"k": "a", "v": "1"}]


def test_sql_connector_repr_hides_the_url() -> None:
    url = "postgresql+psycopg://ihook:hunter2@127.0.0.1:5432/crm"
    connector = SqlConnector({"url": url}, policy=OutboundPolicy(), client=None)
    assert "hunter2" not in repr(connector) and "crm" not in repr(connector)


# writes


def test_sql_insert_creates_and_refuses_an_existing_key(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    out = sql.write(table, "email", {"id": 1, "email": "a@x.org", "name": "Ann"}, "insert")
    assert out == {
        "table": table,
        "key": {"email": "a@x.org"},
        "action": "created",
        "data": {"id": 1, "email": "a@x.org", "name": "Ann"},
    }
    with pytest.raises(RecordError, match="already exists"):
        sql.write(table, "email", {"id": 2, "email": "a@x.org"}, "insert")
    assert [row["email"] for row in database.rows(table)] == ["a@x.org"]


def test_sql_update_changes_a_row_and_refuses_a_missing_one(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    sql.write(table, "id", {"id": 1, "email": "a@x.org", "name": "Ann"}, "insert")
    assert sql.write(table, "id", {"id": 1, "name": "Anne"}, "update")["action"] == "updated"
    assert sql.write(table, "id", {"id": 1, "name": "Anne"}, "update")["action"] == "unchanged"
    assert database.rows(table)[0]["name"] == "Anne"
    assert database.rows(table)[0]["email"] == "a@x.org"  # columns not given are kept
    with pytest.raises(RecordError, match="no row with key"):
        sql.write(table, "id", {"id": 9, "name": "Nobody"}, "update")


def test_sql_upsert_creates_updates_and_sees_unchanged_rows(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    row = {"id": 1, "email": "a@x.org", "score": 9.5, "joined_at": "2024-05-01T10:00:00Z"}
    assert sql.write(table, "email", row, "upsert")["action"] == "created"
    assert sql.write(table, "email", row, "upsert")["action"] == "unchanged"
    assert sql.write(table, "email", {**row, "score": 7}, "upsert")["action"] == "updated"
    assert sql.select(table) == [
        {
            "id": 1,
            "email": "a@x.org",
            "name": None,
            "score": 7.0,
            "joined_at": "2024-05-01T10:00:00",
            "born": None,
        }
    ]


def test_sql_upsert_by_composite_key(database: Database) -> None:
    table = activities(database)
    sql = database.connector()
    key = ["member_id", "course"]
    first = sql.write(table, key, {"member_id": 1, "course": "PY", "status": "started"})
    assert first["action"] == "created" and first["key"] == {"member_id": 1, "course": "PY"}
    sql.write(table, key, {"member_id": 1, "course": "GO", "status": "started"})
    done = sql.write(table, key, {"member_id": 1, "course": "PY", "status": "done"}, "upsert")
    assert done["action"] == "updated"
    assert database.rows(table) == [
        {"member_id": 1, "course": "GO", "status": "started"},
        {"member_id": 1, "course": "PY", "status": "done"},
    ]


def test_sql_upsert_on_columns_without_a_unique_index(database: Database) -> None:
    table = database.create("loose", sa.Column("code", sa.String(10)), sa.Column("n", sa.Integer))
    sql = database.connector()
    assert sql.write(table, "code", {"code": "a", "n": 1})["action"] == "created"
    assert sql.write(table, "code", {"code": "a", "n": 2})["action"] == "updated"
    assert database.rows(table) == [{"code": "a", "n": 2}]


def test_sql_delete_mode_and_delete_method(database: Database) -> None:
    table = activities(database)
    sql = database.connector()
    sql.write(table, ["member_id", "course"], {"member_id": 1, "course": "PY"}, "insert")
    sql.write(table, ["member_id", "course"], {"member_id": 2, "course": "PY"}, "insert")
    gone = sql.write(table, ["member_id", "course"], {"member_id": 1, "course": "PY"}, "delete")
    assert gone["action"] == "deleted"
    again = sql.write(table, ["member_id", "course"], {"member_id": 1, "course": "PY"}, "delete")
    assert again["action"] == "unchanged"
    assert sql.delete(table, {"member_id": 2, "course": "PY"}) is True
    assert sql.delete(table, {"member_id": 2, "course": "PY"}) is False
    assert database.rows(table) == []


def test_sql_write_needs_the_key_columns_in_data(database: Database) -> None:
    table = members(database)
    with pytest.raises(RecordError, match="key column 'email' is missing"):
        database.connector().write(table, "email", {"id": 1}, "upsert")


def test_sql_write_refuses_bad_modes_and_shapes(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    with pytest.raises(RecordError, match="unknown write mode"):
        sql.write(table, "id", {"id": 1}, "merge")
    with pytest.raises(RecordError, match="must be an object"):
        sql.write(table, "id", [1], "upsert")  # type: ignore[arg-type]
    with pytest.raises(RecordError, match="'name' takes a single value"):
        sql.write(table, "id", {"id": 1, "email": "e", "name": {"first": "A"}}, "upsert")
    with pytest.raises(RecordError, match="'joined_at' needs an ISO-8601"):
        sql.write(table, "id", {"id": 1, "email": "e", "joined_at": "yesterday"}, "upsert")


def test_sql_integrity_error_is_a_record_error(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    sql.write(table, "id", {"id": 1, "email": "a@x.org"}, "insert")
    with pytest.raises(RecordError) as dup:
        sql.write(table, "id", {"id": 2, "email": "a@x.org"}, "insert")
    assert not dup.value.retryable
    assert "unique" in dup.value.message.lower()
    with pytest.raises(RecordError) as null:
        sql.write(table, "id", {"id": 3, "name": "no email"}, "insert")
    assert "email" in null.value.message.lower()
    assert "password" not in null.value.message.lower()


# reads


def test_sql_select_filters_orders_and_limits(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    for n, name in enumerate(["Ann", "Bob", "Ann", None], start=1):
        sql.write(table, "id", {"id": n, "email": f"{n}@x.org", "name": name}, "insert")
    assert [r["id"] for r in sql.select(table, {"name": "Ann"})] == [1, 3]
    assert [r["id"] for r in sql.select(table, {"name": None})] == [4]
    assert [r["id"] for r in sql.select(table, {"name": "Ann", "id": 3})] == [3]
    assert sql.select(table, {"name": "Zed"}) == []
    assert [r["id"] for r in sql.select(table, order_by=["-id"], limit=2)] == [4, 3]
    by_name = [r["id"] for r in sql.select(table, None, order_by=["name", "-id"])]
    assert [n for n in by_name if n != 4] == [3, 1, 2]  # where NULL sorts is the database's
    with pytest.raises(RecordError, match="limit"):
        sql.select(table, limit=0)
    with pytest.raises(RecordError, match="single value"):
        sql.select(table, {"id": [1, 2]})


def test_sql_select_values_are_json_safe(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    sql.write(
        table,
        "id",
        {
            "id": 1,
            "email": "a@x.org",
            "score": "12.25",
            "born": "1990-02-03",
            "joined_at": "2024-05-01T12:00:00+02:00",
        },
        "insert",
    )
    (row,) = sql.select(table, {"born": "1990-02-03"})
    assert row["score"] == 12.25
    assert row["born"] == "1990-02-03"
    assert row["joined_at"] == "2024-05-01T10:00:00"  # stored as UTC in a naive column


def test_sql_json_values_of_every_kind() -> None:
    from datetime import date, datetime, timedelta
    from decimal import Decimal

    assert to_json_value(Decimal("1.10")) == 1.1
    assert to_json_value(Decimal("12345678901234567890.123")) == "12345678901234567890.123"
    assert to_json_value(Decimal("NaN")) == "NaN"
    assert to_json_value(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05"
    assert to_json_value([date(2024, 1, 2), timedelta(seconds=90)]) == ["2024-01-02", 90.0]
    assert to_json_value(b"\x00\x01") == "AAE="
    u = uuid.uuid4()
    assert to_json_value({"id": u}) == {"id": str(u)}


# names and permissions


def test_sql_unknown_table_and_columns_are_named(database: Database) -> None:
    table = members(database)
    sql = database.connector()
    with pytest.raises(RecordError, match="unknown table 'no_such_table'"):
        sql.select("no_such_table")
    with pytest.raises(RecordError, match="unknown table"):
        sql.write("no_such_table; DROP TABLE x", "id", {"id": 1}, "upsert")
    with pytest.raises(RecordError, match=f"unknown column 'colour' in table '{table}'"):
        sql.write(table, "id", {"id": 1, "email": "e", "colour": "red"}, "upsert")
    with pytest.raises(RecordError, match="unknown column 'colour'"):
        sql.select(table, {"colour": "red"})
    with pytest.raises(RecordError, match="unknown column 'nope'"):
        sql.select(table, order_by=["-nope"])
    with pytest.raises(RecordError, match="unknown column 'ref'"):
        sql.write(table, "ref", {"ref": 1, "email": "e"}, "upsert")


def test_sql_allow_tables_limits_what_may_be_used(database: Database) -> None:
    allowed = members(database)
    other = activities(database)
    sql = database.connector(allow_tables=[allowed])
    sql.write(allowed, "id", {"id": 1, "email": "a@x.org"}, "insert")
    assert len(sql.select(allowed)) == 1
    with pytest.raises(RecordError, match=f"table '{other}' is not allowed"):
        sql.select(other)
    with pytest.raises(RecordError, match="not allowed"):
        sql.write(other, ["member_id", "course"], {"member_id": 1, "course": "PY"}, "insert")
    assert database.rows(other) == []


# availability


def _unreachable_url(database: Database, tmp_path: Any) -> str:
    if database.backend == "sqlite":
        return f"sqlite:///{tmp_path / 'missing-dir' / 'data.db'}"
    url = make_url(database.url).set(port=free_port(), password="hunter2-secret")
    return url.render_as_string(hide_password=False)


def test_sql_unreachable_database_is_connect_failed(database: Database, tmp_path: Any) -> None:
    sql = build_connector(
        "sql", {"url": _unreachable_url(database, tmp_path)}, policy=OutboundPolicy()
    )
    assert isinstance(sql, SqlConnector)
    for attempt in (
        lambda: sql.select("members"),
        lambda: sql.write("members", "id", {"id": 1}, "upsert"),
    ):
        with pytest.raises(ConnectFailed) as err:
            attempt()
        assert isinstance(err.value, TransientError) and err.value.retryable
        assert "hunter2" not in str(err.value) and err.value.url is None
