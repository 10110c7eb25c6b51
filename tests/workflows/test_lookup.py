"""The lookup step: records by templated key, sql rows by jmespath filters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors import RecordsConnector, build_connector
from connectors.outbound import OutboundPolicy
from workflows import DefinitionError, Resources, RunResult, validate_definition

RunSteps = Callable[..., RunResult]

KINDS = {"crm_db": "sql", "crm": "http"}


def only(result: RunResult) -> Any:
    assert result.status == "succeeded", result.error
    return result.output


@pytest.fixture
def resources(store: Any, tmp_path: Path) -> Resources:
    """The records store plus ``crm_db``, a SQLite file with a few members."""
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT UNIQUE, team TEXT,"
            " joined DATE)"
        ))
        conn.execute(sa.text(
            "INSERT INTO members VALUES (1, 'ann@x.org', 'blue', '2024-01-02'),"
            " (2, 'bob@x.org', 'blue', NULL), (3, 'cy@x.org', NULL, NULL)"
        ))
    engine.dispose()
    return Resources(
        connectors={
            "records": RecordsConnector(store),
            "crm_db": build_connector("sql", {"url": url}, policy=OutboundPolicy()),
        },
        outbound=OutboundPolicy(allow_private=True),
    )


# records


def test_lookup_record_by_templated_key(run_steps: RunSteps, store: Any) -> None:
    store.write("members", "m7", {"name": "Ann"}, mode="insert")
    steps = [{"id": "m", "type": "lookup", "collection": "members", "key": "m{{ data.id }}"}]
    assert only(run_steps(steps, {"id": 7})) == {"name": "Ann"}
    assert only(run_steps(steps, {"id": 8})) is None


def test_lookup_record_by_compound_key_written_by_upsert(run_steps: RunSteps) -> None:
    steps = [
        {"id": "save", "type": "upsert", "collection": "activities", "key": ["m", "c"]},
        {"id": "read", "type": "lookup", "collection": "activities",
         "key": "{{ data.m }}:{{ data.c }}"},
    ]
    assert only(run_steps(steps, {"m": 1, "c": "PY", "done": True})) == {
        "m": 1, "c": "PY", "done": True,
    }


def test_lookup_required_record_missing_fails(run_steps: RunSteps) -> None:
    steps = [{"id": "m", "type": "lookup", "collection": "members", "key": "{{ data.id }}",
              "required": True}]
    result = run_steps(steps, {"id": 9})
    assert result.status == "failed" and result.failed_step == "m" and not result.retryable
    assert "no record members/9" in (result.error or "")


def test_lookup_in_foreach_enriches_each_item(run_steps: RunSteps, store: Any) -> None:
    store.write("teams", "blue", {"lead": "Ann"}, mode="insert")
    steps = [{"id": "t", "type": "lookup", "collection": "teams", "key": "{{ item }}",
              "foreach": "data.teams"}]
    assert only(run_steps(steps, {"teams": ["blue", "red"]})) == [{"lead": "Ann"}, None]


# sql


def test_lookup_sql_first_row_or_null(run_steps: RunSteps) -> None:
    steps = [{"id": "m", "type": "lookup", "connector": "crm_db", "table": "members",
              "where": {"email": "data.email"}}]
    assert only(run_steps(steps, {"email": "ann@x.org"})) == {
        "id": 1, "email": "ann@x.org", "team": "blue", "joined": "2024-01-02",
    }
    assert only(run_steps(steps, {"email": "zed@x.org"})) is None


def test_lookup_sql_list_with_order_and_limit(run_steps: RunSteps) -> None:
    steps = [{"id": "m", "type": "lookup", "connector": "crm_db", "table": "members",
              "where": {"team": "data.team"}, "one": False, "limit": 10, "order_by": ["-id"]}]
    assert [r["id"] for r in only(run_steps(steps, {"team": "blue"}))] == [2, 1]
    assert only(run_steps(steps, {"team": "green"})) == []
    assert [r["id"] for r in only(run_steps(steps, {"team": None}))] == [3]  # null is NULL
    first = [{**steps[0], "limit": 1}]
    assert [r["id"] for r in only(run_steps(first, {"team": "blue"}))] == [2]


def test_lookup_sql_then_write_with_what_was_found(run_steps: RunSteps, store: Any) -> None:
    steps = [
        {"id": "member", "type": "lookup", "connector": "crm_db", "table": "members",
         "where": {"email": "data.email"}, "required": True},
        {"id": "save", "type": "upsert", "collection": "seen", "key": "id",
         "data": "{id: steps.member.id, team: steps.member.team}"},
    ]
    assert only(run_steps(steps, {"email": "bob@x.org"}))["key"] == "2"
    assert store.get("seen", "2") == {"id": 2, "team": "blue"}
    missing = run_steps(steps, {"email": "zed@x.org"})
    assert missing.status == "failed" and missing.failed_step == "member"
    assert "no row in 'members'" in (missing.error or "")


def test_lookup_sql_unknown_column_fails(run_steps: RunSteps) -> None:
    steps = [{"id": "m", "type": "lookup", "connector": "crm_db", "table": "members",
              "where": {"mail": "data.email"}}]
    result = run_steps(steps, {"email": "ann@x.org"})
    assert result.status == "failed" and "unknown column 'mail'" in (result.error or "")


def test_lookup_collection_on_a_sql_connector_fails_clearly(run_steps: RunSteps) -> None:
    steps = [{"id": "m", "type": "lookup", "connector": "crm_db", "collection": "members",
              "key": "{{ data.id }}"}]
    result = run_steps(steps, {"id": 1})
    assert result.status == "failed"
    assert "connector 'crm_db' is sql; a sql lookup takes table and where" in (result.error or "")


# validation


def lookup_errors(**step: Any) -> dict[str, list[str]]:
    with pytest.raises(DefinitionError) as err:
        validate_definition(
            {"name": "w", "steps": [{"id": "l", "type": "lookup", **step}]}, connectors=KINDS
        )
    return err.value.errors["steps.l"]


@pytest.mark.parametrize(
    ("step", "field_name", "message"),
    [
        ({"collection": "members"}, "key", "Required with collection."),
        ({"collection": "members", "key": "k", "where": {"a": "b"}}, "where",
         "Only with table (sql connectors)."),
        ({"collection": "members", "key": "k", "one": False}, "one",
         "Only with table (sql connectors)."),
        ({"connector": "crm_db", "table": "members", "key": "k"}, "key",
         "Only with collection; sql lookups use where."),
        ({"table": "members"}, "table",
         "table is for sql connectors; the records connector takes collection."),
        ({"connector": "crm_db"}, "collection", "Give collection or table (exactly one)."),
        ({"connector": "crm_db", "table": "members", "limit": 0}, "limit",
         "Must be greater than or equal to 1 and less than or equal to 1000."),
        ({"connector": "crm", "table": "members"}, "connector",
         "Connector 'crm' is http; lookup needs records or sql."),
        ({"connector": "erp", "table": "members"}, "connector",
         "Unknown connector 'erp' (known: crm, crm_db, records)."),
    ],
)
def test_lookup_validation(step: dict[str, Any], field_name: str, message: str) -> None:
    assert message in lookup_errors(**step)[field_name]


def test_lookup_validation_checks_expressions_and_references() -> None:
    errors = lookup_errors(connector="crm_db", table="members",
                           where={"email": "data.[", "team": "steps.later.team"})
    assert any("bad jmespath" in m for m in errors["where.email"])
    assert errors["where.team"] == ["References steps.later, which does not exist."]
    errors = lookup_errors(collection="members", key="{{ data.id ")
    assert any("bad template" in m for m in errors["key"])


def test_lookup_validation_fills_defaults() -> None:
    definition = validate_definition(
        {"name": "w", "steps": [
            {"id": "r", "type": "lookup", "collection": "members", "key": "{{ data.id }}"},
            {"id": "s", "type": "lookup", "connector": "crm_db", "table": "members"},
        ]},
        connectors=KINDS,
    )
    records, sql = definition["steps"]
    assert records["connector"] == "records" and records["required"] is False
    assert (sql["limit"], sql["one"], sql["where"]) == (1, True, {})
