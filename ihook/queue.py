"""Redis and the RQ queues: how runs and deliveries reach workers.

Enqueueing always follows a database commit and may fail (Redis down): callers log and
carry on, because the scheduler's sweeper enqueues any run left ``queued`` and any
delivery left ``pending`` past its time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job, JobStatus

log = logging.getLogger(__name__)

EXECUTE_RUN = "ihook.jobs.execute_run"
"""Dotted path of the job that executes one run."""
SEND_DELIVERY = "ihook.jobs.send_delivery"
"""Dotted path of the job that makes one attempt at a delivery."""
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
