"""``/api/v1/pollers``: CRUD, field errors by name, the SSRF guard, poll-now, the poll log."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from rq.job import Job
from werkzeug import Response

from ihook.ids import new_id
from ihook.models import Poll, Poller
from ihook.polling import poll

pytestmark = pytest.mark.usefixtures("public_dns")

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

URL = "https://lms.example.com/api/completions?updated_since={{ state.cursor }}"
BASE = {"name": "lms-completions", "request": {"url": URL}, "interval_seconds": 60, "id": "id"}
PATH = "/api/v1/pollers"


def create(client, **fields) -> dict:
    answer = client.post(PATH, json={**BASE, **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def field_errors(answer) -> dict:
    """The ``errors["json"]`` of a 422 in flask-smorest's error shape."""
    assert answer.status_code == 422, (answer.status_code, answer.get_data(as_text=True))
    body = answer.json
    assert body["code"] == 422 and body["status"] == HTTPStatus(422).phrase
    assert isinstance(body["message"], str) and body["message"]
    return body["errors"]["json"]


def connector(client, name: str, kind: str = "http") -> None:
    config = (
        {"base_url": "https://lms.example.com/api"}
        if kind == "http"
        else {"host": "smtp.example.com", "from_address": "ihook@example.com"}
    )
    answer = client.post("/api/v1/connectors", json={"name": name, "kind": kind, "config": config})
    assert answer.status_code == 201, answer.json


@both_backends
def test_create_answers_the_poller_with_its_defaults(client):
    body = create(client)
    assert body["id"].startswith("pol_")
    assert body["name"] == "lms-completions" and body["description"] == ""
    assert body["enabled"] is True
    assert body["request"] == {"url": URL, "method": "GET", "params": {}, "headers": {}}
    assert body["interval_seconds"] == 60 and "cron" not in body and "timezone" not in body
    assert body["items"] == "@" and body["id_expression"] == "id"
    assert body["cursor_expression"] is None and body["pagination"] is None
    assert body["max_pages"] == 10 and body["format"] == "auto" and body["mode"] == "item"
    assert body["event_type"] == "lms-completions.item" and body["workflows"] == []
    assert body["cursor"] is None and body["failures"] == 0 and body["retry_after"] is None
    assert body["last_slot"] is None and body["schedule_from"] is not None
    assert body["created_at"] and body["updated_at"]
    assert client.get(f"{PATH}/{body['id']}").json == body
    assert client.get(PATH).json == [body]


@both_backends
def test_a_worked_example_with_a_connector_and_pagination(client):
    connector(client, "lms")
    body = create(
        client,
        request={
            "connector": "lms",
            "path": "/completions",
            "params": {"updated_since": "{{ state.cursor }}"},
        },
        items="data",
        cursor="max_by(items, &updated_at).updated_at",
        pagination={"page_param": "page", "page_size": 100, "size_param": "per_page"},
        initial_cursor="2026-01-01T00:00:00Z",
        mode="batch",
    )
    assert body["request"]["connector"] == "lms" and body["request"]["path"] == "/completions"
    assert body["pagination"] == {
        "page_param": "page",
        "first_page": 1,
        "page_size": 100,
        "size_param": "per_page",
    }
    assert body["cursor"] == "2026-01-01T00:00:00Z"
    assert body["cursor_expression"] == "max_by(items, &updated_at).updated_at"
    assert body["event_type"] == "lms-completions.batch"
    workflow = client.post(
        "/api/v1/workflows",
        json={
            "name": "completions",
            "trigger": {"poller": "lms-completions"},
            "steps": [{"id": "keep", "type": "filter", "if": "data != null"}],
        },
    )
    assert workflow.status_code == 201, workflow.json
    assert client.get(f"{PATH}/{body['id']}").json["workflows"] == [workflow.json["id"]]


def test_every_refused_field_is_named(client):
    errors = field_errors(
        client.post(
            PATH,
            json={
                **BASE,
                "request": {"url": "/relative", "method": "DELETE"},
                "interval_seconds": 2,
                "items": "a[",
                "pagination": {"page_param": "page", "size_param": "n"},
                "mode": "stream",
            },
        )
    )
    assert set(errors) == {
        "request.url",
        "request.method",
        "interval_seconds",
        "items",
        "pagination.size_param",
        "mode",
    }
    errors = field_errors(client.post(PATH, json={**BASE, "cron": "* * * * *"}))
    assert set(errors) == {"interval_seconds", "cron"}
    errors = field_errors(client.post(PATH, json={"name": "x", "bogus": 1}))
    assert set(errors) == {"request", "id", "bogus"}  # the schema's own errors come first
    errors = field_errors(client.post(PATH, json={**BASE, "interval_seconds": "60"}))
    assert set(errors) == {"interval_seconds"}


def test_the_connector_must_be_an_http_one(client):
    connector(client, "mail", kind="smtp")
    errors = field_errors(client.post(PATH, json={**BASE, "request": {"connector": "mail"}}))
    assert errors == {"request.connector": ["'mail' is a smtp connector, not http"]}
    errors = field_errors(client.post(PATH, json={**BASE, "request": {"connector": "gone"}}))
    assert errors == {"request.connector": ["no connector named 'gone'"]}


def test_a_private_literal_url_is_refused_when_the_install_disallows_it(client, strict_client):
    private = {**BASE, "request": {"url": "http://127.0.0.1:9000/items"}}
    errors = field_errors(strict_client.post(PATH, json=private))
    assert list(errors) == ["request.url"]
    assert "private or reserved" in errors["request.url"][0]
    assert client.post(PATH, json=private).status_code == 201  # the tests' install allows it


@both_backends
def test_a_taken_name_is_a_conflict(client):
    create(client)
    answer = client.post(PATH, json=BASE)
    assert answer.status_code == 409
    assert answer.json["errors"] == {"json": {"name": ["already taken"]}}


@both_backends
def test_put_replaces_and_patch_changes(client, platform):
    poller = create(client, items="data", description="old", initial_cursor=7)
    since = poller["schedule_from"]
    replaced = client.put(f"{PATH}/{poller['id']}", json={**BASE, "cron": "@hourly"})
    assert field_errors(replaced) == {
        "interval_seconds": ["give interval_seconds or cron, not both"],
        "cron": ["give interval_seconds or cron, not both"],
    }
    body = {k: v for k, v in BASE.items() if k != "interval_seconds"}
    replaced = client.put(f"{PATH}/{poller['id']}", json={**body, "cron": "@hourly"})
    assert replaced.status_code == 200, replaced.json
    new = replaced.json
    assert new["items"] == "@" and new["description"] == "" and new["cursor"] == 7
    assert new["cron"] == "@hourly" and "interval_seconds" not in new
    assert new["schedule_from"] > since
    patched = client.patch(f"{PATH}/{poller['id']}", json={"enabled": False, "max_pages": 3})
    assert patched.status_code == 200, patched.json
    assert patched.json["enabled"] is False and patched.json["schedule_from"] is None
    assert patched.json["max_pages"] == 3 and patched.json["cron"] == "@hourly"
    again = client.patch(f"{PATH}/{poller['id']}", json={"enabled": True, "initial_cursor": None})
    assert again.json["schedule_from"] is not None and again.json["cursor"] is None
    with platform.db.session() as session:
        row = session.get(Poller, poller["id"])
        assert row.config["schedule"] == {"cron": "@hourly"} and row.config["max_pages"] == 3
    assert field_errors(client.patch(f"{PATH}/{poller['id']}", json={"timezone": "Nowhere/X"}))


def test_patch_of_an_interval_takes_effect_in_the_stored_schedule(client, platform):
    poller = create(client)
    answer = client.patch(f"{PATH}/{poller['id']}", json={"interval_seconds": 300})
    assert answer.json["interval_seconds"] == 300
    assert answer.json["schedule_from"] >= poller["schedule_from"]
    with platform.db.session() as session:
        assert session.get(Poller, poller["id"]).config["schedule"] == {"interval_seconds": 300}


@both_backends
def test_delete(client):
    poller = create(client)
    assert client.delete(f"{PATH}/{poller['id']}").status_code == 204
    assert client.get(f"{PATH}/{poller['id']}").status_code == 404
    assert client.get(PATH).json == []


def test_poll_now_queues_a_poll(client, platform):
    poller = create(client)
    answer = client.post(f"{PATH}/{poller['id']}/poll-now")
    assert answer.status_code == 202, answer.json
    assert answer.json["poller_id"] == poller["id"]
    job = Job.fetch(answer.json["job_id"], connection=platform.redis)
    assert job.func_name == "ihook.jobs.run_poll" and job.args == (poller["id"], None)
    assert platform.polls.queue.count == 1


def _poll(session, poller_id: str, started_at: datetime, **fields) -> str:
    time.sleep(0.002)  # ids sort by their millisecond
    poll_id = new_id("poll")
    session.add(
        Poll(
            id=poll_id,
            poller_id=poller_id,
            started_at=started_at,
            status=fields.pop("status", "succeeded"),
            **fields,
        )
    )
    return poll_id


@both_backends
def test_the_poll_log_newest_first(client, platform):
    poller = create(client)
    other = create(client, name="other")
    start = datetime(2026, 11, 22, 10, tzinfo=UTC)
    ids = []
    with platform.db.session() as session:
        for minute in range(3):
            ids.append(
                _poll(
                    session,
                    poller["id"],
                    start + timedelta(minutes=minute),
                    slot=start + timedelta(minutes=minute),
                    duration_ms=12.5,
                    http_status=200,
                    pages=2,
                    items_seen=5,
                    items_new=minute,
                    cursor_before=minute,
                    cursor_after=minute + 1,
                    events=[f"evt_{minute}"],
                )
            )
        failed = _poll(
            session,
            poller["id"],
            start + timedelta(minutes=3),
            trigger="manual",
            status="failed",
            http_status=503,
            error="page 1: HTTP 503",
        )
        elsewhere = _poll(session, other["id"], start)
    polls = client.get(f"{PATH}/{poller['id']}/polls").json
    assert [p["id"] for p in polls] == [failed, *reversed(ids)]
    assert polls[0]["status"] == "failed" and polls[0]["error"] == "page 1: HTTP 503"
    assert polls[0]["trigger"] == "manual" and polls[0]["slot"] is None
    assert polls[1]["items_new"] == 2 and polls[1]["cursor_before"] == 2
    assert polls[1]["cursor_after"] == 3 and polls[1]["pages"] == 2
    assert polls[1]["duration_ms"] == 12.5 and "events" not in polls[1]
    page = client.get(f"{PATH}/{poller['id']}/polls?limit=2").json
    assert [p["id"] for p in page] == [failed, ids[2]]
    rest = client.get(f"{PATH}/{poller['id']}/polls?after={ids[2]}").json
    assert [p["id"] for p in rest] == [ids[1], ids[0]]
    since = client.get(f"{PATH}/{poller['id']}/polls?since=2026-11-22T10:02:00").json
    assert [p["id"] for p in since] == [failed, ids[2]]
    until = client.get(f"{PATH}/{poller['id']}/polls?until=2026-11-22T10:01:00Z").json
    assert [p["id"] for p in until] == [ids[0]]
    one = client.get(f"{PATH}/{poller['id']}/polls/{ids[1]}").json
    assert one["events"] == ["evt_1"] and one["items_new"] == 1
    assert client.get(f"{PATH}/{poller['id']}/polls/{elsewhere}").status_code == 404
    bad = client.get(f"{PATH}/{poller['id']}/polls?limit=0")
    assert bad.status_code == 422 and "limit" in bad.json["errors"]["query"]


def test_unknown_pollers_are_404(client):
    missing = f"{PATH}/pol_nope"
    for answer in (
        client.get(missing),
        client.put(missing, json=BASE),
        client.patch(missing, json={"enabled": False}),
        client.delete(missing),
        client.post(f"{missing}/poll-now"),
        client.get(f"{missing}/polls"),
        client.get(f"{missing}/polls/poll_nope"),
    ):
        assert answer.status_code == 404, answer.json
        assert answer.json["message"]


def test_the_routes_need_a_token_and_are_documented(client):
    assert client.raw.get(PATH).status_code == 401
    spec = client.get("/api/openapi.json").json
    for route in ("", "/{poller_id}", "/{poller_id}/poll-now", "/{poller_id}/polls"):
        assert f"{PATH}{route}" in spec["paths"]
    assert "id_expression" in spec["components"]["schemas"]["Poller"]["properties"]


def test_a_poller_saved_through_the_api_is_one_the_poll_reads(client, platform, httpserver):
    """The stored config is what ``ihook.polling`` expects: the worked example, for real."""
    rows = [
        {"id": 1, "learner": "a", "updated_at": "2026-01-01T00:00:01Z"},
        {"id": 2, "learner": "b", "updated_at": "2026-01-01T00:00:02Z"},
    ]
    seen: list[dict] = []

    def handle(request):
        seen.append(request.args.to_dict())
        page = int(request.args["page"])
        since = request.args.get("updated_since") or ""
        chosen = [r for r in rows if r["updated_at"] > since][(page - 1) * 1 : page]
        return Response(json.dumps({"data": chosen}), content_type="application/json")

    httpserver.expect_request("/api/completions").respond_with_handler(handle)
    created = create(
        client,
        request={
            "url": httpserver.url_for("/api/completions"),
            "params": {"updated_since": "{{ state.cursor or '' }}"},
        },
        items="data",
        cursor="max_by(items, &updated_at).updated_at",
        pagination={"page_param": "page", "page_size": 1},
    )
    client.post(f"{PATH}/{created['id']}/poll-now")
    done = poll(platform, created["id"], slot=None, trigger="manual")
    assert done is not None and done.status == "succeeded", done and done.error
    assert done.items_new == 2 and done.pages == 3
    assert [s["page"] for s in seen] == ["1", "2", "3"]
    after = client.get(f"{PATH}/{created['id']}").json
    assert after["cursor"] == "2026-01-01T00:00:02Z"
    (logged,) = client.get(f"{PATH}/{created['id']}/polls").json
    assert logged["id"] == done.id and logged["cursor_after"] == "2026-01-01T00:00:02Z"
