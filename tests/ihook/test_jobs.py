"""Drain jobs: a worker claims due queued runs from the database until none is left."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from ihook import jobs
from ihook.models import Record, Run, RunStatus, utcnow

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def drainer(platform):
    jobs.use_platform(platform)
    yield jobs.drain_runs
    jobs.use_platform(None)


def queue_runs(client, count: int) -> list[str]:
    """``count`` webhooks to an endpoint whose workflow upserts one record each."""
    endpoint = client.post(
        "/api/v1/endpoints", json={"name": "drain", "auth": {"type": "none"}, "rate_limit": None}
    ).json
    steps = [{"id": "save", "type": "upsert", "collection": "drained", "key": "n", "data": "data"}]
    workflow = {"name": "drain-flow", "trigger": {"endpoint": "drain"}, "steps": steps}
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    return [client.raw.post(path, json={"n": n}).json["runs"][0] for n in range(count)]


def statuses(platform) -> dict[str, int]:
    with platform.db.session() as session:
        return dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).all())


def test_accepting_webhooks_leaves_one_drain_job_waiting(client, platform):
    queue_runs(client, 5)
    assert statuses(platform) == {"queued": 5}
    assert platform.queue.depth() == 1  # five wake-ups, one job


@both_backends
def test_a_drain_job_runs_every_due_run_once(client, platform, drainer):
    queue_runs(client, 6)
    assert drainer() == "6 run(s)"
    assert statuses(platform) == {"succeeded": 6}
    with platform.db.session() as session:
        assert session.scalar(select(func.max(Run.attempt))) == 1
    assert drainer() == "0 run(s)"


def test_a_drain_job_wakes_another_worker_for_a_backlog(client, platform, drainer):
    queue_runs(client, 3)
    platform.redis.delete(platform.queue.queue.key)  # the waiting job was taken
    assert drainer() == "3 run(s)"
    assert platform.queue.depth() == 1  # it saw more than its first run waiting


def test_a_single_run_wakes_nobody_else(client, platform, drainer):
    queue_runs(client, 1)
    platform.redis.delete(platform.queue.queue.key)
    assert drainer() == "1 run(s)"
    assert platform.queue.depth() == 0


def test_runs_not_yet_due_are_left_queued(client, platform, drainer):
    later, now = queue_runs(client, 2)
    with platform.db.session() as session:
        session.execute(
            update(Run).where(Run.id == later).values(next_attempt_at=utcnow() + timedelta(hours=1))
        )
    assert drainer() == "1 run(s)"
    with platform.db.session() as session:
        assert session.get(Run, later).status == RunStatus.queued
        assert session.get(Run, now).status == RunStatus.succeeded


def test_a_drain_job_out_of_time_hands_over(client, platform, drainer, monkeypatch):
    queue_runs(client, 2)
    platform.redis.delete(platform.queue.queue.key)
    monkeypatch.setattr(jobs, "DRAIN_SECONDS", 0.0)
    assert drainer() == "0 run(s), more left"
    assert platform.queue.depth() == 1 and statuses(platform) == {"queued": 2}


@both_backends
def test_drain_jobs_racing_run_each_run_once(client, platform, drainer):
    queue_runs(client, 40)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(drainer())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(int(r.split()[0]) for r in results) == 40
    assert statuses(platform) == {"succeeded": 40}
    with platform.db.session() as session:
        assert session.scalar(select(func.max(Run.attempt))) == 1
        assert session.scalar(select(func.count()).select_from(Record)) == 40


def test_old_one_job_per_run_jobs_are_still_honoured(client, platform, drainer):
    (run_id,) = queue_runs(client, 1)
    assert jobs.execute_run(run_id) == "succeeded"
    assert jobs.execute_run(run_id).startswith("not claimed")
