"""``/api/v1/events``, ``/runs`` and ``/records``: lists, filters, replay and retry."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import update

from ihook.models import Run
from tests.support import LMS_WORKFLOW, completion, wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

ECHO = {
    "name": "echo",
    "trigger": {"endpoint": ["lms", "shop"]},
    "steps": [{"id": "copy", "type": "transform", "expression": "data"}],
}
"""A second workflow, on both endpoints, that always succeeds."""


@pytest.fixture
def hooks(client) -> dict:
    """Endpoints lms (typed course.<status>) and shop, auth none; the LMS workflow and echo."""
    lms = client.post(
        "/api/v1/endpoints",
        json={
            "name": "lms",
            "auth": {"type": "none"},
            "event_type": "join('.', ['course', data.status])",
        },
    ).json
    shop = client.post("/api/v1/endpoints", json={"name": "shop", "auth": {"type": "none"}}).json
    workflows = {}
    for definition in (LMS_WORKFLOW, ECHO):
        created = client.post("/api/v1/workflows", json=definition)
        assert created.status_code == 201, created.json
        workflows[definition["name"]] = created.json["id"]
    return {"lms": lms, "shop": shop, **workflows}


def send(client, endpoint: dict, body: dict) -> dict:
    """Post to an endpoint; a short pause keeps ids and times of successive events apart."""
    time.sleep(0.005)
    answer = client.raw.post("/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1], json=body)
    assert answer.status_code == 202, answer.json
    return answer.json


def ids(answer) -> list[str]:
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return [item["id"] for item in answer.json]


def finished(client, run_id: str, attempt: int = 1):
    run = client.get(f"/api/v1/runs/{run_id}").json
    done = run["status"] not in ("queued", "running") and run["attempt"] >= attempt
    return run if done else None


def test_event_list_filters_and_get(client, hooks):
    e1 = send(client, hooks["lms"], completion("m-1"))["event_id"]
    e2 = send(client, hooks["lms"], completion("m-2", status="started"))["event_id"]
    e3 = send(client, hooks["shop"], {"order": 7})["event_id"]

    def events(**query):
        return ids(client.get("/api/v1/events", query_string=query))

    assert events() == [e3, e2, e1]  # newest first
    assert events(type="course.completed") == [e1]
    assert events(type="course.started") == [e2]
    assert events(type="webhook.received") == [e3]
    assert events(type="nothing") == []
    assert events(source="endpoint:lms") == [e2, e1]
    assert events(source="endpoint:shop") == [e3]
    assert events(source="endpoint:lms", type="course.started") == [e2]
    assert events(endpoint_id=hooks["lms"]["id"]) == [e2, e1]
    assert events(endpoint_id=hooks["shop"]["id"]) == [e3]
    assert events(endpoint_id="ep_none") == []

    second = client.get(f"/api/v1/events/{e2}").json
    third = client.get(f"/api/v1/events/{e3}").json
    assert events(since=second["received_at"]) == [e3, e2]
    assert events(until=second["received_at"]) == [e1]  # until is exclusive
    assert events(since=second["received_at"], until=third["received_at"]) == [e2]
    assert events(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []

    assert events(limit=1) == [e3]
    assert events(after=e3) == [e2, e1]
    assert events(after=e2, limit=1) == [e1]

    first = client.get(f"/api/v1/events/{e1}")
    assert first.status_code == 200
    body = first.json
    assert body["id"] == e1
    assert body["data"] == completion("m-1")
    assert body["type"] == "course.completed"
    assert body["source"] == "endpoint:lms"
    assert body["endpoint_id"] == hooks["lms"]["id"]
    assert body["headers"]["content-type"] == "application/json"
    assert third["data"] == {"order": 7}

    missing = client.get("/api/v1/events/evt_missing")
    assert missing.status_code == 404
    assert missing.json["message"] == "event evt_missing not found"


def test_runs_list_filters_get_with_steps_and_records(client, hooks, worker):
    a = send(client, hooks["lms"], completion("m-1"))
    b = send(client, hooks["lms"], completion("m-2", status="started"))
    c = send(client, hooks["shop"], {"order": 7})
    d = send(client, hooks["lms"], completion("m-3"))
    assert [len(x["runs"]) for x in (a, b, c, d)] == [2, 2, 1, 2]
    every = [r for answer in (a, b, c, d) for r in answer["runs"]]
    runs = {r: wait_for(lambda r=r: finished(client, r)) for r in every}

    def listed(**query):
        return ids(client.get("/api/v1/runs", query_string=query))

    lms_runs = {r for r in every if runs[r]["workflow_id"] == hooks["lms-course-completion"]}
    assert len(lms_runs) == 3
    assert set(listed(workflow_id=hooks["lms-course-completion"])) == lms_runs
    assert set(listed(workflow_id=hooks["echo"])) == set(every) - lms_runs
    assert sorted(listed(event_id=a["event_id"])) == sorted(a["runs"])
    assert listed(event_id=c["event_id"]) == c["runs"]
    skipped = [r for r in b["runs"] if r in lms_runs]
    assert listed(status="skipped") == skipped
    assert listed(status="skipped", workflow_id=hooks["echo"]) == []
    assert set(listed(status="succeeded")) == set(every) - set(skipped)
    assert listed() == sorted(every, reverse=True)  # newest first
    assert listed(status="failed") == []
    assert listed(event_id=a["event_id"], limit=1) == [max(a["runs"])]

    run_id = next(r for r in a["runs"] if r in lms_runs)
    run = client.get(f"/api/v1/runs/{run_id}").json
    assert run["status"] == "succeeded"
    assert run["event_id"] == a["event_id"]
    assert run["workflow_version"] == 1 and run["attempt"] == 1
    assert [(s["id"], s["type"]) for s in run["steps"]] == [
        ("completed_only", "filter"),
        ("activity", "transform"),
        ("save", "upsert"),
    ]
    for step in run["steps"]:
        assert step["status"] == "succeeded"
        assert isinstance(step["duration_ms"], float | int) and step["duration_ms"] >= 0
        assert isinstance(step["output"], str)
    activity = json.loads(run["steps"][1]["output"])
    completed_at = completion()["completed_at"]
    assert activity == {"member_id": "m-1", "course": "CS101", "completed_at": completed_at}
    assert runs[skipped[0]]["status"] == "skipped"

    missing = client.get("/api/v1/runs/run_missing")
    assert missing.status_code == 404 and missing.json["message"] == "run run_missing not found"

    records = client.get("/api/v1/records/activities")
    assert records.status_code == 200
    assert [r["key"] for r in records.json] == ["m-1:CS101", "m-3:CS101"]  # m-2 was skipped
    assert records.json[0]["collection"] == "activities"
    assert records.json[0]["data"] == activity
    page = client.get("/api/v1/records/activities", query_string={"limit": 1}).json
    assert [r["key"] for r in page] == ["m-1:CS101"]
    rest = client.get("/api/v1/records/activities", query_string={"after": "m-1:CS101"}).json
    assert [r["key"] for r in rest] == ["m-3:CS101"]
    one = client.get("/api/v1/records/activities/m-3:CS101")
    assert one.status_code == 200 and one.json["data"]["member_id"] == "m-3"
    assert client.get("/api/v1/records/nothing").json == []
    gone = client.get("/api/v1/records/activities/m-2:CS101")
    assert gone.status_code == 404
    assert gone.json["message"] == "no record 'm-2:CS101' in collection 'activities'"


def test_replay_and_retry_make_new_runs_that_finish(client, hooks, worker):
    accepted = send(client, hooks["lms"], completion("m-1"))
    first = [wait_for(lambda r=r: finished(client, r)) for r in accepted["runs"]]
    assert [r["status"] for r in first] == ["succeeded", "succeeded"]

    replay = client.post(f"/api/v1/events/{accepted['event_id']}/replay")
    assert replay.status_code == 202
    assert replay.json["event_id"] == accepted["event_id"]
    new = replay.json["runs"]
    assert len(new) == 2 and set(new).isdisjoint(accepted["runs"])
    replayed = [wait_for(lambda r=r: finished(client, r)) for r in new]
    assert [r["status"] for r in replayed] == ["succeeded", "succeeded"]
    assert all(r["event_id"] == accepted["event_id"] for r in replayed)
    by_event = client.get("/api/v1/runs", query_string={"event_id": accepted["event_id"]})
    assert sorted(ids(by_event)) == sorted(accepted["runs"] + new)

    run_id = accepted["runs"][0]
    retry = client.post(f"/api/v1/runs/{run_id}/retry")
    assert retry.status_code == 202
    assert retry.json["id"] == run_id
    assert retry.json["status"] == "queued"
    again = wait_for(lambda: finished(client, run_id, attempt=2))
    assert again["status"] == "succeeded"
    assert again["attempt"] == 2
    assert again["error"] is None and again["finished_at"] is not None

    assert client.post("/api/v1/events/evt_missing/replay").status_code == 404
    assert client.post("/api/v1/runs/run_missing/retry").status_code == 404


def test_retry_of_a_queued_or_running_run_is_409(client, hooks, platform):
    # No worker: the run stays queued.
    run_id = send(client, hooks["shop"], {"order": 1})["runs"][0]
    queued = client.post(f"/api/v1/runs/{run_id}/retry")
    assert queued.status_code == 409
    assert queued.json["code"] == 409 and queued.json["status"] == "Conflict"
    assert "is queued" in queued.json["message"]

    with platform.db.session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(status="running", attempt=1))
    running = client.post(f"/api/v1/runs/{run_id}/retry")
    assert running.status_code == 409
    assert "is running" in running.json["message"]
    after = client.get(f"/api/v1/runs/{run_id}").json
    assert after["status"] == "running" and after["attempt"] == 1


@pytest.mark.parametrize(
    ("url", "location", "field"),
    [
        ("/api/v1/runs?status=bogus", "query", "status"),
        ("/api/v1/runs?limit=0", "query", "limit"),
        ("/api/v1/runs?limit=1001", "query", "limit"),
        ("/api/v1/runs?since=yesterday", "query", "since"),
        ("/api/v1/events?limit=0", "query", "limit"),
        ("/api/v1/events?limit=many", "query", "limit"),
        ("/api/v1/events?since=notadate", "query", "since"),
        ("/api/v1/events?until=2026-13-45", "query", "until"),
        ("/api/v1/records/activities?limit=0", "query", "limit"),
    ],
)
def test_bad_query_args_are_422_naming_the_arg(client, url, location, field):
    answer = client.get(url)
    assert answer.status_code == 422
    body = answer.json
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    assert list(body["errors"][location]) == [field]
    assert body["errors"][location][field][0]


def test_api_bodies_are_capped_like_ingress(client, platform):
    big = {"type": "x.y", "data": "x" * (platform.settings.max_body_bytes + 1)}
    answer = client.post("/api/v1/events", json=big)
    assert answer.status_code == 413
    assert answer.json["code"] == 413 and answer.json["message"]
