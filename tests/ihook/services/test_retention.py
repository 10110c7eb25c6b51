"""Retention clean-up: what goes, what stays, the counts it keeps, batches, ``due``.

Rows are inserted directly with explicit timestamps; the clock is ``NOW``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ihook.db import Database
from ihook.ids import new_id
from ihook.models import (
    Cleanup,
    Delivery,
    DeliveryAttempt,
    Endpoint,
    Event,
    Poll,
    Poller,
    PollerItem,
    Record,
    Run,
    Subscription,
    Workflow,
)
from ihook.platform import Platform
from ihook.services.retention import EVERY, TABLES, clean_up, due, last, maybe_clean_up, totals
from ihook.settings import Settings

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
KEEP = timedelta(days=30)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=1)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


class World:
    """Builds rows with explicit times; remembers the ids that must stay."""

    def __init__(self, db: Database):
        self.db = db
        self.kept: dict[str, set[str]] = {"events": set(), "runs": set(), "deliveries": set()}
        with db.session() as session:
            self.workflow = Workflow(id=new_id("wf"), name="wf", definition={"steps": []})
            self.subscription = Subscription(
                id=new_id("sub"), name="sub", url="https://example.com/hook", secret_enc="x"
            )
            self.poller = Poller(id=new_id("pol"), name="poll", config={}, event_type="polled")
            endpoint = Endpoint(
                id=new_id("ep"), name="ep", key_hash="h" * 64, key_hint="abcd", auth={}
            )
            record = Record(collection="people", key="1", data={"name": "Ada"})
            session.add_all([self.workflow, self.subscription, self.poller, endpoint, record])

    def event(self, at: datetime, *, keep: bool) -> str:
        event_id = new_id("evt")
        with self.db.session() as session:
            session.add(Event(id=event_id, type="t", source="test", data={}, received_at=at))
        if keep:
            self.kept["events"].add(event_id)
        return event_id

    def run(
        self,
        event_id: str,
        status: str,
        *,
        created: datetime = OLD,
        finished: datetime | None = None,
        keep: bool,
    ) -> str:
        run_id = new_id("run")
        with self.db.session() as session:
            session.add(
                Run(
                    id=run_id,
                    workflow_id=self.workflow.id,
                    workflow_version=1,
                    event_id=event_id,
                    status=status,
                    created_at=created,
                    next_attempt_at=created,
                    finished_at=finished,
                )
            )
        if keep:
            self.kept["runs"].add(run_id)
        return run_id

    def delivery(
        self,
        event_id: str,
        status: str,
        *,
        created: datetime = OLD,
        finished: datetime | None = None,
        attempts: int = 0,
        keep: bool,
    ) -> str:
        delivery_id = new_id("dlv")
        with self.db.session() as session:
            session.add(
                Delivery(
                    id=delivery_id,
                    subscription_id=self.subscription.id,
                    event_id=event_id,
                    event_type="t",
                    status=status,
                    attempts=attempts,
                    created_at=created,
                    next_attempt_at=created,
                    finished_at=finished,
                )
            )
            session.flush()
            session.add_all(
                DeliveryAttempt(
                    delivery_id=delivery_id, number=n, started_at=created, url="https://x"
                )
                for n in range(1, attempts + 1)
            )
        if keep:
            self.kept["deliveries"].add(delivery_id)
        return delivery_id

    def poll(self, at: datetime) -> str:
        poll_id = new_id("pol")
        with self.db.session() as session:
            session.add(
                Poll(id=poll_id, poller_id=self.poller.id, status="succeeded", started_at=at)
            )
        return poll_id

    def poller_item(self, item_id: str, event_id: str, at: datetime) -> None:
        with self.db.session() as session:
            session.add(
                PollerItem(poller_id=self.poller.id, item_id=item_id, event_id=event_id, seen_at=at)
            )


def ids(db: Database, key) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(key)))


def count(db: Database, model) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def populate(world: World) -> dict[str, int]:
    """Old and recent history of every kind; returns the counts a clean-up should report."""
    # An old event whose runs all finished long ago: it goes with them.
    done = world.event(OLD, keep=False)
    world.run(done, "succeeded", finished=OLD, keep=False)
    world.run(done, "failed", finished=OLD, keep=False)
    world.run(done, "skipped", finished=OLD, keep=False)
    # Still under way, however old: the unfinished runs and their events stay.
    queued = world.event(OLD, keep=True)
    world.run(queued, "queued", keep=True)
    world.run(queued, "succeeded", finished=OLD, keep=False)  # its finished sibling goes
    running = world.event(OLD, keep=True)
    world.run(running, "running", keep=True)
    # Created long ago but finished recently: kept, and so is its event.
    late = world.event(OLD, keep=True)
    world.run(late, "failed", created=OLD, finished=RECENT, keep=True)
    # Never finished_at (an old row): its created_at decides.
    unstamped = world.event(OLD, keep=False)
    world.run(unstamped, "failed", finished=None, keep=False)
    # An old event with nothing attached.
    world.event(OLD, keep=False)
    # Recent history stays.
    fresh = world.event(RECENT, keep=True)
    world.run(fresh, "succeeded", created=RECENT, finished=RECENT, keep=True)
    world.run(fresh, "queued", created=RECENT, keep=True)

    # Deliveries: finished old ones go with their attempts, and then their event.
    sent = world.event(OLD, keep=False)
    world.delivery(sent, "succeeded", finished=OLD, attempts=2, keep=False)
    world.delivery(sent, "failed", finished=OLD, attempts=3, keep=False)
    world.run(sent, "succeeded", finished=OLD, keep=False)
    waiting = world.event(OLD, keep=True)
    world.delivery(waiting, "pending", attempts=1, keep=True)
    world.delivery(waiting, "failed", finished=OLD, attempts=1, keep=False)
    sending = world.event(OLD, keep=True)
    world.delivery(sending, "sending", attempts=2, keep=True)
    retried = world.event(OLD, keep=True)
    world.delivery(retried, "succeeded", finished=RECENT, attempts=4, keep=True)
    fresh_out = world.event(RECENT, keep=True)
    world.delivery(fresh_out, "succeeded", created=RECENT, finished=RECENT, attempts=1, keep=True)

    world.poll(OLD)
    world.poll(OLD - timedelta(days=100))
    world.poll(RECENT)
    world.poller_item("old-item", done, OLD)  # its event goes; the item must not
    world.poller_item("new-item", fresh, RECENT)
    return {"events": 4, "runs": 6, "deliveries": 3, "delivery_attempts": 6, "polls": 2}


@BACKENDS
def test_removes_old_finished_history_and_keeps_the_rest(db):
    world = World(db)
    expected = populate(world)
    attempts_before = count(db, DeliveryAttempt)

    cleanup = clean_up(db, older_than=KEEP, now=NOW)

    assert cleanup.counts == expected
    assert cleanup.cutoff == NOW - KEEP
    assert cleanup.at == NOW
    assert cleanup.id.startswith("cln_")
    assert cleanup.duration_ms is not None and cleanup.duration_ms >= 0
    assert ids(db, Event.id) == world.kept["events"]
    assert ids(db, Run.id) == world.kept["runs"]
    assert ids(db, Delivery.id) == world.kept["deliveries"]
    # Attempts went with their deliveries: none is left without one.
    assert ids(db, DeliveryAttempt.delivery_id) == world.kept["deliveries"]
    assert count(db, DeliveryAttempt) == attempts_before - expected["delivery_attempts"]
    with db.session() as session:
        assert [p.started_at for p in session.scalars(select(Poll))] == [RECENT]
    # Never touched: seen items (or the poller would emit them again), configuration, records.
    assert ids(db, PollerItem.item_id) == {"old-item", "new-item"}
    for model in (Workflow, Subscription, Poller, Endpoint, Record):
        assert count(db, model) == 1, model

    with db.session() as session:
        stored = session.get(Cleanup, cleanup.id)
        assert stored.counts == expected
        assert stored.cutoff == NOW - KEEP
        assert totals(session) == expected
        assert last(session).id == cleanup.id


@BACKENDS
def test_a_second_clean_up_removes_nothing_but_is_logged_and_totals_keep_the_first(db):
    world = World(db)
    expected = populate(world)
    first = clean_up(db, older_than=KEEP, now=NOW)

    second = clean_up(db, older_than=KEEP, now=NOW + timedelta(minutes=5))

    assert second.counts == dict.fromkeys(TABLES, 0)
    assert ids(db, Event.id) == world.kept["events"]
    with db.session() as session:
        assert {c.id for c in session.scalars(select(Cleanup))} == {first.id, second.id}
        assert totals(session) == expected
        assert last(session).id == second.id


@BACKENDS
def test_batches_smaller_than_the_rows_remove_them_all(db):
    world = World(db)
    for _ in range(9):
        world.run(world.event(OLD, keep=False), "succeeded", finished=OLD, keep=False)
    for _ in range(12):
        world.event(OLD, keep=False)
    for _ in range(8):
        world.delivery(world.event(OLD, keep=False), "failed", finished=OLD, attempts=2, keep=False)
    for _ in range(15):
        world.poll(OLD)
    stays = world.event(OLD, keep=True)
    world.run(stays, "queued", keep=True)

    cleanup = clean_up(db, older_than=KEEP, now=NOW, batch=7)

    assert cleanup.counts == {
        "events": 29,
        "runs": 9,
        "deliveries": 8,
        "delivery_attempts": 16,
        "polls": 15,
    }
    assert ids(db, Event.id) == {stays}
    assert ids(db, Run.id) == world.kept["runs"]
    assert count(db, Delivery) == count(db, DeliveryAttempt) == count(db, Poll) == 0


@BACKENDS
def test_totals_add_up_clean_ups(db):
    world = World(db)
    world.event(OLD, keep=False)
    clean_up(db, older_than=KEEP, now=NOW)
    world.event(OLD, keep=False)
    world.event(OLD, keep=False)
    world.poll(OLD)
    clean_up(db, older_than=KEEP, now=NOW + timedelta(hours=1))

    with db.session() as session:
        assert totals(session) == {**dict.fromkeys(TABLES, 0), "events": 3, "polls": 1}


def test_totals_and_last_with_no_clean_up(db):
    with db.session() as session:
        assert totals(session) == dict.fromkeys(TABLES, 0)
        assert last(session) is None


@BACKENDS
def test_due_after_every_since_the_last_clean_up(db):
    assert due(db, every=EVERY, now=NOW)  # never cleaned up
    clean_up(db, older_than=KEEP, now=NOW)
    assert not due(db, every=EVERY, now=NOW)
    assert not due(db, every=EVERY, now=NOW + timedelta(minutes=59))
    assert due(db, every=EVERY, now=NOW + EVERY)
    assert not due(db, every=timedelta(days=1), now=NOW + EVERY)


def test_refuses_a_cutoff_of_now_or_later(db):
    with pytest.raises(ValueError, match="older_than"):
        clean_up(db, older_than=timedelta(0), now=NOW)
    with pytest.raises(ValueError, match="batch"):
        clean_up(db, older_than=KEEP, now=NOW, batch=0)


@BACKENDS
def test_maybe_clean_up_at_most_once_an_hour(database_url, caplog):
    platform = Platform(Settings(database_url=database_url, retention_days=30))
    try:
        world = World(platform.db)
        world.event(OLD, keep=False)
        world.poll(OLD)
        with caplog.at_level("INFO", logger="ihook.services.retention"):
            first = maybe_clean_up(platform, now=NOW)
        assert first is not None
        assert first.counts["events"] == 1 and first.counts["polls"] == 1
        assert first.cutoff == NOW - timedelta(days=30)
        assert "retention: removed 1 events" in caplog.text

        world.event(OLD, keep=False)
        assert maybe_clean_up(platform, now=NOW + timedelta(minutes=30)) is None
        assert count(platform.db, Event) == 1
        again = maybe_clean_up(platform, now=NOW + EVERY)
        assert again is not None and again.counts["events"] == 1
    finally:
        platform.close()


@BACKENDS
def test_retention_zero_keeps_everything(database_url):
    platform = Platform(Settings(database_url=database_url, retention_days=0))
    try:
        world = World(platform.db)
        populate(world)
        events, runs = count(platform.db, Event), count(platform.db, Run)

        assert maybe_clean_up(platform, now=NOW + timedelta(days=3650)) is None

        assert (count(platform.db, Event), count(platform.db, Run)) == (events, runs)
        assert count(platform.db, Cleanup) == 0
    finally:
        platform.close()


def test_retention_days_from_the_environment():
    base = {"DATABASE_URL": "sqlite://"}
    assert Settings.from_env(base).retention_days == 30
    assert Settings.from_env({**base, "IHOOK_RETENTION_DAYS": "0"}).retention_days == 0
    assert Settings.from_env({**base, "IHOOK_RETENTION_DAYS": "7"}).retention_days == 7
    with pytest.raises(ValueError, match="IHOOK_RETENTION_DAYS"):
        Settings.from_env({**base, "IHOOK_RETENTION_DAYS": "-1"})
    with pytest.raises(ValueError, match="IHOOK_RETENTION_DAYS"):
        Settings.from_env({**base, "IHOOK_RETENTION_DAYS": "a month"})
