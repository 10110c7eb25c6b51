"""Redis and the RQ queues: how runs, deliveries and polls reach workers.

Runs and deliveries wait in the database, not in Redis. A ``WorkQueue`` only wakes
workers: it keeps a *drain* job waiting in its RQ queue, and the worker that takes the
job claims due items from the database one after another until none is left. So the
cost of an RQ job (about 60 Redis commands) is paid per burst, not per item. Polls are
one RQ job each (``JobQueue``), addressed by poller and slot.

Waking always follows a database commit and may fail (Redis down): callers log and carry
on, because the scheduler's sweeper wakes a worker for any run left ``queued`` and any
delivery left ``pending`` past its time.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)

DRAIN_RUNS = "ihook.jobs.drain_runs"
"""Dotted path of the job that executes due queued runs until none is left."""
DRAIN_DELIVERIES = "ihook.jobs.drain_deliveries"
"""Dotted path of the job that makes due delivery attempts until none is left."""
SEND_DELIVERY = "ihook.jobs.send_delivery"
"""Dotted path of the job that makes one attempt at a delivery."""
DRAIN_SECONDS = 20.0
"""How long one drain job keeps claiming work before it hands over to a fresh job."""
RUN_POLL = "ihook.jobs.run_poll"
"""Dotted path of the job that makes one poll of a poller."""
RESULT_TTL = 60
"""Seconds RQ keeps a finished job; the outcome lives in the database."""
IDLE_JOB_STATES = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
"""Job states meaning no worker will pick the job up again."""


def connect(url: str) -> Redis:
    """A Redis client with short timeouts, so a dead server fails fast instead of hanging."""
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def job_id(item_id: str, attempt: int) -> str:
    """The deterministic RQ job id of a run's or delivery's ``attempt`` (1-based)."""
    return f"{item_id}-{attempt}"


class JobQueue:
    """An RQ queue of one job function, addressed by item (run, delivery) id and attempt."""

    def __init__(self, redis: Redis, name: str, func: str, *, job_timeout: int):
        self.redis = redis
        self.queue = Queue(name, connection=redis)
        self.func = func
        self.job_timeout = job_timeout

    def enqueue(self, runs: Iterable[tuple[str, int]]) -> bool:
        """Enqueue ``(item_id, next_attempt)`` pairs in one pipeline; False if Redis failed."""
        return self.enqueue_jobs((job_id(item, attempt), (item,)) for item, attempt in runs)

    def enqueue_jobs(self, jobs: Iterable[tuple[str, tuple[Any, ...]]]) -> bool:
        """Enqueue ``(job id, args)`` pairs in one pipeline; False if Redis failed.

        A job id already queued is not queued twice (RQ replaces the job in place).
        """
        datas = [
            Queue.prepare_data(
                self.func,
                args=args,
                job_id=jid,
                timeout=self.job_timeout,
                result_ttl=RESULT_TTL,
                failure_ttl=24 * 3600,
            )
            for jid, args in jobs
        ]
        if not datas:
            return True
        try:
            with self.redis.pipeline() as pipe:
                self.queue.enqueue_many(datas, pipeline=pipe)
                pipe.execute()
        except RedisError as exc:
            log.warning("could not enqueue %d job(s), the sweeper will: %s", len(datas), exc)
            return False
        return True

    def enqueue_in(
        self, delay: timedelta, run_id: str, attempt: int, *, id_suffix: str = ""
    ) -> bool:
        """Schedule a later attempt; False if Redis failed (the sweeper catches it up).

        ``id_suffix`` tells apart a job put off again for the same attempt.
        """
        # RQ's scheduler keeps whole seconds and may run a job up to a second before its
        # time; aim at the next whole second after it so the wait is never cut short.
        at = datetime.fromtimestamp(math.ceil(time.time() + delay.total_seconds()), UTC)
        try:
            self.queue.enqueue_at(
                at,
                self.func,
                run_id,
                job_id=job_id(run_id, attempt) + id_suffix,
                job_timeout=self.job_timeout,
                result_ttl=RESULT_TTL,
            )
        except RedisError as exc:
            log.warning("could not schedule retry of %s: %s", run_id, exc)
            return False
        return True

    def missing(self, runs: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
        """The items whose job for that attempt is absent from Redis or already over."""
        jobs = Job.fetch_many([job_id(r, a) for r, a in runs], connection=self.redis)
        return [
            run
            for run, job in zip(runs, jobs, strict=True)
            if job is None or job.get_status(refresh=False) in IDLE_JOB_STATES
        ]

    def depth(self) -> int:
        """How many jobs wait in the queue."""
        return self.queue.count


class WorkQueue:
    """Wakes the workers that drain work kept in the database (runs, deliveries).

    ``wake`` makes sure one drain job waits in the RQ queue. The worker that takes it
    claims due items from the database until none is left, and wakes another worker when
    it finds more than its own item waiting, so every free worker joins a backlog. A job
    that waits in the queue has not looked at the database yet, so it will see anything
    committed before the wake: nothing committed is left without a job to find it.
    """

    def __init__(self, redis: Redis, name: str, func: str, *, job_timeout: int):
        self.redis = redis
        self.queue = Queue(name, connection=redis)
        self.func = func
        self.job_timeout = job_timeout
        self._prefix = re.sub(r"[^A-Za-z0-9_-]", "_", name)

    def wake(self) -> bool:
        """Make sure a drain job waits in the queue; False if Redis failed."""
        try:
            if self.redis.llen(self.queue.key) > 0:
                return True
            data = Queue.prepare_data(
                self.func,
                job_id=f"{self._prefix}-{uuid.uuid4().hex}",
                timeout=self.job_timeout,
                result_ttl=RESULT_TTL,
                failure_ttl=24 * 3600,
            )
            with self.redis.pipeline() as pipe:
                self.queue.enqueue_many([data], pipeline=pipe)
                pipe.execute()
        except RedisError as exc:
            log.warning("could not wake a worker, the sweeper will: %s", exc)
            return False
        return True

    def wake_at(self, when: datetime) -> bool:
        """Have a drain job start at ``when`` (a retry's time); False if Redis failed.

        Items due in the same second share one job.
        """
        # RQ's scheduler keeps whole seconds and may start a job up to a second before its
        # time; aim a second past it so the job never comes before the item is due.
        at = datetime.fromtimestamp(math.ceil(when.timestamp()) + 1, UTC)
        try:
            self.queue.enqueue_at(
                at,
                self.func,
                job_id=f"{self._prefix}-at-{int(at.timestamp())}",
                job_timeout=self.job_timeout,
                result_ttl=RESULT_TTL,
            )
        except RedisError as exc:
            log.warning("could not schedule a worker for %s: %s", at.isoformat(), exc)
            return False
        return True

    def depth(self) -> int:
        """How many drain jobs wait in the queue (0 or 1 normally)."""
        return self.queue.count
