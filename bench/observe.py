"""Reading what happened: the receiver's tally, runs and deliveries in the database.

Every scenario ends a batch the same way: wait until the receiver has every id (or
nothing has moved for a while), then account for each id: received once, twice, or
never, and what the database says about its run or delivery.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, func, select

from bench.stack import Stack
from ihook.models import Delivery, DeliveryAttempt, Event, Run

STALL_SECONDS = 30.0
"""A batch that gains nothing at the receiver for this long is over: the rest are lost."""
POLL = 0.1
"""Seconds between two looks at the receiver."""


def wait_received(stack: Stack, prefix: str, expected: int, *, cap: float) -> dict[str, Any]:
    """Wait until the receiver has ``expected`` distinct ids under ``prefix``.

    Gives up after ``STALL_SECONDS`` without progress or ``cap`` seconds in all; then
    waits one more poll so that late repeats are seen. The receiver's stats.
    """
    deadline = time.monotonic() + cap
    last, moved = -1, time.monotonic()
    while True:
        stats = stack.receiver(f"stats?prefix={prefix}")
        if stats["distinct"] >= expected:
            break
        now = time.monotonic()
        if stats["distinct"] != last:
            last, moved = stats["distinct"], now
        if now - moved > STALL_SECONDS or now > deadline:
            break
        time.sleep(POLL)
    time.sleep(POLL)
    return stack.receiver(f"stats?prefix={prefix}")


def arrivals(stack: Stack, prefix: str) -> dict[str, tuple[float, int]]:
    """Per id under ``prefix``: first arrival (``time.time()``) and how many times it came."""
    return {k: (v[0], v[1]) for k, v in stack.receiver(f"arrivals?prefix={prefix}").items()}


def engine(stack: Stack) -> Engine:
    return create_engine(stack.database_url)


@dataclass
class RunRow:
    """One run of a webhook sent by the bench."""

    key: str
    received_at: datetime
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None


def runs_of(db: Engine, keys: set[str]) -> list[RunRow]:
    """The runs of the events whose dedupe key (the ``webhook-id``) is in ``keys``."""
    query = select(
        Event.dedupe_key,
        Event.received_at,
        Run.status,
        Run.attempt,
        Run.started_at,
        Run.finished_at,
    ).join(Run, Run.event_id == Event.id)
    with db.connect() as conn:
        rows = conn.execute(query).all()
    return [RunRow(*row) for row in rows if row[0] in keys]


def events_of(db: Engine, keys: set[str]) -> Counter[str]:
    """How many events each key in ``keys`` has."""
    with db.connect() as conn:
        rows = conn.execute(select(Event.dedupe_key)).scalars().all()
    return Counter(k for k in rows if k in keys)


def wait_runs_finished(db: Engine, keys: set[str], *, timeout: float = 30.0) -> list[RunRow]:
    """The runs of ``keys`` once none is ``queued`` or ``running`` (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = runs_of(db, keys)
        busy = [r for r in rows if r.status in ("queued", "running")]
        if not busy or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@dataclass
class DeliveryRows:
    """The deliveries of some subscriptions: statuses, attempts, first attempt's start."""

    count: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    attempts: Counter[int] = field(default_factory=Counter)
    first_started: datetime | None = None
    ids: set[str] = field(default_factory=set)


def deliveries_of(db: Engine, subscription_ids: list[str]) -> DeliveryRows:
    out = DeliveryRows()
    mine = Delivery.subscription_id.in_(subscription_ids)
    with db.connect() as conn:
        for did, status, attempts in conn.execute(
            select(Delivery.id, Delivery.status, Delivery.attempts).where(mine)
        ):
            out.count += 1
            out.statuses[status] += 1
            out.attempts[attempts] += 1
            out.ids.add(did)
        out.first_started = conn.scalar(
            select(func.min(DeliveryAttempt.started_at))
            .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
            .where(mine)
        )
    return out


def wait_deliveries_finished(
    db: Engine, subscription_ids: list[str], *, timeout: float = 30.0
) -> DeliveryRows:
    """The deliveries once none is ``pending`` or ``sending`` (or at ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries_of(db, subscription_ids)
        busy = rows.statuses["pending"] + rows.statuses["sending"]
        if not busy or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
