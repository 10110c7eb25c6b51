"""Polls are queued once per slot of a poller's schedule, on a controllable clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from ihook.ids import new_id
from ihook.models import Poller
from ihook.services.poll_schedule import due_polls, poll_job_id

EVERY_MINUTE = {"cron": "* * * * *"}
SINCE = datetime(2026, 11, 22, 9, 59, 30, tzinfo=UTC)


def add_poller(platform, schedule=EVERY_MINUTE, **fields) -> str:
    poller_id = new_id("pol")
    with platform.db.session() as session:
        session.add(
            Poller(
                id=poller_id,
                name=fields.pop("name", poller_id),
                config={"schedule": schedule, "request": {"url": "https://x.example/items"}},
                event_type="items.item",
                schedule_from=fields.pop("schedule_from", SINCE),
                **fields,
            )
        )
    return poller_id


def at(minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 22, 10, minute, second, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_cron_poller_is_due_on_its_minute_boundary_once(platform):
    poller_id = add_poller(platform)
    assert due_polls(platform.db, at(0) - timedelta(seconds=1)) == []  # 09:59 < its start
    assert due_polls(platform.db, at(0)) == [
        (poll_job_id(poller_id, at(0)), (poller_id, "2026-11-22T10:00:00Z"))
    ]
    assert due_polls(platform.db, at(0, 59)) == []  # the same slot again
    (job,) = due_polls(platform.db, at(5, 30))  # 10:01-10:04 missed: one poll, for 10:05
    assert job == (f"poll-{poller_id}-20261122T100500Z", (poller_id, "2026-11-22T10:05:00Z"))


def test_an_interval_poller_and_a_changed_interval(platform):
    poller_id = add_poller(platform, {"interval_seconds": 5})
    assert [j[0] for j in due_polls(platform.db, at(0, 3))] == [
        f"poll-{poller_id}-20261122T100000Z"
    ]
    assert due_polls(platform.db, at(0, 4)) == []
    assert len(due_polls(platform.db, at(0, 5))) == 1
    with platform.db.session() as session:  # the interval changes: the next tick follows it
        session.get(Poller, poller_id).config = {"schedule": {"interval_seconds": 60}}
    assert due_polls(platform.db, at(0, 10)) == []
    assert [j[1][1] for j in due_polls(platform.db, at(1, 0))] == ["2026-11-22T10:01:00Z"]


def test_a_failing_poller_waits_for_its_back_off(platform):
    add_poller(platform, retry_after=at(3))
    assert due_polls(platform.db, at(2, 59)) == []
    assert [j[1][1] for j in due_polls(platform.db, at(3))] == ["2026-11-22T10:03:00Z"]


def test_disabled_and_unscheduled_pollers_are_never_due(platform):
    add_poller(platform, enabled=False)
    add_poller(platform, schedule_from=None)
    add_poller(platform, schedule={"cron": "not a cron"})
    assert due_polls(platform.db, at(30)) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_schedulers_racing_for_a_slot_queue_it_once(platform):
    add_poller(platform)
    barrier = threading.Barrier(6)
    found: list[list] = []

    def scheduler() -> None:
        barrier.wait()
        found.append(due_polls(platform.db, at(1)))

    threads = [threading.Thread(target=scheduler) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(jobs) for jobs in found) == [0, 0, 0, 0, 0, 1]


def test_a_tick_queues_the_due_poll_in_redis(platform):
    from rq.job import Job

    from ihook.scheduler import tick

    poller_id = add_poller(platform)
    tick(platform, at(0))
    tick(platform, at(0, 30))  # the same slot: not queued again
    job = Job.fetch(f"poll-{poller_id}-20261122T100000Z", connection=platform.redis)
    assert job.args == (poller_id, "2026-11-22T10:00:00Z")
    assert platform.polls.queue.count == 1
