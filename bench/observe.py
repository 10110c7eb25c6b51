"""Reading what happened: the receiver's tally, runs and deliveries in the database.

Every scenario ends a batch the same way: wait until the receiver has every id (or
nothing has moved for a while), then account for each id: received once, twice, or
never, and what the database says about its run or delivery. Polls (their log rows,
their events and the ids their poller has seen) are read back here too.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, func, select

from bench.stack import Stack
from ihook.models import Delivery, DeliveryAttempt, Event, Poll, PollerItem, Run

STALL_SECONDS = 30.0
"""A batch that gains nothing at the receiver for this long is over: the rest are lost."""
POLL = 0.1
"""Seconds between two looks at the receiver."""
COMMIT_POLL = 0.01
"""Seconds between two looks for a poll's log row (its commit time is measured so)."""
KEY_CHUNK = 500
"""Keys looked up at once (``IN`` lists stay short, on a database of any size)."""


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


def _chunks(keys: set[str]) -> list[list[str]]:
    ordered = sorted(keys)
    return [ordered[n : n + KEY_CHUNK] for n in range(0, len(ordered), KEY_CHUNK)]


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
    rows = []
    with db.connect() as conn:
        for chunk in _chunks(keys):
            rows += conn.execute(query.where(Event.dedupe_key.in_(chunk))).all()
    return [RunRow(*row) for row in rows]


def events_of(db: Engine, keys: set[str]) -> Counter[str]:
    """How many events each key in ``keys`` has."""
    found: Counter[str] = Counter()
    with db.connect() as conn:
        for chunk in _chunks(keys):
            query = select(Event.dedupe_key).where(Event.dedupe_key.in_(chunk))
            found.update(conn.execute(query).scalars())
    return found


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


# -- polls and single runs ---------------------------------------------------------------


@dataclass
class PollRow:
    """One poll's log row."""

    id: str
    status: str
    started_at: datetime
    duration_ms: float | None
    pages: int
    items_seen: int
    items_new: int
    error: str | None


def polls_of(db: Engine, poller_id: str) -> list[PollRow]:
    """The poller's logged polls, oldest first (a poll is logged when it has committed)."""
    query = (
        select(
            Poll.id,
            Poll.status,
            Poll.started_at,
            Poll.duration_ms,
            Poll.pages,
            Poll.items_seen,
            Poll.items_new,
            Poll.error,
        )
        .where(Poll.poller_id == poller_id)
        .order_by(Poll.started_at)
    )
    with db.connect() as conn:
        return [PollRow(*row) for row in conn.execute(query)]


def wait_polls(
    db: Engine, poller_id: str, count: int, *, timeout: float
) -> tuple[list[PollRow], float]:
    """The poller's polls once ``count`` are logged (or at ``timeout``), and the
    ``time.time()`` at which the bench first saw the ``count``-th one committed."""
    deadline = time.monotonic() + timeout
    while True:
        rows = polls_of(db, poller_id)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows, time.time()
        time.sleep(COMMIT_POLL)


@dataclass
class PolledEvents:
    """The events a poller stored, read back: how many, per item id, the last one's time."""

    count: int = 0
    ids: Counter[str] = field(default_factory=Counter)
    last_received: datetime | None = None
    seen: int = 0
    """Rows in ``poller_items``: the ids the poller remembers."""


def polled_events(db: Engine, source: str, poller_id: str) -> PolledEvents:
    """The events of ``source`` (``poller:<name>``), keyed by their item's ``id``."""
    out = PolledEvents()
    with db.connect() as conn:
        for data, received_at in conn.execute(
            select(Event.data, Event.received_at).where(Event.source == source)
        ):
            out.count += 1
            out.ids[str(data.get("id")) if isinstance(data, dict) else "?"] += 1
            if out.last_received is None or received_at > out.last_received:
                out.last_received = received_at
        out.seen = (
            conn.scalar(
                select(func.count())
                .select_from(PollerItem)
                .where(PollerItem.poller_id == poller_id)
            )
            or 0
        )
    return out


@dataclass
class OneRun:
    """One run read back by its id."""

    id: str
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    steps: list[dict[str, Any]]


def wait_run(db: Engine, run_id: str, *, timeout: float) -> OneRun | None:
    """The run once it is no longer ``queued`` or ``running`` (or at ``timeout``)."""
    query = select(
        Run.id, Run.status, Run.attempt, Run.started_at, Run.finished_at, Run.error, Run.steps
    ).where(Run.id == run_id)
    deadline = time.monotonic() + timeout
    while True:
        with db.connect() as conn:
            row = conn.execute(query).first()
        found = OneRun(*row) if row else None
        busy = found is None or found.status in ("queued", "running")
        if not busy or time.monotonic() > deadline:
            return found
        time.sleep(POLL)
