"""The built-in record store: JSON documents by collection and key, in our database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import RecordError
from ihook.db import Database
from ihook.errors import NotFound
from ihook.models import Record, utcnow
from ihook.services.common import DEFAULT_PAGE, MAX_PAGE
from ihook.services.events import Accepted, add_event


class SqlRecordStore:
    """``connectors.RecordStore`` over the records table; each write its own transaction.

    Short transactions keep a run's HTTP calls from holding a database write lock. A
    change also publishes ``record.created`` / ``record.updated`` / ``record.deleted``
    in the same transaction (so no change goes untold), enqueued after the commit.
    """

    def __init__(self, db: Database, dispatch: Callable[[Accepted], None] | None = None):
        self.db = db
        self.dispatch = dispatch

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """The record's data, or None."""
        with self.db.session() as session:
            row = session.get(Record, (collection, key))
            return None if row is None else row.data

    def write(self, collection: str, key: str, data: dict[str, Any], *, mode: str) -> str:
        """Insert, update or upsert; returns ``created``, ``updated`` or ``unchanged``."""
        with self.db.session() as session:
            row = session.get(Record, (collection, key), with_for_update=True)
            if row is None:
                if mode == "update":
                    raise RecordError(f"no record {key!r} in {collection!r} to update")
                session.add(Record(collection=collection, key=key, data=data))
                action = "created"
            elif mode == "insert":
                raise RecordError(f"record {key!r} already exists in {collection!r}")
            elif row.data == data:
                return "unchanged"
            else:
                row.data, row.updated_at = data, utcnow()
                action = "updated"
            told = self._tell(session, action, collection, key, data)
        self._enqueue(told)
        return action

    def delete(self, collection: str, key: str) -> bool:
        """Delete a record; False when there was none."""
        with self.db.session() as session:
            row = session.get(Record, (collection, key), with_for_update=True)
            if row is None:
                return False
            session.delete(row)
            told = self._tell(session, "deleted", collection, key, row.data)
        self._enqueue(told)
        return True

    def page(self, collection: str, after: str | None, limit: int) -> list[tuple[str, Any]]:
        """Up to ``limit`` ``(key, data)`` pairs in key order, after the key ``after``."""
        with self.db.session() as session:
            query = select(Record.key, Record.data).where(Record.collection == collection)
            if after is not None:
                query = query.where(Record.key > after)
            rows = session.execute(query.order_by(Record.key).limit(limit)).all()
        return [(key, data) for key, data in rows]

    def _tell(
        self, session: Session, action: str, collection: str, key: str, data: dict[str, Any]
    ) -> Accepted:
        change = {"collection": collection, "key": key, "data": data}
        return add_event(
            session,
            type=f"record.{action}",
            source=f"records:{collection}",
            data=change,
            headers={},
        )

    def _enqueue(self, accepted: Accepted) -> None:
        if self.dispatch is not None:
            self.dispatch(accepted)


def get_record(session: Session, collection: str, key: str) -> Record:
    """One record, or NotFound."""
    row = session.get(Record, (collection, key))
    if row is None:
        raise NotFound(f"no record {key!r} in collection {collection!r}")
    return row


def list_records(
    session: Session, collection: str, *, after: str | None = None, limit: int | None = None
) -> list[Record]:
    """A collection's records in key order, resuming after the key ``after``."""
    query = select(Record).where(Record.collection == collection)
    if after:
        query = query.where(Record.key > after)
    query = query.order_by(Record.key).limit(min(limit or DEFAULT_PAGE, MAX_PAGE))
    return list(session.scalars(query))
