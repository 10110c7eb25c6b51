"""Events beyond webhooks: published through the API, emitted by workflows, record changes.

Each fires the workflows whose trigger is ``{event_type: <type>}``; real worker, real Redis.
"""

from __future__ import annotations

import pytest

from tests.support import wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def workflow(client, name: str, trigger: dict, steps: list[dict]) -> str:
    created = client.post(
        "/api/v1/workflows", json={"name": name, "trigger": trigger, "steps": steps}
    )
    assert created.status_code == 201, created.json
    return created.json["id"]


def runs_of(client, workflow_id: str) -> list[dict]:
    return client.get(f"/api/v1/runs?workflow_id={workflow_id}").json


def finished_runs(client, workflow_id: str, count: int) -> list[dict] | None:
    runs = runs_of(client, workflow_id)
    done = [r for r in runs if r["status"] not in ("queued", "running")]
    return done if len(done) >= count and len(done) == len(runs) else None


def test_published_event_runs_the_workflows_of_its_type(client, worker):
    keep = [{"id": "save", "type": "upsert", "collection": "enrolments", "key": "id"}]
    wf = workflow(client, "on-enrolment", {"event_type": "course.enrolled"}, keep)
    workflow(client, "other", {"event_type": "course.dropped"}, keep)
    body = {"type": "course.enrolled", "data": {"id": "e1"}, "idempotency_key": "k1"}
    answer = client.post("/api/v1/events", json=body)
    assert answer.status_code == 202 and len(answer.json["runs"]) == 1
    wait_for(lambda: finished_runs(client, wf, 1))
    assert client.get("/api/v1/records/enrolments/e1").json["data"] == {"id": "e1"}
    again = client.post("/api/v1/events", json=body)
    assert again.status_code == 200
    assert again.json == {"event_id": answer.json["event_id"], "runs": [], "duplicate": True}
    event = client.get(f"/api/v1/events/{answer.json['event_id']}").json
    assert (event["source"], event["type"]) == ("api", "course.enrolled")


def test_emit_tells_another_workflow(client, worker):
    verify = workflow(
        client,
        "verify",
        {"manual": True},
        [
            {
                "id": "tell",
                "type": "emit",
                "event_type": "member.{{ data.state }}",
                "data": "{id: data.id}",
            }
        ],
    )
    listen = workflow(
        client,
        "listen",
        {"event_type": "member.verified"},
        [{"id": "save", "type": "upsert", "collection": "verified", "key": "id"}],
    )
    started = client.post(
        f"/api/v1/workflows/{verify}/runs", json={"data": {"id": "m-1", "state": "verified"}}
    )
    first = wait_for(lambda: finished_runs(client, verify, 1))[0]
    assert first["status"] == "succeeded", first
    emitted = client.get(f"/api/v1/events/{first['output']['event_id']}").json
    assert emitted["source"] == f"run:{first['id']}"
    assert emitted["type"] == "member.verified" and emitted["data"] == {"id": "m-1"}
    assert emitted["headers"] == {"ihook-emit-depth": "1"}
    wait_for(lambda: finished_runs(client, listen, 1))
    assert client.get("/api/v1/records/verified/m-1").json["data"] == {"id": "m-1"}
    assert started.status_code == 202


def test_a_workflow_that_triggers_itself_stops_at_the_depth_cap(client, worker):
    loop = workflow(
        client,
        "loop",
        {"event_type": "loop.tick"},
        [{"id": "again", "type": "emit", "event_type": "loop.tick"}],
    )
    client.post("/api/v1/events", json={"type": "loop.tick", "data": {}})
    runs = wait_for(lambda: finished_runs(client, loop, 9), timeout=60)
    statuses = sorted(r["status"] for r in runs)
    assert statuses == ["failed"] + ["succeeded"] * 8
    failed = next(r for r in runs if r["status"] == "failed")
    assert "emit refused: 8 emits already chain" in failed["error"]


def test_record_changes_are_events(client, worker):
    writer = workflow(
        client,
        "writer",
        {"manual": True},
        [{"id": "save", "type": "upsert", "collection": "members", "key": "id"}],
    )
    watcher = workflow(
        client,
        "watcher",
        {"event_type": "record.created"},
        [{"id": "seen", "type": "transform", "expression": "data"}],
    )
    for _ in range(2):  # the second write changes nothing, so tells nothing
        client.post(f"/api/v1/workflows/{writer}/runs", json={"data": {"id": "m-9", "name": "Ada"}})
    wait_for(lambda: finished_runs(client, writer, 2))
    seen = wait_for(lambda: finished_runs(client, watcher, 1))
    assert len(seen) == 1
    assert seen[0]["output"] == {
        "collection": "members",
        "key": "m-9",
        "data": {"id": "m-9", "name": "Ada"},
    }
    events = client.get("/api/v1/events?type=record.created").json
    assert [e["source"] for e in events] == ["records:members"]


def test_emit_type_is_validated_on_save(client):
    missing = client.post(
        "/api/v1/workflows", json={"name": "bad", "steps": [{"id": "e", "type": "emit"}]}
    )
    assert missing.status_code == 422
    assert "event_type" in missing.json["errors"]["json"]["steps.e"]
    broken = client.post(
        "/api/v1/workflows",
        json={"name": "bad", "steps": [{"id": "e", "type": "emit", "event_type": "a.{{ x"}]},
    )
    assert broken.status_code == 422
    assert "event_type" in broken.json["errors"]["json"]["steps.e"]


def test_concurrent_publishes_with_one_id_store_one_event(platform):
    import threading

    from sqlalchemy import func, select

    from ihook.models import Event
    from ihook.services.events import store_event

    barrier = threading.Barrier(5)
    results = []

    def publish() -> None:
        barrier.wait()
        results.append(
            store_event(
                platform.db, type="order.paid", source="api", data={}, headers={}, dedupe_key="o-1"
            )
        )

    threads = [threading.Thread(target=publish) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in results) == [False, True, True, True, True]
    assert len({r.event_id for r in results}) == 1
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1


def test_an_emit_that_breaks_its_types_schema_fails_the_step_and_stores_nothing(client, worker):
    schema = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
    created = client.post("/api/v1/event-types", json={"name": "member.verified", "schema": schema})
    assert created.status_code == 201, created.json
    verify = workflow(
        client,
        "verify-strict",
        {"manual": True},
        [{"id": "tell", "type": "emit", "event_type": "member.verified", "data": "{id: data.n}"}],
    )
    client.post(f"/api/v1/workflows/{verify}/runs", json={"data": {"n": 7}})
    run = wait_for(lambda: finished_runs(client, verify, 1))[0]
    assert run["status"] == "failed" and run["failed_step"] == "tell"
    assert "emit refused" in run["error"] and "is not of type 'string'" in run["error"]
    assert client.get("/api/v1/events", query_string={"type": "member.verified"}).json == []
