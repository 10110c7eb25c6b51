"""When pollers poll: each slot of a poller's schedule is claimed once, then queued.

Like scheduled workflows (``ihook.services.schedules``): the newest slot that has come is
claimed by a conditional UPDATE of ``pollers.last_slot``, so any number of schedulers
queue a slot once, and slots missed while no scheduler ran collapse into one poll. The
job id ``poll-<poller>-<slot>`` is the same in every scheduler, so a slot is also queued
once in Redis. A poller that failed waits until ``retry_after`` (its back-off); the
schedule is read from the row at every tick, so a changed interval or cron applies at
the next one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update

from ihook.db import Database
from ihook.models import Poller, utcnow
from workflows.schedule import Schedule, ScheduleError, parse_schedule

PollJob = tuple[str, tuple[Any, ...]]
"""A poll to queue: its job id and the arguments of ``ihook.jobs.run_poll``."""


def poll_job_id(poller_id: str, slot: datetime) -> str:
    """The job id of a poller's slot, the same in every scheduler (RQ: letters, digits, _, -)."""
    return f"poll-{poller_id}-{slot.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def schedule_of(config: dict[str, Any]) -> Schedule | None:
    """A poller's schedule, or None when its stored config has none that parses."""
    try:
        return parse_schedule(config.get("schedule"))
    except ScheduleError:
        return None


def due_slot(
    schedule: Schedule,
    now: datetime,
    since: datetime,
    last: datetime | None,
    retry_after: datetime | None,
) -> datetime | None:
    """The slot a tick at ``now`` would claim for a poller counting slots from ``since``
    whose newest claimed slot is ``last``; None while it backs off or no new slot has come."""
    if retry_after is not None and now < retry_after:
        return None
    slot = schedule.latest(now)
    if slot < since or (last is not None and slot <= last):
        return None
    return slot


def due_polls(db: Database, now: datetime | None = None) -> list[PollJob]:
    """Claim every enabled poller's due slot; return the polls to queue."""
    now = now or utcnow()
    with db.session() as session:
        rows = session.execute(
            select(
                Poller.id, Poller.config, Poller.schedule_from, Poller.last_slot, Poller.retry_after
            )
            .where(Poller.enabled.is_(True), Poller.schedule_from.is_not(None))
            .order_by(Poller.id)
        ).all()
    jobs: list[PollJob] = []
    for poller_id, config, since, last, retry_after in rows:
        schedule = schedule_of(config)
        slot = due_slot(schedule, now, since, last, retry_after) if schedule else None
        if slot is None:
            continue
        with db.session() as session:
            claimed = session.execute(
                update(Poller)
                .where(
                    Poller.id == poller_id,
                    Poller.enabled.is_(True),
                    or_(Poller.last_slot.is_(None), Poller.last_slot < slot),
                )
                .values(last_slot=slot)
                .execution_options(synchronize_session=False)
            ).rowcount
        if claimed:
            jobs.append((poll_job_id(poller_id, slot), (poller_id, _iso(slot))))
    return jobs


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
