"""Retention: the scheduler's clean-up of old history, with what it removed kept.

Finished runs, finished deliveries (with their attempts), polls, and events left with
neither a run nor a delivery go once they are older than the cutoff. Work still under
way is never touched: an event whose run is queued or whose delivery is pending stays,
however old. ``poller_items`` stay for ever — they are what stops a poller from turning
the same item into an event twice — and so do records and every configuration table.

Rows go in batches, one short transaction each: SQLite has one writer at a time and the
API must not wait behind a clean-up, and PostgreSQL should not hold a million row locks.
Each clean-up stores a ``Cleanup`` row with its counts, so totals stay known after the
rows are gone and the time of the last clean-up is known even when it removed nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, exists, func, select
from sqlalchemy.orm import Session

from ihook.db import Database
from ihook.ids import new_id
from ihook.models import (
    FINISHED,
    Cleanup,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    Poll,
    Run,
    utcnow,
)

if TYPE_CHECKING:
    from ihook.platform import Platform

log = logging.getLogger(__name__)

TABLES = ("events", "runs", "deliveries", "delivery_attempts", "polls")
"""The tables a clean-up removes rows from, as named in ``Cleanup.counts``."""
EVERY = timedelta(hours=1)
"""How often the scheduler cleans up."""
BATCH = 1000
"""Rows removed per transaction."""

DELIVERY_FINISHED = (DeliveryStatus.succeeded, DeliveryStatus.failed)
"""Statuses of a delivery that will not be attempted again (but by an explicit retry)."""


def clean_up(
    db: Database, *, older_than: timedelta, now: datetime | None = None, batch: int = BATCH
) -> Cleanup:
    """Remove history older than ``now - older_than``, ``batch`` rows a transaction."""
    if older_than <= timedelta(0):
        raise ValueError(f"older_than must be positive, got {older_than}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    started = time.monotonic()
    now = now or utcnow()
    cutoff = now - older_than
    counts = dict.fromkeys(TABLES, 0)

    # ``created_at < cutoff`` is implied (nothing finishes before it starts) but lets the
    # database use its index on it rather than read every finished row each batch.
    runs_old = (
        Run.status.in_(FINISHED)
        & (Run.created_at < cutoff)
        & (func.coalesce(Run.finished_at, Run.created_at) < cutoff)
    )
    counts["runs"] = _drain(db, Run.id, runs_old, batch)

    deliveries_old = (
        Delivery.status.in_(DELIVERY_FINISHED)
        & (Delivery.created_at < cutoff)
        & (func.coalesce(Delivery.finished_at, Delivery.created_at) < cutoff)
    )

    def drop_attempts(session: Session, ids: list[str]) -> None:
        # Counted (and so deleted) here: a cascade would remove them without a count,
        # and the deliveries are locked, so none of these can be retried meanwhile.
        result = session.execute(
            delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
        counts["delivery_attempts"] += _rowcount(result)

    counts["deliveries"] = _drain(db, Delivery.id, deliveries_old, batch, before=drop_attempts)

    events_old = (
        (Event.received_at < cutoff)
        & ~exists().where(Run.event_id == Event.id)
        & ~exists().where(Delivery.event_id == Event.id)
    )
    counts["events"] = _drain(db, Event.id, events_old, batch)
    counts["polls"] = _drain(db, Poll.id, Poll.started_at < cutoff, batch)

    cleanup = Cleanup(
        id=new_id("cln"),
        at=now,
        cutoff=cutoff,
        counts=counts,
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )
    with db.session() as session:
        session.add(cleanup)
    return cleanup


def _drain(
    db: Database,
    key: Any,
    old: ColumnElement[bool],
    batch: int,
    *,
    before: Callable[[Session, list[str]], None] | None = None,
) -> int:
    """Delete rows matching ``old``, ``batch`` at a time; the number deleted."""
    table = key.class_
    removed = 0
    while True:
        with db.session() as session:
            # Locked so a worker cannot retry or extend one of them before it goes; rows
            # a worker holds are skipped (no waiting) and were not finished anyway.
            query = select(key).where(old).limit(batch).with_for_update(skip_locked=True)
            ids = list(session.scalars(query))
            if not ids:
                return removed
            if before is not None:
                before(session, ids)
            # ``old`` again: under READ COMMITTED this statement sees what committed
            # since the select, such as a run a replay just added to an old event.
            result = session.execute(
                delete(table).where(key.in_(ids), old),
                execution_options={"synchronize_session": False},
            )
            removed += _rowcount(result)


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def due(db: Database, *, every: timedelta = EVERY, now: datetime | None = None) -> bool:
    """Whether the last clean-up is at least ``every`` old, or there has been none."""
    with db.session() as session:
        last = session.scalar(select(func.max(Cleanup.at)))
    return last is None or last <= (now or utcnow()) - every


def last(session: Session) -> Cleanup | None:
    """The newest clean-up, if any."""
    return session.scalars(select(Cleanup).order_by(Cleanup.at.desc()).limit(1)).first()


def totals(session: Session) -> dict[str, int]:
    """Rows removed per table over every clean-up so far."""
    summed = dict.fromkeys(TABLES, 0)
    for counts in session.scalars(select(Cleanup.counts)):
        for table, count in (counts or {}).items():
            summed[table] = summed.get(table, 0) + int(count)
    return summed


def maybe_clean_up(platform: Platform, now: datetime | None = None) -> Cleanup | None:
    """Clean up if retention is on and the last clean-up is an hour old; the scheduler's call."""
    days = platform.settings.retention_days
    if days <= 0 or not due(platform.db, every=EVERY, now=now):
        return None
    cleanup = clean_up(platform.db, older_than=timedelta(days=days), now=now)
    removed = ", ".join(f"{count} {table}" for table, count in cleanup.counts.items())
    log.info(
        "retention: removed %s older than %s in %.0f ms",
        removed,
        cleanup.cutoff.isoformat(),
        cleanup.duration_ms,
    )
    return cleanup
