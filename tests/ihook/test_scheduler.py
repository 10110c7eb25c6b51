"""``ihook scheduler`` processes: several at once poll every slot exactly once."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug import Response

from ihook.ids import new_id
from ihook.models import Event, Poll, Poller, utcnow
from tests.support import wait_for

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


@pytest.mark.slow
def test_a_restart_of_scheduler_and_worker_between_polls_changes_nothing(
    client, platform, processes, httpserver
):
    items = [{"id": n, "title": f"item {n}"} for n in range(300)]

    def page(request):
        number = int(request.args.get("page", "1"))
        chunk = items[(number - 1) * 100 : number * 100]
        return Response(json.dumps(chunk), content_type="application/json")

    httpserver.expect_request("/items").respond_with_handler(page)
    created = client.post(
        "/api/v1/pollers",
        json={
            "name": "tickets",
            "request": {"url": httpserver.url_for("/items")},
            "interval_seconds": 5,
            "id": "id",
            "pagination": {"page_param": "page", "page_size": 100},
        },
    )
    assert created.status_code == 201, created.json
    poller_id = created.json["id"]

    def polls() -> list[Poll]:
        with platform.db.session() as session:
            query = select(Poll).where(Poll.poller_id == poller_id).order_by(Poll.started_at)
            return list(session.scalars(query))

    def item_events() -> int:
        with platform.db.session() as session:
            query = select(Event).where(Event.type == "tickets.item")
            return len(session.scalars(query).all())

    first = [processes.start("worker"), processes.start("scheduler", "--interval", "0.5")]
    wait_for(lambda: polls(), timeout=20)
    assert polls()[0].items_new == 300 and item_events() == 300
    for proc in first:
        processes.kill(proc)
    done = len(polls())

    items.extend({"id": n, "title": f"item {n}"} for n in range(300, 305))
    processes.start("worker")
    processes.start("scheduler", "--interval", "0.5")
    wait_for(lambda: len(polls()) > done and polls()[-1].status == "succeeded", timeout=20)
    later = polls()[done:]
    assert sum(p.items_new for p in later) == 5 and item_events() == 305
    assert {p.status for p in polls()} == {"succeeded"}


def test_health_counts_the_schedulers_that_tick(client, platform, processes):
    from ihook.scheduler import ALIVE_SECONDS, note_tick

    health = client.raw.get("/api/v1/health").json
    assert health["schedulers"] == 0 and health["scheduler_last_tick_seconds"] is None
    note_tick(platform, "gone-quiet", at=time.time() - ALIVE_SECONDS - 1)
    assert client.raw.get("/api/v1/health").json["schedulers"] == 0  # too long ago

    processes.start("scheduler", "--interval", "0.2")
    ticking = wait_for(
        lambda: (h := client.raw.get("/api/v1/health").json)["schedulers"] == 1 and h
    )
    assert 0 <= ticking["scheduler_last_tick_seconds"] < 5
    assert platform.redis.zcard(f"ihook:{platform.settings.queue_name}:scheduler-ticks") == 1
