"""``ihook scheduler``: each tick fires due scheduled workflows, then sweeps.

Any number of schedulers may run at once: a slot is claimed by a conditional update in
the transaction that stores its event and run, and the sweep is safe to repeat.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from ihook.platform import Platform
from ihook.services.schedules import fire_due
from ihook.sweeper import Sweep, sweep_once

log = logging.getLogger(__name__)

TICK = 1.0
"""Seconds between two ticks: how late after its slot a scheduled workflow may fire."""


def tick(platform: Platform, now: datetime | None = None) -> Sweep:
    """Fire what is due at ``now`` (the current time by default) and sweep."""
    for accepted in fire_due(platform.db, now):
        platform.dispatch(accepted)  # if Redis is down, the sweep (now or later) does it
    return sweep_once(platform)


def run_forever(platform: Platform, *, interval: float = TICK) -> None:
    """Tick every ``interval`` seconds; a failing database or Redis is logged and retried."""
    while True:
        try:
            tick(platform)
        except (RedisError, SQLAlchemyError) as exc:
            log.warning("scheduler tick failed, will retry: %s", exc)
        time.sleep(interval)
