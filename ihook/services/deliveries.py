"""Deliveries: one per event and matching subscription, stored with the event.

A delivery is made in the transaction that stores its event, so nothing published is
lost between the database and the queue. Its body is built once, then every attempt
sends the same bytes under the same ``webhook-id`` (the delivery id). Each state change
is a conditional UPDATE, so two workers or a late one change nothing they should not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, func, select, update
from sqlalchemy.orm import Session

from ihook.errors import Conflict, Invalid, NotFound
from ihook.ids import new_id
from ihook.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Event,
    Subscription,
    utcnow,
)
from ihook.routing import snapshot_of
from ihook.services import event_types
from ihook.services.common import fetch, page
from ihook.services.subscriptions import matches
from workflows import expressions
from workflows.errors import WorkflowError

CLAIM_EARLY = timedelta(seconds=1)
"""How early an attempt may be claimed (a retry's drain job comes a second after it)."""

TEST_EVENT = "ihook.test"
"""The type of the event a subscription's ``test`` call sends."""

SEND_GRACE = 60
"""Seconds beyond the receiver's timeout before a ``sending`` delivery counts as lost."""


def event_document(event: Event) -> dict[str, Any]:
    """The event as subscription filters and mappings see it."""
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "environment": event.environment,
        "data": event.data,
        "received_at": _iso(event.received_at),
    }


def add_deliveries(session: Session, event: Event) -> list[str]:
    """Add a delivery for each enabled subscription the event matches; return the ids to send.

    A subscription whose filter or mapping cannot be evaluated for this event still gets
    its delivery, stored ``failed`` with the reason, so the failure is seen, not dropped.
    """
    wanted = snapshot_of(session).subscribers(event.environment, event.type)
    if not wanted:
        return []
    document = event_document(event)
    now = utcnow()
    to_send: list[str] = []
    for sub in wanted:
        try:
            if sub.filter and not expressions.truthy(expressions.search(sub.filter, document)):
                continue
            body, error = payload(sub, document), None
        except (WorkflowError, ValueError, TypeError) as exc:
            body, error = None, f"cannot build the payload: {exc}"
        delivery = Delivery(
            id=new_id("dlv"),
            subscription_id=sub.id,
            event_id=event.id,
            event_type=event.type,
            status=DeliveryStatus.failed if error else DeliveryStatus.pending,
            attempts=0,
            body=body,
            created_at=now,
            next_attempt_at=now,
            finished_at=now if error else None,
            last_error=error,
        )
        session.add(delivery)
        if not error:
            to_send.append(delivery.id)
    return to_send


def payload(sub: Subscription, document: dict[str, Any]) -> dict[str, Any]:
    """The Standard Webhooks body: ``{type, timestamp, data}``, data mapped and completed."""
    if sub.mapping:
        data: Any = {name: expressions.search(expr, document) for name, expr in sub.mapping.items()}
    else:
        data = document["data"]
    if sub.fixed_data:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(
                f"fixed_data needs the data to be an object, got {type(data).__name__}; "
                "add a mapping"
            )
        data = {**data, **sub.fixed_data}
    return {"type": document["type"], "timestamp": document["received_at"], "data": data}


def add_test_delivery(
    session: Session,
    sub: Subscription,
    *,
    event_type: str | None = None,
    data: Any = None,
) -> str:
    """Store a test event for ``sub`` alone and its delivery; return the delivery's id.

    Plain, the event is ``ihook.test`` and its body carries the event's own data (a
    mapping is for real events' shapes). Given an ``event_type`` (one the subscription
    takes) or ``data``, it is a sample of that type, its data (a sample made from the
    type's schema when not given) checked against the catalogue, and its body built by
    ``payload`` with the mapping and fixed data, as a real event would be sent.
    """
    now = utcnow()
    sample = event_type is not None or data is not None
    kind = event_type or TEST_EVENT
    if sample:
        data = _sample_data(session, sub, kind, data)
    else:
        data = {"message": "a test from ihook", "subscription_id": sub.id}
    event = Event(
        id=new_id("evt"),
        type=kind,
        source="test",
        environment=sub.environment,
        data=data,
        headers={},
        received_at=now,
    )
    if sample:
        try:
            body = payload(sub, event_document(event))
        except (WorkflowError, ValueError, TypeError) as exc:
            reason = f"cannot build the payload: {exc}"
            raise Invalid(reason, {"event_type": [reason]}) from None
    else:
        body = {"type": TEST_EVENT, "timestamp": _iso(now), "data": data}
    delivery = Delivery(
        id=new_id("dlv"),
        subscription_id=sub.id,
        event_id=event.id,
        event_type=kind,
        status=DeliveryStatus.pending,
        attempts=0,
        body=body,
        created_at=now,
        next_attempt_at=now,
    )
    session.add(event)
    session.flush()
    session.add(delivery)
    return delivery.id


def _sample_data(session: Session, sub: Subscription, event_type: str, data: Any) -> Any:
    """The data of a sample test event: ``data``, or one made from the type's schema."""
    if event_type != TEST_EVENT and ("*" in event_type or not matches(sub, event_type)):
        raise Invalid(
            "the subscription does not take this event type",
            {"event_type": [f"{event_type!r} is not one of the subscription's event types"]},
        )
    if data is None:
        data = sample_event_data(session, event_type, sub.id)
    event_types.check_data(session, event_type, data)
    return data


def sample_event_data(session: Session, event_type: str, subscription_id: str) -> Any:
    """Data an event of ``event_type`` might carry: made from its catalogue schema, or the
    test event's data when the type has none."""
    try:
        schema = event_types.get_event_type(session, event_type).schema
    except NotFound:
        schema = None
    if event_type == TEST_EVENT or not schema:
        return {"message": "a test from ihook", "subscription_id": subscription_id}
    return sample_of(schema)


SAMPLE_DEPTH = 6
"""How deep ``sample_of`` follows nested schemas."""


def sample_of(schema: Any, name: str = "value", depth: int = 0) -> Any:
    """A value meeting a simple JSON Schema: its example, const, first enum value or default,
    else one of its type (a string is the property's name, a date-time now)."""
    if not isinstance(schema, dict) or depth > SAMPLE_DEPTH:
        return None
    for key in ("examples", "enum"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {key: sample_of(sub, key, depth + 1) for key, sub in properties.items()}
    if kind == "array":
        return [sample_of(schema["items"], name, depth + 1)] if "items" in schema else []
    if kind in ("integer", "number"):
        low = schema.get("minimum", 1)
        return low if isinstance(low, int | float) else 1
    if kind == "boolean":
        return True
    if kind == "string":
        return _iso(utcnow()) if schema.get("format") == "date-time" else name
    return None


def claim(session: Session, delivery_id: str, *, timeout: int) -> Delivery | None:
    """Take a due ``pending`` delivery for one attempt (``sending``), or None if not ours."""
    taken = claim_many(session, [delivery_id], timeout=timeout)
    return taken[0] if taken else None


@dataclass
class Outcome:
    """What one attempt led to."""

    succeeded: bool
    retry_in: int | None = None
    """Seconds until the next attempt; None when the delivery is over."""


def finish_attempt(
    session: Session, delivery: Delivery, attempt: DeliveryAttempt, *, retry_in: int | None
) -> Outcome:
    """Store the attempt and move the delivery on: succeeded, pending again, or failed."""
    return finish_attempts(session, [(delivery, attempt, retry_in)])[0]


def finish_attempts(
    session: Session, finished: list[tuple[Delivery, DeliveryAttempt, int | None]]
) -> list[Outcome]:
    """``finish_attempt`` for many: one INSERT and one UPDATE for them all.

    Each delivery moves on only if it is still ``sending`` this attempt (a late worker
    whose delivery the sweeper released changes nothing).
    """
    if not finished:
        return []
    now = utcnow()
    attempts, changes, outcomes = [], [], []
    for delivery, attempt, retry_in in finished:
        ok = attempt.succeeded
        attempts.append({c: getattr(attempt, c) for c in ATTEMPT_COLUMNS})
        if ok:
            status, next_at, done_at = DeliveryStatus.succeeded, delivery.next_attempt_at, now
        elif retry_in is not None:
            status, next_at, done_at = (
                DeliveryStatus.pending,
                now + timedelta(seconds=retry_in),
                None,
            )
        else:
            status, next_at, done_at = DeliveryStatus.failed, delivery.next_attempt_at, now
        changes.append(
            {
                "b_id": delivery.id,
                "b_number": attempt.number,
                "b_status": status,
                "b_next": next_at,
                "b_done": done_at,
                "b_code": attempt.status_code,
                "b_error": None if ok else attempt.error or f"HTTP {attempt.status_code}",
            }
        )
        outcomes.append(Outcome(succeeded=ok, retry_in=None if ok else retry_in))
    connection = session.connection()
    connection.execute(_ATTEMPTS.insert(), attempts)
    connection.execute(_MOVE_ON, changes)
    return outcomes


ATTEMPT_COLUMNS = (
    "delivery_id",
    "number",
    "started_at",
    "url",
    "request_headers",
    "status_code",
    "response_excerpt",
    "duration_ms",
    "error",
)
_table = Delivery.__table__
_ATTEMPTS = DeliveryAttempt.__table__
_MOVE_ON = (
    update(_table)
    .where(
        _table.c.id == bindparam("b_id"),
        _table.c.status == DeliveryStatus.sending,
        _table.c.attempts == bindparam("b_number"),
    )
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        finished_at=bindparam("b_done"),
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        deadline_at=None,
    )
)


def due(session: Session, *, limit: int) -> list[tuple[str, str, bool]]:
    """``(delivery, subscription, subscription enabled)`` of due pending deliveries.

    Due longest first. On PostgreSQL rows other workers are claiming are skipped
    (``SKIP LOCKED``); on SQLite the write transaction already keeps them out.
    """
    query = (
        select(Delivery.id, Delivery.subscription_id, Subscription.enabled)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(Delivery.status == DeliveryStatus.pending, Delivery.next_attempt_at <= utcnow())
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Delivery, skip_locked=True)
    return [(d, s, bool(e)) for d, s, e in session.execute(query)]


def claim_many(session: Session, ids: list[str], *, timeout: int) -> list[Delivery]:
    """Take these due ``pending`` deliveries for one attempt each (``sending``); the ones
    taken (not those another worker took first)."""
    if not ids:
        return []
    now = utcnow()
    claimed = session.scalars(
        _CLAIM,
        {
            "ids": ids,
            "due_by": now + CLAIM_EARLY,
            "deadline": now + timedelta(seconds=timeout + SEND_GRACE),
        },
        execution_options={"synchronize_session": False, "populate_existing": True},
    )
    return list(claimed)


def _pending_among(ids: list[str] | BindParameter[Any]) -> ColumnElement[bool]:
    """Those of ``ids`` still ``pending``, found by primary key.

    Written plainly, SQLite prefers the ``(status, next_attempt_at)`` index and walks
    every pending delivery for it: with a backlog, each claim grew with the backlog. The
    status goes through ``coalesce`` so that only the primary key can serve.
    """
    return and_(Delivery.id.in_(ids), func.coalesce(Delivery.status, "") == DeliveryStatus.pending)


_CLAIM = (
    update(Delivery)
    .where(
        _pending_among(bindparam("ids", expanding=True)),
        Delivery.next_attempt_at <= bindparam("due_by"),
    )
    .values(
        status=DeliveryStatus.sending,
        attempts=Delivery.attempts + 1,
        deadline_at=bindparam("deadline"),
    )
    .returning(Delivery)  # the claimed rows themselves: no second query
)
"""``claim_many``'s statement, built once."""


def put_off(session: Session, ids: list[str], *, until: datetime) -> None:
    """Move these ``pending`` deliveries' next attempt to ``until``."""
    session.execute(
        update(Delivery)
        .where(_pending_among(ids))
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )


def subscriptions_by_id(session: Session, ids: set[str]) -> dict[str, Subscription]:
    """These subscriptions, by id."""
    if not ids:
        return {}
    return {s.id: s for s in session.scalars(select(Subscription).where(Subscription.id.in_(ids)))}


def fail_unsent(session: Session, ids: list[str], reason: str) -> None:
    """End ``pending`` deliveries without an attempt (``recover`` can send them later)."""
    if not ids:
        return
    session.execute(
        update(Delivery)
        .where(_pending_among(ids))
        .values(status=DeliveryStatus.failed, finished_at=utcnow(), last_error=reason)
        .execution_options(synchronize_session=False)
    )


def get_delivery(session: Session, delivery_id: str) -> Delivery:
    """The delivery, or NotFound."""
    return fetch(session, Delivery, delivery_id, f"delivery {delivery_id} not found")


def attempts_of(session: Session, delivery_id: str) -> list[DeliveryAttempt]:
    """A delivery's attempts, first first."""
    query = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
    return list(session.scalars(query.order_by(DeliveryAttempt.number)))


def list_deliveries(
    session: Session,
    subscription_id: str,
    *,
    status: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    """A subscription's deliveries, newest first, filtered by status, event type and time."""
    query = select(Delivery).where(Delivery.subscription_id == subscription_id)
    if status:
        query = query.where(Delivery.status == status)
    if event_type:
        query = query.where(Delivery.event_type == event_type)
    query = page(query, Delivery.created_at, since=since, until=until, after=after, limit=limit)
    return list(session.scalars(query))


def retry_delivery(session: Session, delivery_id: str) -> Delivery:
    """Send a finished delivery once more now; the delivery, ``pending`` again."""
    delivery = get_delivery(session, delivery_id)
    if delivery.status in (DeliveryStatus.pending, DeliveryStatus.sending):
        raise Conflict(f"delivery {delivery_id} is already {delivery.status}")
    if delivery.body is None:
        raise Conflict(f"delivery {delivery_id} has no payload: {delivery.last_error}")
    _reopen(session, [delivery_id])
    session.refresh(delivery)
    return delivery


def recover(session: Session, subscription_id: str, since: datetime) -> list[str]:
    """Send again every delivery of a subscription that failed since ``since``; their ids."""
    ids = list(
        session.scalars(
            select(Delivery.id).where(
                Delivery.subscription_id == subscription_id,
                Delivery.status == DeliveryStatus.failed,
                Delivery.body.is_not(None),
                Delivery.created_at >= since,
            )
        )
    )
    _reopen(session, ids)
    return ids


def _reopen(session: Session, ids: list[str]) -> None:
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(status=DeliveryStatus.pending, next_attempt_at=utcnow(), finished_at=None)
            .execution_options(synchronize_session=False)
        )


def release_stuck(session: Session) -> list[tuple[str, int]]:
    """Deliveries left ``sending`` past their deadline (worker lost) go back to ``pending``."""
    now = utcnow()
    rows = session.execute(
        select(Delivery.id, Delivery.attempts).where(
            Delivery.status == DeliveryStatus.sending, Delivery.deadline_at < now
        )
    ).all()
    released = []
    for delivery_id, attempts in rows:
        done = session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status == DeliveryStatus.sending,
                Delivery.attempts == attempts,
            )
            .values(status=DeliveryStatus.pending, next_attempt_at=now, deadline_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done:
            released.append((delivery_id, attempts + 1))
    return released


def waiting(session: Session, *, grace: int) -> int:
    """How many deliveries have been ``pending`` for ``grace`` seconds past their time."""
    cutoff = utcnow() - timedelta(seconds=grace)
    due = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.pending, Delivery.next_attempt_at < cutoff)
        .limit(1000)
    )
    return session.scalar(select(func.count()).select_from(due.subquery())) or 0


def subscription_of(session: Session, delivery: Delivery) -> Subscription:
    """The delivery's subscription, or NotFound."""
    sub = session.get(Subscription, delivery.subscription_id)
    if sub is None:
        raise NotFound(f"subscription {delivery.subscription_id} not found")
    return sub


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
