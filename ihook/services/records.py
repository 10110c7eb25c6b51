"""The built-in record store: JSON documents by collection and key, in our database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connectors.errors import RecordError
from ihook.db import Database
from ihook.errors import NotFound
from ihook.models import Record, utcnow
from ihook.services.common import DEFAULT_PAGE, MAX_PAGE


class SqlRecordStore:
    """``connectors.RecordStore`` over the records table; each write its own transaction.

    Short transactions keep a run's HTTP calls from holding a database write lock.
    """

    def __init__(self, db: Database):
        self.db = db

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
                return "created"
            if mode == "insert":
                raise RecordError(f"record {key!r} already exists in {collection!r}")
            if row.data == data:
                return "unchanged"
            row.data, row.updated_at = data, utcnow()
            return "updated"

    def delete(self, collection: str, key: str) -> bool:
        """Delete a record; False when there was none."""
        with self.db.session() as session:
            gone = session.execute(
                delete(Record).where(Record.collection == collection, Record.key == key)
            )
            return gone.rowcount == 1  # type: ignore[attr-defined]


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
