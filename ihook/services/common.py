"""Small helpers shared by the services."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ihook.errors import Conflict, NotFound

DEFAULT_PAGE = 100
"""Rows a list answers when no ``limit`` is given."""
MAX_PAGE = 1000
"""The most rows a list answers at once."""


M = TypeVar("M")


def fetch(session: Session, model: type[M], ident: Any, missing: str) -> M:
    """The row of ``model`` with primary key ``ident``, or NotFound with ``missing``."""
    row = session.get(model, ident)
    if row is None:
        raise NotFound(missing)
    return row


def flush_unique(session: Session, what: str, name: str) -> None:
    """Flush, turning a unique-name violation into Conflict naming ``what`` and ``name``."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        article = "an" if what[0] in "aeiou" else "a"
        raise Conflict(
            f"{article} {what} named {name!r} exists", {"name": ["already taken"]}
        ) from None


def page(
    query: Select[Any],
    column: Any,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> Select[Any]:
    """Filter a list query by time range, newest first, resuming after the id ``after``."""
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column < until)
    entity = query.column_descriptions[0]["entity"]
    if after:
        query = query.where(entity.id < after)
    return query.order_by(entity.id.desc()).limit(min(limit or DEFAULT_PAGE, MAX_PAGE))
