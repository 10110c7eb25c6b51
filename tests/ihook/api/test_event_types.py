"""``/api/v1/event-types`` and publishing through ``/api/v1/events`` (DESIGN.md §3, §6)."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from ihook.models import Event
from ihook.services.event_types import BUILTIN
from ihook.services.records import SqlRecordStore

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

INVOICE = {
    "type": "object",
    "required": ["amount"],
    "properties": {"amount": {"type": "integer"}, "lines": {"type": "array"}},
}
BUILTIN_NAMES = [
    "ihook.test",
    "record.created",
    "record.deleted",
    "record.updated",
    "run.failed",
    "run.succeeded",
    "schedule.fired",
]


def assert_error(answer, status: int) -> dict:
    """The answer is ``status`` in flask-smorest's error shape; returns its body."""
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    body = answer.json
    assert body["code"] == status and body["status"] == HTTPStatus(status).phrase
    assert isinstance(body["message"], str) and body["message"]
    return body


def create(client, name: str = "invoice.paid", **fields) -> dict:
    answer = client.post("/api/v1/event-types", json={"name": name, **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def publish(client, **body):
    return client.post("/api/v1/events", json=body)


def stored_events(client) -> list[dict]:
    answer = client.get("/api/v1/events")
    assert answer.status_code == 200
    return answer.json


def test_builtins_are_listed_with_schemas_and_cannot_change(client):
    listed = client.get("/api/v1/event-types").json
    assert [t["name"] for t in listed] == BUILTIN_NAMES
    for item in listed:
        assert item["builtin"] is True
        assert item["created_at"] is None and item["updated_at"] is None
        assert item["description"]
        schema = item["schema"]
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == item["name"] and schema["type"] == "object"
        assert schema["additionalProperties"] is True and schema["required"]
        assert "$id" not in schema
    assert client.get("/api/v1/event-types/run.failed").json == listed[4]

    taken = client.post("/api/v1/event-types", json={"name": "record.created"})
    assert "built-in" in assert_error(taken, 409)["message"]
    changed = client.put("/api/v1/event-types/run.failed", json={"description": "mine"})
    assert "cannot be changed" in assert_error(changed, 409)["message"]
    deleted = client.delete("/api/v1/event-types/ihook.test")
    assert "cannot be deleted" in assert_error(deleted, 409)["message"]
    assert client.get("/api/v1/event-types").json == listed


def test_custom_types_crud(client):
    made = create(client, description="An invoice was paid", schema=INVOICE)
    assert made["name"] == "invoice.paid" and made["builtin"] is False
    assert made["description"] == "An invoice was paid" and made["schema"] == INVOICE
    assert made["created_at"] and made["updated_at"]
    bare = create(client, "a:b_c-d.E")
    assert bare["schema"] is None and bare["description"] == ""

    names = [t["name"] for t in client.get("/api/v1/event-types").json]
    assert names == [*BUILTIN_NAMES, "a:b_c-d.E", "invoice.paid"]
    assert client.get("/api/v1/event-types/invoice.paid").json == made

    again = client.post("/api/v1/event-types", json={"name": "invoice.paid"})
    body = assert_error(again, 409)
    assert body["message"] == "an event type named 'invoice.paid' exists"
    assert body["errors"]["json"] == {"name": ["already taken"]}

    described = client.put("/api/v1/event-types/invoice.paid", json={"description": "Paid"})
    assert described.status_code == 200, described.json
    assert described.json["description"] == "Paid" and described.json["schema"] == INVOICE
    assert described.json["updated_at"] >= made["updated_at"]
    unschema = client.put("/api/v1/event-types/invoice.paid", json={"schema": None})
    assert unschema.json["schema"] is None and unschema.json["description"] == "Paid"
    same_name = {"name": "invoice.paid", "schema": INVOICE}
    assert client.put("/api/v1/event-types/invoice.paid", json=same_name).json["schema"] == INVOICE
    renamed = client.put("/api/v1/event-types/invoice.paid", json={"name": "other"})
    assert assert_error(renamed, 422)["errors"]["json"] == {"name": ["must be the name in the URL"]}

    assert client.delete("/api/v1/event-types/invoice.paid").status_code == 204
    for answer in (
        client.get("/api/v1/event-types/invoice.paid"),
        client.put("/api/v1/event-types/invoice.paid", json={"description": "x"}),
        client.delete("/api/v1/event-types/invoice.paid"),
    ):
        assert assert_error(answer, 404)["message"] == "event type 'invoice.paid' not found"
    assert assert_error(client.get("/api/v1/event-types/" + "x" * 300), 404)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("invoice.*", "'*'"),
        ("", "1 to 200"),
        ("x" * 201, "1 to 200"),
        (".hidden", "starting with"),
        ("with space", "letters, digits"),
        ("line\n", "letters, digits"),
    ],
)
def test_bad_names_are_422(client, name, reason):
    body = assert_error(client.post("/api/v1/event-types", json={"name": name}), 422)
    assert list(body["errors"]["json"]) == ["name"]
    assert reason in body["errors"]["json"]["name"][0]


def test_a_schema_must_be_a_json_schema(client):
    broken = client.post("/api/v1/event-types", json={"name": "bad", "schema": {"type": "integr"}})
    body = assert_error(broken, 422)
    assert list(body["errors"]["json"]) == ["schema"]
    assert body["errors"]["json"]["schema"][0].startswith("invalid JSON Schema: ")
    not_object = client.post("/api/v1/event-types", json={"name": "bad", "schema": [1]})
    assert list(assert_error(not_object, 422)["errors"]["json"]) == ["schema"]
    create(client, "good", schema=INVOICE)
    change = client.put("/api/v1/event-types/good", json={"schema": {"required": "amount"}})
    assert list(assert_error(change, 422)["errors"]["json"]) == ["schema"]
    assert client.get("/api/v1/event-types/good").json["schema"] == INVOICE
    assert [t["name"] for t in client.get("/api/v1/event-types").json][-1] == "good"


def test_schema_download(client):
    create(client, schema=INVOICE)
    answer = client.get("/api/v1/event-types/invoice.paid/schema")
    assert answer.status_code == 200
    assert answer.mimetype == "application/schema+json"
    assert answer.headers["Content-Disposition"] == (
        'attachment; filename="invoice.paid.schema.json"'
    )
    assert json.loads(answer.get_data(as_text=True)) == INVOICE

    builtin = client.get("/api/v1/event-types/record.created/schema")
    assert builtin.status_code == 200
    assert json.loads(builtin.get_data()) == BUILTIN["record.created"][1]
    assert 'filename="record.created.schema.json"' in builtin.headers["Content-Disposition"]

    create(client, "no.schema")
    none = client.get("/api/v1/event-types/no.schema/schema")
    assert assert_error(none, 404)["message"] == "event type 'no.schema' has no schema"
    assert assert_error(client.get("/api/v1/event-types/missing/schema"), 404)
    assert assert_error(client.raw.get("/api/v1/event-types/invoice.paid/schema"), 401)


def test_publish_checks_data_against_the_type_schema(client):
    create(client, schema=INVOICE)
    ok = publish(client, type="invoice.paid", data={"amount": 10, "extra": True})
    assert ok.status_code == 202, ok.json

    wrong = publish(client, type="invoice.paid", data={"amount": "ten", "lines": 3})
    body = assert_error(wrong, 422)
    assert "invoice.paid" in body["message"]
    assert sorted(body["errors"]["json"]["data"]) == [
        "$.amount: 'ten' is not of type 'integer'",
        "$.lines: 3 is not of type 'array'",
    ]
    missing = assert_error(publish(client, type="invoice.paid", data=[]), 422)
    assert missing["errors"]["json"]["data"] == ["$: [] is not of type 'object'"]
    required = assert_error(publish(client, type="invoice.paid", data={}), 422)
    assert required["errors"]["json"]["data"] == ["$: 'amount' is a required property"]
    assert [e["id"] for e in stored_events(client)] == [ok.json["event_id"]]

    # A changed schema applies to the next publish (the compiled one is not reused).
    loose = {"type": "object", "properties": {"amount": {"type": "string"}}}
    assert client.put("/api/v1/event-types/invoice.paid", json={"schema": loose}).status_code == 200
    assert publish(client, type="invoice.paid", data={"amount": "ten"}).status_code == 202
    assert assert_error(publish(client, type="invoice.paid", data={"amount": 10}), 422)
    client.put("/api/v1/event-types/invoice.paid", json={"schema": None})
    assert publish(client, type="invoice.paid", data="anything").status_code == 202

    unregistered = publish(client, type="nobody.knows", data={"any": ["thing"]})
    assert unregistered.status_code == 202
    event = client.get(f"/api/v1/events/{unregistered.json['event_id']}").json
    assert event["type"] == "nobody.knows" and event["data"] == {"any": ["thing"]}


def test_many_violations_are_capped_best_first(client):
    many = {"type": "array", "items": {"type": "integer"}}
    create(client, "numbers", schema=many)
    body = assert_error(publish(client, type="numbers", data=["x"] * 50), 422)
    messages = body["errors"]["json"]["data"]
    assert len(messages) == 20
    assert all(m.endswith(": 'x' is not of type 'integer'") for m in messages)
    assert len(set(messages)) == 20
    huge = assert_error(publish(client, type="numbers", data=["y" * 5000]), 422)
    assert len(huge["errors"]["json"]["data"][0]) < 400


def test_builtin_types_are_checked_on_publish(client):
    bad = publish(client, type="ihook.test", data={"message": "hi"})
    assert assert_error(bad, 422)["errors"]["json"]["data"] == [
        "$: 'subscription_id' is a required property"
    ]
    fired = {
        "slot": "2026-01-01T00:00:00Z",
        "window": {"start": "2025-12-31T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    }
    assert publish(client, type="schedule.fired", data=fired).status_code == 202
    assert stored_events(client)[0]["type"] == "schedule.fired"
    assert len(stored_events(client)) == 1


def test_remote_refs_are_never_fetched(client, httpserver):
    httpserver.expect_request("/amount.json").respond_with_json({"type": "integer"})
    remote = {
        "type": "object",
        "properties": {"amount": {"$ref": httpserver.url_for("/amount.json")}},
    }
    create(client, "remote", schema=remote)
    answer = publish(client, type="remote", data={"amount": 1})
    body = assert_error(answer, 422)
    assert "cannot be resolved" in body["errors"]["json"]["data"][0]
    assert httpserver.log == []
    assert stored_events(client) == []


def test_publish_id_is_idempotent(client):
    first = publish(client, type="order.placed", data={"n": 1}, id="order-1")
    assert first.status_code == 202, first.json
    again = publish(client, type="order.placed", data={"n": 1}, id="order-1")
    assert again.status_code == 200
    assert again.json == {"event_id": first.json["event_id"], "runs": [], "duplicate": True}
    alias = publish(client, type="order.placed", data={"n": 1}, idempotency_key="order-1")
    assert alias.status_code == 200 and alias.json["event_id"] == first.json["event_id"]
    both = publish(client, type="order.placed", data={}, id="order-1", idempotency_key="order-1")
    assert both.status_code == 200
    events = stored_events(client)
    assert [e["id"] for e in events] == [first.json["event_id"]]
    assert events[0]["dedupe_key"] == "order-1"

    differ = publish(client, type="order.placed", data={}, id="a", idempotency_key="b")
    assert list(assert_error(differ, 422)["errors"]["json"]) == ["id"]
    for bad in ("", "x" * 201):
        assert list(assert_error(publish(client, type="t", data={}, id=bad), 422)["errors"]["json"])
    assert publish(client, type="order.placed", data={"n": 2}, id="order-2").status_code == 202
    assert len(stored_events(client)) == 2


def test_environment_is_stored_and_listed(client):
    live = publish(client, type="order.placed", data={})
    sandbox = publish(client, type="order.placed", data={}, environment="sandbox")
    assert live.status_code == sandbox.status_code == 202
    listed = {e["id"]: e["environment"] for e in stored_events(client)}
    assert listed == {live.json["event_id"]: "live", sandbox.json["event_id"]: "sandbox"}
    one = client.get(f"/api/v1/events/{sandbox.json['event_id']}").json
    assert one["environment"] == "sandbox"
    only = client.get("/api/v1/events", query_string={"environment": "sandbox"}).json
    assert [e["id"] for e in only] == [sandbox.json["event_id"]]
    bogus = publish(client, type="order.placed", data={}, environment="staging")
    assert list(assert_error(bogus, 422)["errors"]["json"]) == ["environment"]
    assert len(stored_events(client)) == 2


def test_record_store_events_meet_the_builtin_schemas(client, platform):
    store = SqlRecordStore(platform.db)
    assert store.write("members", "m-1", {"id": "m-1", "name": "Ada"}, mode="upsert") == "created"
    assert store.write("members", "m-1", {"id": "m-1", "name": "Bo"}, mode="upsert") == "updated"
    assert store.delete("members", "m-1")
    with platform.db.session() as session:
        events = list(session.scalars(select(Event).order_by(Event.id)))
    assert [e.type for e in events] == ["record.created", "record.updated", "record.deleted"]
    for event in events:
        validator = Draft202012Validator(BUILTIN[event.type][1])
        assert list(validator.iter_errors(event.data)) == [], event.data
        assert event.environment == "live"
        # What the store publishes, the API takes back under the same type.
        assert publish(client, type=event.type, data=event.data).status_code == 202


def test_openapi_documents_every_route(client):
    spec = client.raw.get("/api/openapi.json").json
    paths = {
        "/api/v1/event-types": {"get", "post"},
        "/api/v1/event-types/{name}": {"get", "put", "delete"},
        "/api/v1/event-types/{name}/schema": {"get"},
    }
    for path, methods in paths.items():
        operations = spec["paths"][path]
        assert methods <= set(operations)
        for method in methods:
            assert operations[method]["summary"], (path, method)
    download = spec["paths"]["/api/v1/event-types/{name}/schema"]["get"]["responses"]["200"]
    assert "application/schema+json" in download["content"]
    publish_body = spec["components"]["schemas"]["Publish"]["properties"]
    assert {"id", "environment", "idempotency_key"} <= set(publish_body)
    assert publish_body["idempotency_key"]["deprecated"] is True
