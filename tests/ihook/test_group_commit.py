"""Group commit: writes arriving together share a transaction; a failing one fails alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, text

from ihook.group_commit import GroupCommit
from ihook.models import Event
from ihook.services.events import store_event

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def table(platform):
    with platform.db.session() as session:
        session.execute(text("CREATE TABLE notes (n INTEGER PRIMARY KEY)"))
    return platform.db


class Counted:
    """The database's transactions, counted."""

    def __init__(self, db):
        self.db, self.opened = db, 0

    def __call__(self):
        self.opened += 1
        return self.db.session()


def note(n: int, *, hold: float = 0.0):
    def write(session):
        session.execute(text("INSERT INTO notes (n) VALUES (:n)"), {"n": n})
        time.sleep(hold)  # the first writer holds the transaction: the others gather
        return n * 10

    return write


def notes(db) -> list[int]:
    with db.read() as session:
        return sorted(session.scalars(text("SELECT n FROM notes")))


@both_backends
def test_writes_that_arrive_together_share_a_transaction(table):
    counted = Counted(table)
    group = GroupCommit(counted)
    started = threading.Event()

    def first():
        def write(session):
            started.set()
            return note(0, hold=0.3)(session)

        return group.run(write)

    with ThreadPoolExecutor(17) as pool:
        head = pool.submit(first)
        started.wait(5)
        rest = list(pool.map(lambda n: group.run(note(n)), range(1, 17)))
    assert head.result() == 0 and rest == [n * 10 for n in range(1, 17)]
    assert notes(table) == list(range(17))
    # The first alone, then the sixteen that waited for it (one more if a thread was late).
    assert 2 <= counted.opened <= 3


@both_backends
def test_a_failing_write_fails_alone_and_the_others_are_committed(table):
    group = GroupCommit(table.session)
    started = threading.Event()

    def first(session):
        started.set()
        return note(0, hold=0.3)(session)

    def failing(session):
        session.execute(text("INSERT INTO notes (n) VALUES (99)"))
        raise ValueError("no")

    with ThreadPoolExecutor(4) as pool:
        head = pool.submit(group.run, first)
        started.wait(5)
        good = [pool.submit(group.run, note(n)) for n in (1, 2)]
        bad = pool.submit(group.run, failing)
        assert [f.result() for f in good] == [10, 20] and head.result() == 0
        with pytest.raises(ValueError, match="no"):
            bad.result()
    assert notes(table) == [0, 1, 2]  # nothing of the failed write


@both_backends
def test_the_same_webhook_stored_at_once_is_one_event_and_duplicates(platform):
    def store(_):
        return store_event(
            platform.db, type="t", source="s", data={}, headers={}, dedupe_key="same"
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(store, range(16)))
    firsts = [a for a in answers if not a.duplicate]
    assert len(firsts) == 1
    assert {a.event_id for a in answers} == {firsts[0].event_id}
    with platform.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
