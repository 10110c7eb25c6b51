"""The write steps through a real sql connector (SQLite), and how definitions are checked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import RecordsConnector, SqlConnector, build_connector
from connectors.outbound import OutboundPolicy
from workflows import DefinitionError, Resources, RunResult, validate_definition

RunSteps = Callable[..., RunResult]

KINDS = {"crm_db": "sql", "crm": "http"}


def only(result: RunResult) -> Any:
    assert result.status == "succeeded", result.error
    return result.output


@pytest.fixture
def sql_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT)"
        ))
        conn.execute(sa.text(
            "CREATE TABLE activities (member_id INTEGER, course TEXT, status TEXT,"
            " PRIMARY KEY (member_id, course))"
        ))
    engine.dispose()
    return url


@pytest.fixture
def resources(store: Any, sql_url: str) -> Resources:
    """The records store plus a sql connector called ``crm_db`` (overrides conftest's)."""
    return Resources(
        connectors={
            "records": RecordsConnector(store),
            "crm_db": build_connector("sql", {"url": sql_url}, policy=OutboundPolicy()),
        },
        outbound=OutboundPolicy(allow_private=True),
    )


def rows(resources: Resources, table: str) -> list[dict[str, Any]]:
    connector = resources.connectors["crm_db"]
    assert isinstance(connector, SqlConnector)
    return connector.select(table)


def test_sql_step_upsert_by_composite_key(run_steps: RunSteps, resources: Resources) -> None:
    steps = [
        {"id": "a", "type": "transform",
         "mapping": {"member_id": "data.learner", "course": "data.course", "status": "data.s"}},
        {"id": "save", "type": "upsert", "connector": "crm_db", "table": "activities",
         "key": ["member_id", "course"], "data": "steps.a"},
    ]
    out = only(run_steps(steps, {"learner": 7, "course": "PY", "s": "started"}))
    assert out == {
        "table": "activities",
        "key": {"member_id": 7, "course": "PY"},
        "action": "created",
        "data": {"member_id": 7, "course": "PY", "status": "started"},
    }
    assert only(run_steps(steps, {"learner": 7, "course": "PY", "s": "started"}))["action"] == (
        "unchanged"
    )
    assert only(run_steps(steps, {"learner": 7, "course": "PY", "s": "done"}))["action"] == (
        "updated"
    )
    assert rows(resources, "activities") == [{"member_id": 7, "course": "PY", "status": "done"}]


def test_sql_step_collection_field_names_the_table(run_steps: RunSteps) -> None:
    steps = [{"id": "i", "type": "insert", "connector": "crm_db", "collection": "members",
              "key": "email"}]
    out = only(run_steps(steps, {"email": "a@x.org", "name": "Ann"}))
    assert out["table"] == "members" and out["action"] == "created"
    failed = run_steps(steps, {"email": "a@x.org", "name": "Ann"})
    assert failed.status == "failed" and not failed.retryable
    assert "RecordError" in (failed.error or "") and "already exists" in (failed.error or "")


def test_sql_step_update_and_delete(run_steps: RunSteps, resources: Resources) -> None:
    only(run_steps([{"id": "i", "type": "insert", "connector": "crm_db", "table": "members",
                     "key": "id"}], {"id": 1, "email": "a@x.org"}))
    update = [{"id": "u", "type": "update", "connector": "crm_db", "table": "members",
               "key": "id"}]
    assert only(run_steps(update, {"id": 1, "name": "Ann"}))["action"] == "updated"
    missing = run_steps(update, {"id": 2, "name": "Bob"})
    assert missing.status == "failed" and "no row with key" in (missing.error or "")
    delete = [{"id": "d", "type": "delete", "connector": "crm_db", "table": "members",
               "key": "id"}]
    assert only(run_steps(delete, {"id": 1})) == {"table": "members", "key": {"id": 1},
                                                  "deleted": True}
    assert only(run_steps(delete, {"id": 1}))["deleted"] is False
    assert rows(resources, "members") == []


def test_sql_step_foreach_writes_every_item(run_steps: RunSteps, resources: Resources) -> None:
    steps = [{"id": "s", "type": "upsert", "connector": "crm_db", "table": "members",
              "key": "email", "foreach": "data.people", "data": "item"}]
    people = [{"id": n, "email": f"{n}@x.org"} for n in range(1, 4)]
    assert [o["action"] for o in only(run_steps(steps, {"people": people}))] == ["created"] * 3
    assert [r["email"] for r in rows(resources, "members")] == ["1@x.org", "2@x.org", "3@x.org"]


def test_sql_step_unknown_column_fails_for_good(run_steps: RunSteps) -> None:
    steps = [{"id": "s", "type": "upsert", "connector": "crm_db", "table": "members",
              "key": "email"}]
    result = run_steps(steps, {"email": "a@x.org", "colour": "red"})
    assert result.status == "failed" and result.failed_step == "s" and not result.retryable
    assert "unknown column 'colour'" in (result.error or "")


def test_sql_step_unreachable_database_is_retryable(
    run_steps: RunSteps, resources: Resources, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'gone' / 'crm.db'}"
    connectors = dict(resources.connectors)
    connectors["crm_db"] = build_connector("sql", {"url": url}, policy=OutboundPolicy())
    resources.connectors = connectors
    steps = [{"id": "s", "type": "upsert", "connector": "crm_db", "table": "members",
              "key": "email"}]
    result = run_steps(steps, {"email": "a@x.org"})
    assert result.status == "failed" and result.retryable
    assert "ConnectFailed" in (result.error or "")


def test_sql_step_records_keep_their_behaviour(run_steps: RunSteps, store: Any) -> None:
    steps = [{"id": "s", "type": "upsert", "collection": "members", "key": ["id", "email"]}]
    out = only(run_steps(steps, {"id": 1, "email": "a@x.org"}))
    assert out["key"] == "1:a@x.org" and out["collection"] == "members"
    assert store.get("members", "1:a@x.org") == {"id": 1, "email": "a@x.org"}


# validation


def step_errors(step: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(DefinitionError) as err:
        validate_definition({"name": "w", "steps": [step]}, connectors=KINDS)
    return err.value.errors[f"steps.{step['id']}"]


def test_sql_validation_send_cannot_use_a_sql_connector() -> None:
    errors = step_errors({"id": "s", "type": "send", "connector": "crm_db"})
    assert errors["connector"] == ["Connector 'crm_db' is sql; send needs http."]


def test_sql_validation_write_needs_records_or_sql() -> None:
    errors = step_errors({"id": "u", "type": "upsert", "connector": "crm", "table": "t",
                          "key": "id"})
    assert errors["connector"] == ["Connector 'crm' is http; upsert needs records or sql."]


@pytest.mark.parametrize(
    ("step", "field_name", "message"),
    [
        ({"connector": "crm_db", "table": "members", "collection": "members"}, "collection",
         "Give collection or table (exactly one)."),
        ({"connector": "crm_db"}, "collection", "Give collection or table (exactly one)."),
        ({"table": "members"}, "table",
         "table is for sql connectors; the records connector takes collection."),
        ({"connector": "crm_db", "table": ""}, "table", "Length must be between 1 and 128."),
    ],
)
def test_sql_validation_of_the_target(step: dict[str, Any], field_name: str, message: str) -> None:
    errors = step_errors({"id": "u", "type": "upsert", "key": "id", **step})
    assert message in errors[field_name]


def test_sql_validation_accepts_table_or_collection() -> None:
    definition = validate_definition(
        {"name": "w", "steps": [
            {"id": "a", "type": "upsert", "connector": "crm_db", "table": "Members", "key": "id"},
            {"id": "b", "type": "delete", "connector": "crm_db", "collection": "members",
             "key": ["id"]},
        ]},
        connectors=KINDS,
    )
    assert [s["connector"] for s in definition["steps"]] == ["crm_db", "crm_db"]
