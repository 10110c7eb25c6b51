"""``ihook scheduler`` processes: several at once poll every slot exactly once."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from ihook.ids import new_id
from ihook.models import Event, Poll, Poller, utcnow

RUN_FOR = 60
"""Seconds the two schedulers run side by side."""


@pytest.mark.slow
def test_two_schedulers_poll_every_slot_exactly_once(platform, processes, httpserver):
    items = [{"id": n} for n in range(3)]
    httpserver.expect_request("/items").respond_with_json(items)
    poller_id = new_id("pol")
    with platform.db.session() as session:
        session.add(
            Poller(
                id=poller_id,
                name="every-5s",
                config={
                    "request": {"url": httpserver.url_for("/items"), "method": "GET"},
                    "schedule": {"interval_seconds": 5},
                    "items": "@",
                    "id": "id",
                    "max_pages": 10,
                    "format": "auto",
                    "mode": "item",
                    "event_type": "thing.item",
                },
                event_type="thing.item",
                schedule_from=utcnow(),
            )
        )
    processes.start("worker")
    schedulers = [processes.start("scheduler", "--interval", "0.5") for _ in range(2)]
    time.sleep(RUN_FOR)
    for scheduler in schedulers:
        processes.kill(scheduler)
    time.sleep(3)  # the last slot's poll finishes
    with platform.db.session() as session:
        polls = session.scalars(select(Poll).where(Poll.poller_id == poller_id)).all()
        events = session.scalars(select(Event).where(Event.type == "thing.item")).all()
        last_slot = session.get(Poller, poller_id).last_slot
    slots = sorted(poll.slot for poll in polls)
    assert len(slots) == len(set(slots)), "a slot was polled twice"
    assert len(slots) >= RUN_FOR // 5 - 2, slots
    steps = {later - earlier for earlier, later in zip(slots, slots[1:], strict=False)}
    assert steps == {timedelta(seconds=5)}, "a slot was skipped"
    assert slots[-1] == last_slot
    assert {poll.status for poll in polls} == {"succeeded"}
    assert len(events) == 3  # the same three items every time: each stored once
    assert "Traceback" not in processes.logs()


def test_a_cron_poller_and_a_cron_workflow_fire_on_their_minute_boundary(client, platform):
    from ihook.models import Run, Workflow
    from ihook.scheduler import tick
    from ihook.services.poll_schedule import poll_job_id

    every_minute = "* * * * *"
    workflow = client.post(
        "/api/v1/workflows",
        json={
            "name": "minutely",
            "trigger": {"schedule": {"cron": every_minute}},
            "steps": [{"id": "slot", "type": "transform", "expression": "data.slot"}],
        },
    )
    assert workflow.status_code == 201, workflow.json
    poller = client.post(
        "/api/v1/pollers",
        json={
            "name": "minutely",
            "request": {"url": "https://127.0.0.1:9/x"},
            "cron": every_minute,
            "id": "id",
        },
    )
    assert poller.status_code == 201, poller.json
    with platform.db.session() as session:
        since = max(
            session.get(Workflow, workflow.json["id"]).schedule_from,
            session.get(Poller, poller.json["id"]).schedule_from,
        )
    boundary = since.replace(second=0, microsecond=0) + timedelta(minutes=1)

    tick(platform, boundary - timedelta(milliseconds=1))
    with platform.db.session() as session:
        assert session.scalars(select(Run)).all() == []
    assert platform.polls.queue.count == 0

    tick(platform, boundary)
    with platform.db.session() as session:
        (run,) = session.scalars(select(Run)).all()
        assert run.workflow_id == workflow.json["id"]
    assert platform.queue.queue.count == 1
    assert platform.polls.queue.job_ids == [poll_job_id(poller.json["id"], boundary)]
