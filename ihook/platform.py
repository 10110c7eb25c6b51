"""One process's handles on the platform: settings, database, vault, Redis, queue.

Built once per process (API app, worker, scheduler) and passed to services, which
never build their own.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from redis import Redis

from connectors.outbound import OutboundPolicy
from ihook.db import Database
from ihook.queue import (
    DRAIN_DELIVERIES,
    DRAIN_RUNS,
    DRAIN_SECONDS,
    RUN_POLL,
    JobQueue,
    WorkQueue,
    connect,
)
from ihook.ratelimit import Limiter
from ihook.secrets import Vault
from ihook.settings import Settings

if TYPE_CHECKING:
    from ihook.services.events import Accepted


class Platform:
    """Lazily opened connections for one process; cheap to create."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def db(self) -> Database:
        """The database (engine + sessions)."""
        return Database(self.settings.database_url)

    @cached_property
    def vault(self) -> Vault:
        """Encrypts and decrypts secrets at rest."""
        return Vault(self.settings.require_secret_keys())

    @cached_property
    def redis(self) -> Redis:
        """The Redis client for queues, locks and rate limits."""
        return connect(self.settings.require_redis_url())

    @cached_property
    def limiter(self) -> Limiter:
        """The endpoints' rate limits (counted in Redis)."""
        return Limiter(self.redis)

    @cached_property
    def queue(self) -> WorkQueue:
        """Wakes the workers that execute queued runs."""
        return WorkQueue(
            self.redis,
            self.settings.queue_name,
            DRAIN_RUNS,
            job_timeout=int(DRAIN_SECONDS) + self.settings.run_timeout + 30,
        )

    @cached_property
    def deliveries(self) -> WorkQueue:
        """Wakes the workers that send deliveries (a queue of its own: never behind runs)."""
        return WorkQueue(
            self.redis,
            f"{self.settings.queue_name}-deliveries",
            DRAIN_DELIVERIES,
            job_timeout=int(DRAIN_SECONDS) + 2 * self.settings.delivery_timeout + 60,
        )

    @cached_property
    def polls(self) -> JobQueue:
        """The queue of polls (job ids ``poll-<poller>-<slot>``, so a slot is queued once)."""
        return JobQueue(
            self.redis,
            f"{self.settings.queue_name}-polls",
            RUN_POLL,
            job_timeout=self.settings.run_timeout + 30,
        )

    def dispatch(self, accepted: Accepted) -> None:
        """Wake workers for what storing an event produced: its runs and its deliveries."""
        if accepted.run_ids:
            self.queue.wake()
        if accepted.delivery_ids:
            self.deliveries.wake()

    @cached_property
    def outbound(self) -> OutboundPolicy:
        """The SSRF guard's policy: workflows and connectors, subscription URLs at save time.

        A delivery's URL is checked again when it is sent, under a policy of its own (the
        delivery timeout, no redirects followed).
        """
        return OutboundPolicy(allow_private=self.settings.allow_private_networks)

    def close(self) -> None:
        """Release pooled connections."""
        if "db" in self.__dict__:
            self.db.dispose()
        if "redis" in self.__dict__:
            self.redis.close()
