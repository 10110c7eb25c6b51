"""The LMS → record → CRM flow end to end: signed webhook, real worker, real receiver."""

from __future__ import annotations

import json

import pytest
from werkzeug import Request, Response

from tests.support import LMS_WORKFLOW, completion, signed_headers, wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def lms_with_crm(client, crm_url: str) -> dict:
    endpoint = client.post(
        "/api/v1/endpoints",
        json={"name": "lms", "auth": {"type": "hmac", "scheme": "standard-webhooks"}},
    ).json
    workflow = dict(LMS_WORKFLOW)
    workflow["steps"] = [
        *LMS_WORKFLOW["steps"],
        {
            "id": "notify",
            "type": "send",
            "url": crm_url,
            "method": "POST",
            "path": "/members/{{ steps.activity.member_id }}/activities",
            "body": "steps.activity",
        },
    ]
    created = client.post("/api/v1/workflows", json=workflow)
    assert created.status_code == 201, created.json
    return endpoint


def post(client, endpoint, body: dict, msg_id: str):
    raw = json.dumps(body).encode()
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    return client.raw.post(path, data=raw, headers=signed_headers(endpoint["secret"], raw, msg_id))


def finished(client, run_id: str):
    run = client.get(f"/api/v1/runs/{run_id}").json
    return run if run["status"] not in ("queued", "running") else None


def test_course_completion_becomes_a_record_and_reaches_the_crm(client, httpserver, worker):
    received = []

    def crm(request: Request) -> Response:
        received.append((request.path, request.get_json()))
        return Response(json.dumps({"ok": True}), status=201, content_type="application/json")

    httpserver.expect_request("/members/m-42/activities", method="POST").respond_with_handler(crm)
    endpoint = lms_with_crm(client, httpserver.url_for("/"))

    answer = post(client, endpoint, completion("m-42", "CS101"), "msg_1")
    assert answer.status_code == 202
    run = wait_for(lambda: finished(client, answer.json["runs"][0]))

    assert run["status"] == "succeeded", run
    assert [s["id"] for s in run["steps"]] == ["completed_only", "activity", "save", "notify"]
    assert all(s["status"] == "succeeded" and s["duration_ms"] >= 0 for s in run["steps"])
    activity = {"member_id": "m-42", "course": "CS101", "completed_at": "2026-11-20T10:00:00Z"}
    assert received == [("/members/m-42/activities", activity)]
    record = client.get("/api/v1/records/activities/m-42:CS101").json
    assert record["data"] == activity
    assert run["output"]["status"] == 201


def test_filtered_callback_is_skipped_and_sends_nothing(client, httpserver, worker):
    endpoint = lms_with_crm(client, httpserver.url_for("/"))
    answer = post(client, endpoint, completion(status="started"), "msg_2")
    run = wait_for(lambda: finished(client, answer.json["runs"][0]))
    assert run["status"] == "skipped"
    assert httpserver.log == []
    assert client.get("/api/v1/records/activities").json == []


def test_crm_rejecting_the_request_fails_the_run_naming_the_step(client, httpserver, worker):
    httpserver.expect_request("/members/m-1/activities").respond_with_json(
        {"error": "unknown member"}, status=404
    )
    endpoint = lms_with_crm(client, httpserver.url_for("/"))
    answer = post(client, endpoint, completion("m-1"), "msg_3")
    run = wait_for(lambda: finished(client, answer.json["runs"][0]))
    assert run["status"] == "failed"
    assert run["failed_step"] == "notify"
    assert "404" in run["error"]
    assert run["attempt"] == 1  # a 4xx is not retried


def test_crm_503_twice_then_200_succeeds_on_attempt_3(client, httpserver, worker):
    answers = iter([503, 503, 200])

    def flaky(request: Request) -> Response:
        return Response("{}", status=next(answers), content_type="application/json")

    httpserver.expect_request("/members/m-7/activities").respond_with_handler(flaky)
    endpoint = lms_with_crm(client, httpserver.url_for("/"))
    answer = post(client, endpoint, completion("m-7"), "msg_4")
    run = wait_for(lambda: finished(client, answer.json["runs"][0]), timeout=40)
    assert run["status"] == "succeeded"
    assert run["attempt"] == 3
    assert len(httpserver.log) == 3
    record = client.get("/api/v1/records/activities/m-7:CS101").json
    assert record["data"]["member_id"] == "m-7"  # the upsert before the send, not doubled


def test_sync_endpoint_answers_with_the_finished_run(client, worker):
    endpoint = client.post(
        "/api/v1/endpoints",
        json={
            "name": "sync",
            "auth": {"type": "none"},
            "response_mode": "sync",
            "sync_timeout": 20,
        },
    ).json
    workflow = {
        "name": "greet",
        "trigger": {"endpoint": "sync"},
        "steps": [{"id": "hello", "type": "transform", "mapping": {"hi": "data.name"}}],
    }
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    answer = client.raw.post(path, json={"name": "Ada"})
    assert answer.status_code == 200
    assert answer.json["status"] == "succeeded"
    assert answer.json["output"] == {"hi": "Ada"}


def test_sync_endpoint_answers_what_the_respond_step_says(client, worker):
    endpoint = client.post(
        "/api/v1/endpoints",
        json={"name": "verify", "auth": {"type": "none"}, "response_mode": "sync"},
    ).json
    workflow = {
        "name": "verify-member",
        "trigger": {"endpoint": "verify"},
        "steps": [
            {"id": "known", "type": "transform", "expression": "contains(['m-1'], data.member)"},
            {
                "id": "answer",
                "type": "respond",
                "status": 201,
                "headers": {"X-Member": "{{ data.member }}"},
                "body": "{member: data.member, known: steps.known}",
            },
            {"id": "after", "type": "transform", "expression": "`true`"},
        ],
    }
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    answer = client.raw.post(path, json={"member": "m-1"})
    assert answer.status_code == 201
    assert answer.headers["X-Member"] == "m-1"
    assert answer.json == {"member": "m-1", "known": True}
