"""What the console's wizard needs of the API: a test of a subscription that sends a sample
event of one of its types through its mapping (``POST /subscriptions/{id}/test`` with a
body), against a real receiver on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook
from werkzeug import Request, Response

from ihook.services.deliveries import sample_of
from ihook.services.event_types import BUILTIN, check_data
from tests.support import subscribe


@pytest.fixture
def settings(settings):
    return settings.replace(allow_http=True, delivery_timeout=5)


@pytest.fixture
def received(httpserver) -> tuple[str, list[tuple[dict, bytes]]]:
    """A receiver's URL and the requests it got (it answers 200)."""
    seen: list[tuple[dict, bytes]] = []

    def handle(request: Request) -> Response:
        seen.append((dict(request.headers), request.get_data()))
        return Response(json.dumps({"ok": True}), status=200)

    httpserver.expect_request("/in", method="POST").respond_with_handler(handle)
    return httpserver.url_for("/in"), seen


def test_a_sample_test_goes_through_the_mapping_and_is_signed(client, received):
    url, seen = received
    sub = subscribe(
        client,
        url,
        event_types=["record.created", "member.*"],
        mapping={"key": "data.key", "kind": "type"},
        fixed_data={"source": "ihook"},
    )
    answer = client.post(
        f"/api/v1/subscriptions/{sub['id']}/test", json={"event_type": "record.created"}
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["succeeded"] is True and answer.json["status_code"] == 200
    payload = Webhook(sub["secret"]).verify(seen[-1][1], seen[-1][0])
    assert payload["type"] == "record.created"
    assert payload["data"] == {"key": "key", "kind": "record.created", "source": "ihook"}

    given = {"event_type": "member.joined", "data": {"key": "m-42"}}
    answer = client.post(f"/api/v1/subscriptions/{sub['id']}/test", json=given)
    assert answer.json["succeeded"] is True
    payload = json.loads(seen[-1][1])
    assert payload["data"] == {"key": "m-42", "kind": "member.joined", "source": "ihook"}

    # no body: the ihook.test event as it is, unmapped (as before)
    plain = client.post(f"/api/v1/subscriptions/{sub['id']}/test")
    assert plain.status_code == 200 and plain.json["succeeded"] is True
    payload = json.loads(seen[-1][1])
    assert payload["type"] == "ihook.test" and payload["data"]["subscription_id"] == sub["id"]
    log = client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json
    assert [d["event_type"] for d in log] == ["ihook.test", "member.joined", "record.created"]


def test_a_sample_test_is_refused_when_it_cannot_be_sent(client, received):
    url, seen = received
    sub = subscribe(client, url, event_types=["record.*"], fixed_data={"source": "ihook"})
    path = f"/api/v1/subscriptions/{sub['id']}/test"
    cases = [
        ({"event_type": "invoice.paid"}, "event_type", "not one of the subscription's"),
        ({"event_type": "record.*"}, "event_type", "not one of the subscription's"),
        ({"event_type": "record.created", "data": {"key": "k"}}, "data", "required property"),
        ({"event_type": "record.x", "data": [1]}, "event_type", "fixed_data needs the data"),
        ({"event_type": ""}, "event_type", "Length"),
    ]
    for body, field, reason in cases:
        answer = client.post(path, json=body)
        assert answer.status_code == 422, (body, answer.json)
        errors = answer.json["errors"]["json"]
        assert reason in " ".join(errors[field]), (body, errors)
    assert seen == [] and client.get(f"{path.rsplit('/', 1)[0]}/deliveries").json == []
    assert client.post("/api/v1/subscriptions/sub_missing/test", json={}).status_code == 404


def test_sample_data_meets_each_built_in_schema():
    for name, (_, schema) in BUILTIN.items():
        sample = sample_of(schema)
        assert isinstance(sample, dict) and set(schema["required"]) <= set(sample), name
    nested = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 5},
            "tags": {"type": "array", "items": {"type": "string"}},
            "state": {"enum": ["open", "shut"]},
            "note": {"type": ["null", "string"]},
            "paid": {"type": "boolean"},
        },
    }
    assert sample_of(nested) == {
        "id": 5,
        "tags": ["tags"],
        "state": "open",
        "note": "note",
        "paid": True,
    }


def test_sample_data_is_valid_against_built_in_schemas(platform):
    with platform.db.read() as session:
        for name, (_, schema) in BUILTIN.items():
            check_data(session, name, sample_of(schema))  # raises Invalid when not
