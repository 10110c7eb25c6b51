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
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

log = logging.getLogger(__name__)

DRAIN_RUNS = "ihook.jobs.drain_runs"
"""Dotted path of the job that executes due queued runs until none is left."""
DRAIN_DELIVERIES = "ihook.jobs.drain_deliveries"
"""Dotted path of the job that makes due delivery attempts until none is left."""
DRAIN_SECONDS = 20.0
"""How long one drain job keeps claiming work before it hands over to a fresh job."""
MAX_EARLY = 2.0
"""The longest a drain job started before its time waits for it."""
RUN_POLL = "ihook.jobs.run_poll"
"""Dotted path of the job that makes one poll of a poller."""
RESULT_TTL = 60
"""Seconds RQ keeps a finished job; the outcome lives in the database."""

_stopping = threading.Event()


def stop_draining() -> None:
    """Have this process's drain jobs finish what they hold and claim nothing more.

    Called when the worker is asked to stop (SIGTERM on a deploy): the run in hand ends
    and is stored, what is still due stays queued or pending in the database for the
    next worker, and the worker exits as soon as its current job returns.
    """
    _stopping.set()


def draining_stopped() -> bool:
    """Whether this process was asked to stop claiming work (see ``stop_draining``)."""
    return _stopping.is_set()


def connect(url: str) -> Redis:
    """A Redis client with short timeouts, so a dead server fails fast instead of hanging."""
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


class JobQueue:
    """An RQ queue of one job function, each job addressed by an id (polls)."""

    def __init__(self, redis: Redis, name: str, func: str, *, job_timeout: int):
        self.redis = redis
        self.queue = Queue(name, connection=redis)
        self.func = func
        self.job_timeout = job_timeout

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

    Threads of one process that wake at once share one look at Redis: a look that began
    after a thread asked to wake (after its commit) covers that thread too.
    """

    def __init__(self, redis: Redis, name: str, func: str, *, job_timeout: int):
        self.redis = redis
        self.queue = Queue(name, connection=redis)
        self.func = func
        self.job_timeout = job_timeout
        self._prefix = re.sub(r"[^A-Za-z0-9_-]", "_", name)
        self._count = threading.Lock()
        self._looking = threading.Lock()
        self._asked = 0  # wake calls so far, numbered
        self._covered = 0  # calls up to this number are covered by a successful look

    def wake(self) -> bool:
        """Make sure a drain job waits in the queue (after a commit); False if Redis failed."""
        with self._count:
            self._asked += 1
            mine = self._asked
        with self._looking:
            if self._covered >= mine:
                return True
            with self._count:
                upto = self._asked  # each of these calls began after its commit, before now
            woken = self._wake()
            if woken:
                self._covered = upto
            return woken

    def _wake(self) -> bool:
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

        Items due in the same second share one job, aimed at the end of that second.
        RQ's scheduler keeps whole seconds and may start a job early, so the job is told
        its time and waits for it (``not_before``) before it claims anything.
        """
        at = math.ceil(when.timestamp())
        try:
            self.queue.enqueue_at(
                datetime.fromtimestamp(at, UTC),
                self.func,
                not_before=at,
                job_id=f"{self._prefix}-at-{at}",
                job_timeout=self.job_timeout,
                result_ttl=RESULT_TTL,
            )
        except RedisError as exc:
            log.warning("could not schedule a worker for %s: %s", when.isoformat(), exc)
            return False
        return True

    @staticmethod
    def wait_until(not_before: float | None) -> None:
        """In a drain job started early by RQ's scheduler: wait for its time."""
        if not_before is not None:
            time.sleep(min(MAX_EARLY, max(0.0, not_before - time.time())))

    def depth(self) -> int:
        """How many drain jobs wait in the queue (0 or 1 normally)."""
        return self.queue.count
