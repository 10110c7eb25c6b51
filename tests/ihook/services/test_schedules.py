"""Scheduled workflows fire each slot once, from the slot after they were set, on a
controllable clock (``fire_due``/``tick`` take the time to act at)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from ihook.models import Event, Run, Workflow
from ihook.scheduler import tick
from ihook.services.schedules import EVENT_TYPE, fire_due
from tests.support import wait_for

EVERY_MINUTE = {"schedule": {"cron": "* * * * *"}}
STEP = [{"id": "slot", "type": "transform", "expression": "data"}]


def create(client, trigger=EVERY_MINUTE, name="tick") -> dict:
    response = client.post(
        "/api/v1/workflows", json={"name": name, "trigger": trigger, "steps": STEP}
    )
    assert response.status_code == 201, response.json
    return response.json


def schedule_from(platform, workflow_id: str):
    with platform.db.session() as session:
        return session.get(Workflow, workflow_id).schedule_from


def events(platform) -> list[Event]:
    with platform.db.session() as session:
        return list(session.scalars(select(Event).order_by(Event.received_at)))


def run_count(platform) -> int:
    with platform.db.session() as session:
        return session.scalar(select(func.count()).select_from(Run))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_each_slot_fires_once_and_missed_slots_collapse(client, platform):
    workflow = create(client)
    since = schedule_from(platform, workflow["id"])
    first = since.replace(second=0, microsecond=0) + timedelta(minutes=1)

    assert fire_due(platform.db, first - timedelta(seconds=1)) == []  # before its first slot
    assert len(fire_due(platform.db, first)) == 1
    assert fire_due(platform.db, first + timedelta(seconds=30)) == []  # same slot again
    assert len(fire_due(platform.db, first + timedelta(minutes=4, seconds=5))) == 1  # 3 missed

    fired = events(platform)
    assert [e.type for e in fired] == [EVENT_TYPE, EVENT_TYPE]
    assert {e.source for e in fired} == {"schedule"}
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert fired[0].data == {
        "slot": iso(first),
        "window": {"start": iso(first - timedelta(minutes=1)), "end": iso(first)},
    }
    late = first + timedelta(minutes=4)
    assert fired[1].data == {"slot": iso(late), "window": {"start": iso(first), "end": iso(late)}}
    with platform.db.session() as session:
        runs = session.scalars(select(Run)).all()
        assert {(r.workflow_id, r.workflow_version) for r in runs} == {(workflow["id"], 1)}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_schedulers_racing_for_a_slot_fire_it_once(client, platform):
    workflow = create(client)
    slot = schedule_from(platform, workflow["id"]) + timedelta(minutes=1)
    barrier = threading.Barrier(6)
    fired: list[list[str]] = []

    def scheduler() -> None:
        barrier.wait()
        fired.append(fire_due(platform.db, slot))

    threads = [threading.Thread(target=scheduler) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(runs) for runs in fired) == [0, 0, 0, 0, 0, 1]
    assert run_count(platform) == 1 and len(events(platform)) == 1


def test_a_disabled_workflow_does_not_fire_nor_catch_up(client, platform):
    workflow = create(client)
    since = schedule_from(platform, workflow["id"])
    url = f"/api/v1/workflows/{workflow['id']}"
    assert client.patch(url, json={"enabled": False}).status_code == 200
    assert schedule_from(platform, workflow["id"]) is None
    assert fire_due(platform.db, since + timedelta(minutes=5)) == []

    assert client.patch(url, json={"enabled": True}).status_code == 200
    again = schedule_from(platform, workflow["id"])
    assert again >= since
    # The slots it was off for stay unfired; the first one after re-enabling fires.
    assert fire_due(platform.db, again) == []
    assert len(fire_due(platform.db, again + timedelta(minutes=1))) == 1


def test_a_changed_schedule_counts_from_the_change(client, platform):
    workflow = create(client, {"schedule": {"cron": "0 2 * * *"}})
    since = schedule_from(platform, workflow["id"])
    body = {"name": "tick", "trigger": {"schedule": {"interval_seconds": 60}}, "steps": STEP}
    assert client.put(f"/api/v1/workflows/{workflow['id']}", json=body).status_code == 200
    changed = schedule_from(platform, workflow["id"])
    assert changed >= since
    assert len(fire_due(platform.db, changed + timedelta(seconds=60))) == 1

    body["description"] = "same schedule, new version"
    assert client.put(f"/api/v1/workflows/{workflow['id']}", json=body).json["version"] == 3
    assert schedule_from(platform, workflow["id"]) == changed  # not a schedule change

    body["trigger"] = {"manual": True}
    assert client.put(f"/api/v1/workflows/{workflow['id']}", json=body).status_code == 200
    assert schedule_from(platform, workflow["id"]) is None
    assert fire_due(platform.db, changed + timedelta(days=2)) == []


def test_only_scheduled_workflows_fire(client, platform):
    create(client, {"manual": True}, name="by-hand")
    create(client, {"event_type": "member.joined"}, name="on-event")
    scheduled = create(client, name="timed")
    slot = schedule_from(platform, scheduled["id"]) + timedelta(minutes=1)
    (fired,) = fire_due(platform.db, slot)
    (run_id,) = fired.run_ids
    with platform.db.session() as session:
        assert session.get(Run, run_id).workflow_id == scheduled["id"]


def test_a_tick_enqueues_the_runs_it_fires(client, platform, worker):
    workflow = create(client)
    slot = schedule_from(platform, workflow["id"]) + timedelta(minutes=1)
    tick(platform, slot)

    def finished():
        runs = client.get(f"/api/v1/runs?workflow_id={workflow['id']}").json
        return runs if runs and runs[0]["status"] == "succeeded" else None

    (run,) = wait_for(finished)
    assert run["output"]["slot"] == slot.replace(second=0, microsecond=0).isoformat().replace(
        "+00:00", "Z"
    )


def test_a_first_firing_after_downtime_covers_the_slots_since_the_schedule_was_set(
    client, platform
):
    workflow = create(client, {"schedule": {"cron": "0 2 * * *"}})
    since = schedule_from(platform, workflow["id"])
    before = since.replace(hour=2, minute=0, second=0, microsecond=0)
    if before > since:
        before -= timedelta(days=1)
    late = before + timedelta(days=3)  # no scheduler ran for the first two nights
    (fired,) = fire_due(platform.db, late + timedelta(hours=1))
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    assert events(platform)[0].data == {
        "slot": iso(late),
        "window": {"start": iso(before), "end": iso(late)},
    }
