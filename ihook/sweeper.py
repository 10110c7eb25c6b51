"""The sweeper: the scheduler's guarantee that nothing acknowledged is lost.

Each pass (1) re-queues runs stuck ``running`` past their deadline — their worker died —
and (2) wakes a worker when runs have waited ``queued`` past the grace — Redis was down
when they were accepted, or lost the wake-up; then does the same for deliveries. Safe to run in
several schedulers at once: the database updates are conditional and a run or an attempt
happens only after a worker claims it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ihook.platform import Platform
from ihook.services import deliveries
from ihook.services.runs import release_stuck, waiting_runs

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    """What one pass did."""

    released: int = 0
    waiting: int = 0
    """Runs found queued past the grace (a worker was woken for them)."""
    deliveries: int = 0
    """Deliveries released (their worker was lost) or found pending past the grace."""


def sweep_once(platform: Platform) -> Sweep:
    """One pass over stuck and forgotten runs."""
    settings = platform.settings
    with platform.db.session() as session:
        released = release_stuck(session, max_attempts=settings.max_attempts)
    if released:
        log.warning("re-queued %d run(s) whose worker was lost", len(released))
    with platform.db.read() as session:
        waiting = waiting_runs(session, grace=settings.sweep_grace)
    if released or waiting:
        platform.queue.wake()
    if waiting:
        log.info("%d run(s) queued past the grace; woke a worker", waiting)
    return Sweep(released=len(released), waiting=waiting, deliveries=_sweep_deliveries(platform))


def _sweep_deliveries(platform: Platform) -> int:
    """The same for deliveries: release lost ``sending`` ones, wake a worker for late ones."""
    with platform.db.session() as session:
        released = deliveries.release_stuck(session)
    with platform.db.read() as session:
        late = deliveries.waiting(session, grace=platform.settings.sweep_grace)
    if released:
        log.warning("released %d deliver(ies) whose worker was lost", len(released))
    if released or late:
        platform.deliveries.wake()
    return len(released) + late
