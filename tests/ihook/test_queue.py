"""Wake-ups: Redis carries at most one waiting drain job per queue, never the work itself."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from redis import Redis
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from ihook.models import utcnow
from ihook.queue import WorkQueue
from tests.support import free_port


def test_many_wake_ups_leave_one_job_waiting(platform):
    for _ in range(10):
        assert platform.queue.wake()
    assert platform.queue.depth() == 1
    assert platform.deliveries.depth() == 0  # each queue wakes its own workers


def test_retries_due_in_the_same_second_share_one_scheduled_job(platform):
    when = utcnow().replace(microsecond=200_000) + timedelta(seconds=30)
    assert platform.queue.wake_at(when)
    assert platform.queue.wake_at(when + timedelta(microseconds=1))
    registry = ScheduledJobRegistry(queue=platform.queue.queue)
    (job_id,) = registry.get_job_ids()
    at = registry.get_scheduled_time(job_id)
    assert at.timestamp() == math.ceil(when.timestamp())
    job = Job.fetch(job_id, connection=platform.redis)
    assert job.kwargs == {"not_before": at.timestamp()}  # started early, it waits for it
    assert platform.queue.depth() == 0


def test_a_job_started_early_waits_for_its_time():
    started = time.monotonic()
    WorkQueue.wait_until(time.time() + 0.3)
    WorkQueue.wait_until(time.time() - 5)  # late: no wait
    WorkQueue.wait_until(None)
    assert 0.28 <= time.monotonic() - started < 1.0


def test_redis_down_is_reported_not_raised():
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    queue = WorkQueue(dead, "ihook", "ihook.jobs.drain_runs", job_timeout=60)
    assert queue.wake() is False
    assert queue.wake_at(utcnow()) is False


def test_threads_waking_at_once_share_looks_and_leave_one_job(platform):
    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(lambda _: platform.queue.wake(), range(200)))
    assert platform.queue.depth() == 1
