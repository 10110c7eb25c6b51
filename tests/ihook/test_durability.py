"""Nothing acknowledged is lost: Redis stopped under load, a worker killed mid-run.

Real redis-server, real worker and scheduler processes, real SIGKILL.
"""

from __future__ import annotations

import threading
import time

import pytest
from redis import Redis
from sqlalchemy import func, select
from werkzeug import Request, Response

from ihook.models import Event, Record, Run, RunStatus
from tests.conftest import Processes, RedisServer
from tests.support import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server(tmp_path):
    """A Redis of this test's own, so it can be stopped and started again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def status_counts(platform) -> dict[str, int]:
    with platform.db.session() as session:
        rows = session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
    return {status: n for status, n in rows}


def ingest_path(client, name: str, workflow_steps: list[dict]) -> str:
    endpoint = client.post(
        "/api/v1/endpoints",
        json={"name": name, "auth": {"type": "none"}, "rate_limit": None},
    ).json
    workflow = {"name": f"{name}-flow", "trigger": {"endpoint": name}, "steps": workflow_steps}
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    return "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_thousand_webhooks_survive_redis_stopping(client, platform, processes, redis_server):
    path = ingest_path(
        client,
        "bulk",
        [
            {"id": "row", "type": "transform", "mapping": {"n": "data.n", "who": "data.who"}},
            {"id": "save", "type": "upsert", "collection": "bulk", "key": "n", "data": "steps.row"},
        ],
    )
    processes.start("worker")
    processes.start("worker")
    processes.start("scheduler", "--interval", "0.5")
    answers = []
    for n in range(1000):
        if n == 300:
            redis_server.stop()
        if n == 700:
            redis_server.start()
        answers.append(client.raw.post(path, json={"n": n, "who": f"member-{n}"}).status_code)
    assert answers == [202] * 1000

    def all_finished():
        counts = status_counts(platform)
        return counts if counts.get("succeeded", 0) + counts.get("failed", 0) == 1000 else None

    counts = wait_for(all_finished, timeout=180, interval=0.5)
    assert counts == {"succeeded": 1000}, processes.logs()[-3000:]
    with platform.db.session() as session:
        by_type = dict(session.execute(select(Event.type, func.count()).group_by(Event.type)).all())
        assert by_type == {"webhook.received": 1000, "record.created": 1000}
        records = session.scalar(select(func.count()).select_from(Record))
        attempts = session.scalar(select(func.max(Run.attempt)))
    assert records == 1000  # every webhook written once: none lost, none doubled
    assert attempts == 1  # the sweeper enqueued, nothing ran twice


def test_a_run_whose_worker_is_killed_is_requeued_and_finishes(
    client, platform, settings, tmp_path, httpserver
):
    first_call = threading.Event()
    calls = []

    def slow_crm(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            first_call.set()
            time.sleep(5)  # the worker is killed while it waits for this answer
        return Response("{}", status=200, content_type="application/json")

    httpserver.expect_request("/activities").respond_with_handler(slow_crm)
    path = ingest_path(
        client,
        "lms",
        [
            {
                "id": "notify",
                "type": "send",
                "url": httpserver.url_for("/activities"),
                "body": "data",
            }
        ],
    )
    # A short run timeout so the sweeper notices the lost worker quickly.
    procs = Processes(settings.replace(run_timeout=3), tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    try:
        victim = procs.start("worker")
        procs.start("scheduler", "--interval", "0.5")
        run_id = client.raw.post(path, json={"member": "m-1"}).json["runs"][0]
        assert first_call.wait(30), procs.logs()
        with platform.db.session() as session:
            assert session.get(Run, run_id).status == RunStatus.running
        procs.kill(victim)
        procs.start("worker")

        def done():
            with platform.db.session() as session:
                run = session.get(Run, run_id)
            return run if run.status not in (RunStatus.queued, RunStatus.running) else None

        run = wait_for(done, timeout=60, interval=0.2)
    finally:
        procs.stop_all()
    assert run.status == RunStatus.succeeded, procs.logs()[-3000:]
    assert run.attempt == 2
    assert len(calls) == 2


def test_sweeper_requeues_runs_whose_jobs_redis_lost(client, platform, redis_server, worker):
    path = ingest_path(client, "lost", [{"id": "row", "type": "transform", "expression": "data"}])
    Redis.from_url(redis_server.url).flushall()  # nothing enqueued yet; worker idle
    redis_server.stop()
    for n in range(5):
        assert client.raw.post(path, json={"n": n}).status_code == 202
    redis_server.start()
    time.sleep(1.5)  # past the sweep grace
    assert status_counts(platform) == {"queued": 5}
    from ihook.sweeper import sweep_once

    sweep = sweep_once(platform)
    assert sweep.waiting == 5 and sweep.released == 0
    assert wait_for(lambda: status_counts(platform) == {"succeeded": 5})
    assert sweep_once(platform).waiting == 0  # nothing left to do, nothing done twice
