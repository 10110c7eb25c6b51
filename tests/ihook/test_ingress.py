"""POST /hooks/{key}: every answer of DESIGN.md §3, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select, text

from ihook.models import Event, Rejection, Run
from tests.conftest import client_for
from tests.support import LMS_WORKFLOW, completion, signed_headers

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def lms(client):
    """A standard-webhooks endpoint named lms bound to the LMS workflow."""
    created = client.post(
        "/api/v1/endpoints",
        json={"name": "lms", "auth": {"type": "hmac", "scheme": "standard-webhooks"}},
    ).json
    workflow = client.post("/api/v1/workflows", json=LMS_WORKFLOW)
    assert workflow.status_code == 201, workflow.json
    return created


def post_signed(raw, endpoint, body: bytes, msg_id="msg_1", **kw):
    headers = signed_headers(endpoint["secret"], body, msg_id, **kw)
    return raw.post(_path(endpoint), data=body, headers=headers)


def _path(endpoint) -> str:
    return "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]


def count(platform, model) -> int:
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_accepted_event_and_runs_are_committed_before_202(client, lms, platform):
    body = json.dumps(completion()).encode()
    answer = post_signed(client.raw, lms, body)
    assert answer.status_code == 202
    with platform.db.session() as session:
        event = session.get(Event, answer.json["event_id"])
        runs = list(session.scalars(select(Run).where(Run.event_id == event.id)))
    assert event.data == completion()
    assert event.source == "endpoint:lms"
    assert event.dedupe_key == "msg_1"
    assert [r.id for r in runs] == answer.json["runs"]
    assert [r.status for r in runs] == ["queued"]
    assert event.headers["webhook-signature"] == "[redacted]"


def test_same_webhook_id_is_a_duplicate(client, lms, platform):
    body = json.dumps(completion()).encode()
    first = post_signed(client.raw, lms, body, msg_id="msg_dup")
    again = post_signed(client.raw, lms, body, msg_id="msg_dup")
    assert again.status_code == 200
    assert again.json == {"event_id": first.json["event_id"], "duplicate": True}
    assert count(platform, Event) == 1 and count(platform, Run) == 1


def test_malformed_json_is_400_naming_the_parse_error(client, lms):
    answer = post_signed(client.raw, lms, b'{"status": ')
    assert answer.status_code == 400
    assert "malformed JSON body" in answer.json["message"]
    assert "Expecting value" in answer.json["message"]


@pytest.mark.parametrize(
    "change",
    ["tampered body", "wrong secret", "301 s old", "no signature"],
)
def test_bad_signatures_are_401(client, lms, platform, change):
    body = json.dumps(completion()).encode()
    headers = signed_headers(lms["secret"], body, "msg_x")
    if change == "tampered body":
        body = body.replace(b"CS101", b"CS999")
    elif change == "wrong secret":
        headers = signed_headers("whsec_" + "QUJD" * 8, body, "msg_x")
    elif change == "301 s old":
        headers = signed_headers(lms["secret"], body, "msg_x", timestamp=int(time.time()) - 301)
    else:
        del headers["webhook-signature"]
    answer = client.raw.post(_path(lms), data=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json["message"].startswith("authentication failed")
    assert count(platform, Event) == 0
    with platform.db.session() as session:
        rejection = session.scalars(select(Rejection)).one()
    assert rejection.status == 401
    assert lms["secret"] not in json.dumps(rejection.headers)


def test_unknown_and_disabled_endpoints_are_404(client, lms):
    assert client.raw.post("/hooks/nope", json={}).status_code == 404
    client.patch(f"/api/v1/endpoints/{lms['id']}", json={"enabled": False})
    answer = post_signed(client.raw, lms, b"{}")
    assert answer.status_code == 404
    assert answer.json["message"] == "no such endpoint"


def test_body_over_the_cap_is_413(client, lms, platform):
    body = b'{"pad": "' + b"x" * platform.settings.max_body_bytes + b'"}'
    assert post_signed(client.raw, lms, body).status_code == 413


def test_other_content_types_are_415(client, lms):
    body = b"status=completed"
    headers = signed_headers(lms["secret"], body, "msg_t")
    headers["content-type"] = "text/csv"
    answer = client.raw.post(_path(lms), data=body, headers=headers)
    assert answer.status_code == 415
    assert "text/csv" in answer.json["message"]


def test_form_bodies_are_accepted(client):
    ep = client.post("/api/v1/endpoints", json={"name": "form", "auth": {"type": "none"}}).json
    answer = client.raw.post(_path(ep), data={"status": "completed", "tag": ["a", "b"]})
    assert answer.status_code == 202
    event = client.get(f"/api/v1/events/{answer.json['event_id']}").json
    assert event["data"] == {"status": "completed", "tag": ["a", "b"]}


def test_schema_errors_are_422_and_listed(client, platform):
    schema = {
        "type": "object",
        "required": ["status", "learner"],
        "properties": {
            "status": {"enum": ["completed", "started"]},
            "learner": {"type": "object", "required": ["external_id"]},
        },
    }
    ep = client.post(
        "/api/v1/endpoints", json={"name": "strict", "auth": {"type": "none"}, "schema": schema}
    ).json
    answer = client.raw.post(_path(ep), json={"status": "done", "learner": {}})
    assert answer.status_code == 422
    errors = answer.json["errors"]["json"]
    assert "'done' is not one of" in errors["status"][0]
    assert "'external_id' is a required property" in errors["learner"][0]
    assert count(platform, Event) == 0


def test_rate_limit_is_429_with_retry_after(client):
    ep = client.post(
        "/api/v1/endpoints",
        json={
            "name": "slow",
            "auth": {"type": "none"},
            "rate_limit": {"requests": 3, "per_seconds": 60},
        },
    ).json
    answers = [client.raw.post(_path(ep), json={"n": i}) for i in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    assert 1 <= int(answers[3].headers["Retry-After"]) <= 60


def test_database_that_cannot_take_the_event_is_503_and_nothing_acknowledged(
    client, lms, platform, backend
):
    # A trigger that refuses inserts stands in for a full disk or a failing database.
    with platform.db.engine.begin() as conn:
        if backend == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON events "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
    answer = post_signed(client.raw, lms, json.dumps(completion()).encode())
    assert answer.status_code == 503
    assert answer.json["message"] == "the database cannot take events right now"
    assert count(platform, Event) == 0 and count(platform, Run) == 0


def test_auth_types_basic_bearer_header_and_ip_allow_list(client):
    basic = client.post(
        "/api/v1/endpoints", json={"name": "b", "auth": {"type": "basic", "username": "lms"}}
    ).json
    import base64

    good = base64.b64encode(f"lms:{basic['secret']}".encode()).decode()
    assert (
        client.raw.post(
            _path(basic), json={}, headers={"Authorization": f"Basic {good}"}
        ).status_code
        == 202
    )
    bad = base64.b64encode(b"lms:nope").decode()
    assert (
        client.raw.post(
            _path(basic), json={}, headers={"Authorization": f"Basic {bad}"}
        ).status_code
        == 401
    )

    bearer = client.post("/api/v1/endpoints", json={"name": "t", "auth": {"type": "bearer"}}).json
    ok = {"Authorization": f"Bearer {bearer['secret']}"}
    assert client.raw.post(_path(bearer), json={}, headers=ok).status_code == 202
    assert client.raw.post(_path(bearer), json={}).status_code == 401

    header = client.post(
        "/api/v1/endpoints",
        json={"name": "h", "auth": {"type": "header", "header": "X-Api-Key", "secret": "k" * 20}},
    ).json
    assert (
        client.raw.post(_path(header), json={}, headers={"X-Api-Key": "k" * 20}).status_code == 202
    )
    assert (
        client.raw.post(_path(header), json={}, headers={"X-Api-Key": "k" * 19}).status_code == 401
    )

    fenced = client.post(
        "/api/v1/endpoints",
        json={"name": "ip", "auth": {"type": "none"}, "allow_ips": ["10.1.0.0/16"]},
    ).json
    answer = client.raw.post(_path(fenced), json={})
    assert answer.status_code == 401 and "not allowed" in answer.json["message"]
    allowed = client.raw.post(_path(fenced), json={}, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert allowed.status_code == 202


def test_refusals_are_listed_per_endpoint_without_secrets(client, lms):
    body = b'{"a": 1}'
    headers = signed_headers(lms["secret"], body, "msg_r")
    headers["webhook-signature"] = "v1,bm9wZQ=="
    assert client.raw.post(_path(lms), data=body, headers=headers).status_code == 401
    listed = client.get(f"/api/v1/endpoints/{lms['id']}/rejections").json
    assert [(r["status"], r["reason"]) for r in listed] == [
        (401, "authentication failed: no matching signature")
    ]
    assert listed[0]["headers"]["webhook-signature"] == "[redacted]"


def test_multipart_form_fields_are_parsed(client):
    ep = client.post("/api/v1/endpoints", json={"name": "mp", "auth": {"type": "none"}}).json
    answer = client.raw.post(
        _path(ep), data={"status": "completed", "id": "7"}, content_type="multipart/form-data"
    )
    assert answer.status_code == 202
    event = client.get(f"/api/v1/events/{answer.json['event_id']}").json
    assert event["data"] == {"status": "completed", "id": "7"}


def test_a_very_long_dedupe_value_is_hashed_not_refused(client, platform):
    ep = client.post(
        "/api/v1/endpoints",
        json={"name": "long", "auth": {"type": "none"}, "dedupe": "data.ref"},
    ).json
    ref = "r" * 5000
    first = client.raw.post(_path(ep), json={"ref": ref})
    again = client.raw.post(_path(ep), json={"ref": ref})
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["duplicate"] is True
    with platform.db.session() as session:
        assert session.get(Event, first.json["event_id"]).dedupe_key.startswith("sha256:")


def test_a_changed_schema_applies_to_the_next_request(client):
    ep = client.post(
        "/api/v1/endpoints",
        json={"name": "evolving", "auth": {"type": "none"}, "schema": {"required": ["a"]}},
    ).json
    assert client.raw.post(_path(ep), json={"b": 1}).status_code == 422
    client.patch(f"/api/v1/endpoints/{ep['id']}", json={"schema": {"required": ["b"]}})
    assert client.raw.post(_path(ep), json={"b": 1}).status_code == 202
    assert client.raw.post(_path(ep), json={"a": 1}).status_code == 422


def test_another_process_sees_each_change_on_its_next_request(client, settings, lms):
    # The other app answers from its cached configuration; each change made through this
    # one must still apply to its very next request, whichever way it goes.
    other, other_platform = client_for(settings)
    try:
        ep = client.post(
            "/api/v1/endpoints",
            json={"name": "evolving", "auth": {"type": "none"}, "schema": {"required": ["a"]}},
        ).json
        assert other.raw.post(_path(ep), json={"a": 1}).status_code == 202  # cached now
        client.patch(f"/api/v1/endpoints/{ep['id']}", json={"schema": {"required": ["b"]}})
        assert other.raw.post(_path(ep), json={"a": 1}).status_code == 422  # stricter
        assert other.raw.post(_path(ep), json={"b": 1}).status_code == 202  # laxer
        client.patch(f"/api/v1/endpoints/{ep['id']}", json={"enabled": False})
        assert other.raw.post(_path(ep), json={"b": 1}).status_code == 404
        client.patch(f"/api/v1/endpoints/{ep['id']}", json={"enabled": True})
        assert other.raw.post(_path(ep), json={"b": 1}).status_code == 202
        fresh = client.post(
            "/api/v1/endpoints", json={"name": "fresh", "auth": {"type": "none"}}
        ).json
        assert other.raw.post(_path(fresh), json={}).status_code == 202  # created meanwhile
        bound = {**LMS_WORKFLOW, "name": "bound", "trigger": {"endpoint": "fresh"}}
        assert client.post("/api/v1/workflows", json=bound).status_code == 201
        answer = other.raw.post(_path(fresh), json={})
        assert answer.status_code == 202 and len(answer.json["runs"]) == 1  # bound meanwhile
    finally:
        other_platform.close()


def test_a_remote_ref_in_a_schema_is_never_fetched(client, httpserver):
    httpserver.expect_request("/schema.json").respond_with_json({"required": ["a"]})
    schema = {"$ref": httpserver.url_for("/schema.json")}
    ep = client.post(
        "/api/v1/endpoints", json={"name": "remote", "auth": {"type": "none"}, "schema": schema}
    ).json
    answer = client.raw.post(_path(ep), json={"b": 1})
    assert answer.status_code == 422
    assert "schema.json" in answer.json["message"]
    assert httpserver.log == []
