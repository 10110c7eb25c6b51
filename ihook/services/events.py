"""Events: stored with their queued runs in one transaction, listed, replayed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ihook.db import Database, PreparedInsert
from ihook.ids import new_id
from ihook.models import Event, Run, Workflow, utcnow
from ihook.routing import check_generation, snapshot_of
from ihook.services.common import fetch, page
from ihook.services.deliveries import add_deliveries

EVENT_COLUMNS = (
    "id",
    "type",
    "source",
    "endpoint_id",
    "data",
    "headers",
    "dedupe_key",
    "environment",
    "received_at",
)
"""The columns ``add_event`` writes."""
INSERT_EVENT = PreparedInsert(Event.__table__, EVENT_COLUMNS)
INSERT_RUN = PreparedInsert(Run.__table__, ("id", "workflow_id", "workflow_version", "event_id"))
POLLER_SOURCE = "poller:"
"""Events a poller stores have the source ``poller:<name>``."""


@dataclass
class Accepted:
    """What storing an event produced: its id, the runs queued, or that it was a duplicate."""

    event_id: str
    run_ids: list[str] = field(default_factory=list)
    duplicate: bool = False
    delivery_ids: list[str] = field(default_factory=list)


def store_event(
    db: Database,
    *,
    type: str,
    source: str,
    data: Any,
    headers: dict[str, str],
    endpoint_id: str | None = None,
    dedupe_key: str | None = None,
    workflow_id: str | None = None,
    environment: str = "live",
    poller: str | None = None,
    generation: int | None = None,
) -> Accepted:
    """Commit an event and a queued run for each workflow it triggers (see ``add_event``).

    A repeated ``dedupe_key`` from the same endpoint (or, without one, the same
    ``dedupe_key`` anywhere) stores nothing and names the first event. Raises SQLAlchemy
    errors when the database cannot take it. With ``generation`` (the configuration the
    caller checked the event against), stores nothing and raises ``ConfigChanged`` if the
    configuration is no longer that one.
    """

    def write(session: Session) -> Accepted:
        return add_event(
            session,
            type=type,
            source=source,
            data=data,
            headers=headers,
            endpoint_id=endpoint_id,
            dedupe_key=dedupe_key,
            workflow_id=workflow_id,
            environment=environment,
            poller=poller,
            generation=generation,
        )

    try:  # the unique index finds a repeat: no query first
        return db.group.run(write)
    except IntegrityError:
        if dedupe_key is None:
            raise
        with db.read() as session:  # a repeat, or lost a race with the same delivery
            seen = _find_duplicate(session, endpoint_id, dedupe_key)
        if seen is None:
            raise
        return Accepted(seen, duplicate=True)


def add_event(
    session: Session,
    *,
    type: str,
    source: str,
    data: Any,
    headers: dict[str, str],
    endpoint_id: str | None = None,
    dedupe_key: str | None = None,
    workflow_id: str | None = None,
    environment: str = "live",
    poller: str | None = None,
    generation: int | None = None,
) -> Accepted:
    """Add an event, its queued runs and its deliveries to ``session``'s transaction.

    The runs: each enabled workflow bound to the endpoint, triggered by the event's type
    or (with ``poller``, a poller's name) by that poller; with ``workflow_id`` (a manual
    run) that workflow alone, enabled or not. The deliveries: one per enabled
    subscription of the event's environment that matches it.
    The commit is the caller's, and so is enqueueing what is returned after it. With
    ``generation``, raises ``ConfigChanged`` if the configuration is no longer that one.
    """
    snapshot = snapshot_of(session) if generation is None else check_generation(session, generation)
    event = Event(
        id=new_id("evt"),
        type=type,
        source=source,
        endpoint_id=endpoint_id,
        data=data,
        headers=headers,
        dedupe_key=dedupe_key,
        environment=environment,
        received_at=utcnow(),
    )
    # Prepared inserts: the rows the unit of work would write, at a fraction of its cost.
    INSERT_EVENT.execute(session, [{c: getattr(event, c) for c in EVENT_COLUMNS}])
    if workflow_id is None:
        workflows = snapshot.triggered(endpoint_id, type, poller)
    else:
        workflow = fetch(session, Workflow, workflow_id, f"workflow {workflow_id} not found")
        workflows = [(workflow.id, workflow.version)]
    run_ids = _queue_runs(session, event.id, workflows)
    delivery_ids = add_deliveries(session, event)
    return Accepted(event.id, run_ids, delivery_ids=delivery_ids)


def replay_event(session: Session, event_id: str) -> list[str]:
    """Queue the event again for every enabled workflow it triggers now."""
    event = get_event(session, event_id)
    poller = (
        event.source.removeprefix(POLLER_SOURCE) if event.source.startswith(POLLER_SOURCE) else None
    )
    workflows = snapshot_of(session).triggered(event.endpoint_id, event.type, poller)
    return _queue_runs(session, event.id, workflows)


def get_event(session: Session, event_id: str) -> Event:
    """The event, or NotFound."""
    return fetch(session, Event, event_id, f"event {event_id} not found")


def list_events(
    session: Session,
    *,
    type: str | None = None,
    source: str | None = None,
    environment: str | None = None,
    endpoint_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Events newest first, filtered by type, source, environment, endpoint and time range."""
    query = select(Event)
    if endpoint_id:
        query = query.where(Event.endpoint_id == endpoint_id)
    if environment:
        query = query.where(Event.environment == environment)
    if type:
        query = query.where(Event.type == type)
    if source:
        query = query.where(Event.source == source)
    query = page(query, Event.received_at, since=since, until=until, after=after, limit=limit)
    return list(session.scalars(query))


def _find_duplicate(session: Session, endpoint_id: str | None, key: str) -> str | None:
    query = select(Event.id).where(Event.endpoint_id == endpoint_id, Event.dedupe_key == key)
    return session.scalar(query)


def _queue_runs(session: Session, event_id: str, workflows: list[tuple[str, int]]) -> list[str]:
    """Insert a queued run of each workflow for the event; their ids."""
    rows = [
        {"id": new_id("run"), "workflow_id": wf, "workflow_version": version, "event_id": event_id}
        for wf, version in workflows
    ]
    INSERT_RUN.execute(session, rows)
    return [row["id"] for row in rows]
