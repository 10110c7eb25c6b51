"""Counts the console's pages show: the last day's events, runs and deliveries, by status
and by hour, and each endpoint's accepted and rejected requests. Takes a session, like
the services; imports no Flask."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from ihook.models import Delivery, Event, Rejection, Run

WINDOW = timedelta(hours=24)
"""How far back the dashboard looks."""
BUCKET = timedelta(hours=1)
"""One bar of the dashboard's chart."""


@dataclass
class Hour:
    """One hour of the chart."""

    start: datetime
    events: int = 0
    runs: int = 0
    failures: int = 0
    """Failed runs plus failed deliveries created in the hour."""


@dataclass
class Day:
    """The dashboard's numbers over ``WINDOW`` up to ``until``."""

    since: datetime
    until: datetime
    events: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    deliveries: dict[str, int] = field(default_factory=dict)
    hours: list[Hour] = field(default_factory=list)


def by_status(session: Session, model: Any, since: datetime, until: datetime) -> dict[str, int]:
    """Rows of ``model`` (Run or Delivery) created in [since, until), counted by status."""
    rows = session.execute(
        select(model.status, func.count())
        .where(model.created_at >= since, model.created_at < until)
        .group_by(model.status)
    )
    return {str(status): int(count) for status, count in rows}


def _hourly(session: Session, column: Any, starts: list[datetime], *where: Any) -> list[int]:
    """Rows per hour: one query of one SUM(CASE…) per bucket, the same on SQLite and
    PostgreSQL (no dialect's date functions)."""
    sums = [
        func.sum(case((and_(column >= start, column < start + BUCKET), 1), else_=0))
        for start in starts
    ]
    last = starts[-1] + BUCKET
    row = session.execute(select(*sums).where(column >= starts[0], column < last, *where)).one()
    return [int(value or 0) for value in row]


def last_day(session: Session, now: datetime) -> Day:
    """The numbers of the 24 hours up to the end of the current hour."""
    until = now.replace(minute=0, second=0, microsecond=0) + BUCKET
    since = until - WINDOW
    starts = [since + BUCKET * i for i in range(int(WINDOW / BUCKET))]
    day = Day(since=since, until=until)
    day.events = int(
        session.scalar(
            select(func.count()).where(Event.received_at >= since, Event.received_at < until)
        )
        or 0
    )
    day.runs = by_status(session, Run, since, until)
    day.deliveries = by_status(session, Delivery, since, until)
    events = _hourly(session, Event.received_at, starts)
    runs = _hourly(session, Run.created_at, starts)
    failed_runs = _hourly(session, Run.created_at, starts, Run.status == "failed")
    failed_deliveries = _hourly(session, Delivery.created_at, starts, Delivery.status == "failed")
    day.hours = [
        Hour(start, events[i], runs[i], failed_runs[i] + failed_deliveries[i])
        for i, start in enumerate(starts)
    ]
    return day


def endpoint_traffic(session: Session, since: datetime) -> dict[str, tuple[int, int]]:
    """Requests accepted (events stored) and rejected per endpoint id since ``since``."""
    accepted = dict(
        session.execute(
            select(Event.endpoint_id, func.count())
            .where(Event.endpoint_id.is_not(None), Event.received_at >= since)
            .group_by(Event.endpoint_id)
        ).all()
    )
    rejected = dict(
        session.execute(
            select(Rejection.endpoint_id, func.count())
            .where(Rejection.at >= since)
            .group_by(Rejection.endpoint_id)
        ).all()
    )
    return {
        str(ep): (int(accepted.get(ep, 0)), int(rejected.get(ep, 0)))
        for ep in set(accepted) | set(rejected)
    }
