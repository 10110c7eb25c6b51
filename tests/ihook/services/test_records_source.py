"""A records collection as a transfer source: read from our own database in key order."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors import RecordsConnector, SqlConnector, build_connector
from connectors.outbound import OutboundPolicy
from ihook.models import Record
from ihook.services.records import SqlRecordStore
from workflows import DefinitionError, Resources, run_workflow, validate_definition

COUNT = 1234


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_records_move_to_a_sql_table_once_each(platform, tmp_path):
    with platform.db.session() as session:
        session.add_all(
            Record(collection="members", key=f"m-{n:05d}", data={"id": n, "name": f"M{n}"})
            for n in range(COUNT)
        )
        session.add(Record(collection="others", key="x", data={"id": -1, "name": "not me"}))
    target_url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(target_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)"))
    policy = OutboundPolicy()
    resources = Resources(
        connectors={
            "records": RecordsConnector(SqlRecordStore(platform.db)),
            "crm": build_connector("sql", {"url": target_url}, policy=policy),
        }
    )
    step = {
        "id": "copy",
        "type": "transfer",
        "source": {"connector": "records", "collection": "members"},
        "target": {"connector": "crm", "table": "contacts", "key": "id"},
        "chunk_size": 500,
    }
    definition = validate_definition({"name": "copy", "steps": [step]}, connectors={"crm": "sql"})
    event = {"id": "evt_1", "type": "t", "source": "t", "data": {}, "headers": {}}
    for _ in range(2):  # a second run upserts the same rows: nothing doubles
        result = run_workflow(definition, event, resources=resources, run={"id": "run_1"})
        assert result.status == "succeeded", result.error
        assert result.output["read"] == COUNT and result.output["written"] == COUNT
        assert result.output["chunks"] == 3
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT count(*), min(id), max(id) FROM contacts")).one()
    assert tuple(rows) == (COUNT, 0, COUNT - 1)
    assert isinstance(resources.connectors["crm"], SqlConnector)


def test_a_records_source_takes_no_sql_or_http_fields():
    step = {
        "id": "copy",
        "type": "transfer",
        "source": {"connector": "records", "collection": "members", "where": {"a": "b"}},
        "target": {"connector": "records", "collection": "copy", "key": "id"},
    }
    with pytest.raises(DefinitionError) as refused:
        validate_definition({"name": "t", "steps": [step]})
    assert "source.where" in refused.value.errors["steps.copy"]
