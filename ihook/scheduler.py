"""``ihook scheduler``: each tick fires scheduled workflows, queues due polls, sweeps, and
(at most once an hour) cleans up what is older than the retention period.

Any number of schedulers may run at once: a slot is claimed by a conditional update in
the transaction that stores its event and run, and the sweep is safe to repeat.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ihook.platform import Platform
from ihook.services.poll_schedule import due_polls
from ihook.services.retention import maybe_clean_up
from ihook.services.schedules import fire_due
from ihook.sweeper import Sweep, sweep_once

log = logging.getLogger(__name__)

TICK = 1.0
"""Seconds between two ticks: how late after its slot a scheduled workflow may fire."""
ALIVE_SECONDS = 30
"""A scheduler whose last good tick is older than this is not counted as running."""


def tick(platform: Platform, now: datetime | None = None) -> Sweep:
    """Fire and queue what is due at ``now`` (the current time by default) and sweep."""
    for accepted in fire_due(platform.db, now):
        platform.dispatch(accepted)  # if Redis is down, the sweep (now or later) does it
    polls = due_polls(platform.db, now)
    if polls and not platform.polls.enqueue_jobs(polls):
        log.warning("%d poll(s) not queued (Redis); their next slot catches up", len(polls))
    swept = sweep_once(platform)
    maybe_clean_up(platform, now)
    return swept


def run_forever(platform: Platform, *, interval: float = TICK) -> None:
    """Tick every ``interval`` seconds; a failing database or Redis is logged and retried.

    Each good tick is noted in Redis (``note_tick``), so health can tell whether any
    scheduler, and with it the sweeper, is running.
    """
    name = f"{socket.gethostname()}:{os.getpid()}"
    while True:
        try:
            tick(platform)
            note_tick(platform, name)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("scheduler tick failed, will retry: %s", exc)
        except Exception:  # a bug must not stop the sweeper that guards everything else
            log.exception("scheduler tick crashed, will retry")
        time.sleep(interval)


def _ticks_key(platform: Platform) -> str:
    return f"ihook:{platform.settings.queue_name}:scheduler-ticks"


def note_tick(platform: Platform, name: str, at: float | None = None) -> None:
    """Record that scheduler ``name`` finished a tick ``at`` (epoch seconds, now by default)."""
    platform.redis.zadd(_ticks_key(platform), {name: time.time() if at is None else at})


def schedulers_alive(platform: Platform) -> tuple[int, float | None]:
    """How many schedulers ticked in the last ``ALIVE_SECONDS``, and how many seconds ago
    the newest tick was (None when none ever did). Forgets schedulers gone quiet."""
    key, now = _ticks_key(platform), time.time()
    with platform.redis.pipeline() as pipe:
        pipe.zremrangebyscore(key, "-inf", now - ALIVE_SECONDS)
        pipe.zcard(key)
        pipe.zrange(key, -1, -1, withscores=True)
        _, alive, newest = pipe.execute()
    return int(alive), (round(now - newest[0][1], 1) if newest else None)
