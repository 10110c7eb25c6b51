"""The log of a poller's polls: when, how each went, what it found."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ihook.errors import NotFound
from ihook.models import Poll, Poller
from ihook.services.common import fetch, page


def list_polls(
    session: Session,
    poller_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Poll]:
    """A poller's polls newest first, by start time; NotFound for an unknown poller."""
    fetch(session, Poller, poller_id, f"poller {poller_id} not found")
    query = select(Poll).where(Poll.poller_id == poller_id)
    query = page(query, Poll.started_at, since=since, until=until, after=after, limit=limit)
    return list(session.scalars(query))


def get_poll(session: Session, poll_id: str, *, poller_id: str | None = None) -> Poll:
    """The poll (of ``poller_id``, when given), or NotFound."""
    poll = fetch(session, Poll, poll_id, f"poll {poll_id} not found")
    if poller_id is not None and poll.poller_id != poller_id:
        raise NotFound(f"poll {poll_id} not found")
    return poll
