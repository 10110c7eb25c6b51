"""A delivering worker's manners: slow receivers, failing subscriptions, error e-mails.

One slow receiver must not hold every worker. Each subscription may have at most
``MAX_PARALLEL`` deliveries claimed across all workers, and only one while its recent
attempts are slow (answers over ``SLOW_SECONDS`` or timeouts). The counts live in Redis
(``ihook:inflight:<subscription>``, ``ihook:slow:<subscription>``); without Redis there is
no limit, because sending matters more than fairness.

A subscription whose deliveries keep failing for ``IHOOK_DISABLE_AFTER`` seconds is
disabled, and so is one whose receiver answers 410 Gone (``disable_gone``); a delivery
that fails for good is e-mailed to the subscription's ``error_emails`` through an smtp
connector.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors import build_connector
from connectors.errors import ConnectorError
from ihook.models import Connector, Delivery, DeliveryAttempt, Event, Subscription, utcnow
from ihook.platform import Platform
from ihook.services.connectors import full_config

log = logging.getLogger(__name__)

SLOW_SECONDS = 2.0
"""An attempt slower than this marks its subscription slow for ``SLOW_FOR`` seconds."""
SLOW_FOR = 300
MAX_PARALLEL = 16
"""Deliveries of one subscription claimed at once, across workers; 1 while it is slow.

Twice a worker's sending threads (``sender.SEND_THREADS``): while one worker sends 8 of
a subscription, the next 8 are claimed and start as threads free up, so sending never
stops for the worker's bookkeeping. A receiver sees at most 8 requests per worker."""
INFLIGHT_TTL = 120
"""Seconds an in-flight count outlives its last change (a worker that died mid-send)."""


def _inflight(subscription_id: str) -> str:
    return f"ihook:inflight:{subscription_id}"


def _slow(subscription_id: str) -> str:
    return f"ihook:slow:{subscription_id}"


def take_slots(p: Platform, wanted: Counter[str]) -> tuple[dict[str, int], set[str]]:
    """Count ``wanted[subscription]`` attempts in flight; return how many each may make,
    and which of them are slow.

    What a subscription may not make now is not counted.
    """
    subs = list(wanted)
    if not subs:
        return {}, set()
    try:
        with p.redis.pipeline() as pipe:
            for sub in subs:
                pipe.incrby(_inflight(sub), wanted[sub]).expire(_inflight(sub), INFLIGHT_TTL)
                pipe.exists(_slow(sub))
            replies = pipe.execute()
        granted, refused, slow_ones = {}, {}, set()
        for i, sub in enumerate(subs):
            count, slow = replies[3 * i], replies[3 * i + 2]
            if slow:
                slow_ones.add(sub)
            limit = 1 if slow else MAX_PARALLEL
            over = min(wanted[sub], max(0, count - limit))
            granted[sub] = wanted[sub] - over
            if over:
                refused[sub] = over
        if refused:
            with p.redis.pipeline() as pipe:
                for sub, over in refused.items():
                    pipe.decrby(_inflight(sub), over)
                pipe.execute()
        return granted, slow_ones
    except RedisError:
        return dict(wanted), set()


def note_speed(
    p: Platform,
    results: Iterable[tuple[str, DeliveryAttempt]],
    *,
    done: Counter[str] | None = None,
) -> None:
    """Mark subscriptions slow after a slow or timed-out attempt, unmark them after a quick
    2xx; then count ``done`` attempts out of their in-flight numbers (one pipeline).

    The marks come first, so no worker sees a freed slot before a slow mark.
    """
    slow, quick = set(), set()
    for sub, attempt in results:
        if _was_slow(attempt):
            slow.add(sub)
        elif attempt.succeeded:
            quick.add(sub)
    try:
        with p.redis.pipeline() as pipe:
            for sub in slow:
                pipe.set(_slow(sub), 1, ex=SLOW_FOR)
            for sub in quick - slow:
                pipe.delete(_slow(sub))
            for sub, count in (done or {}).items():
                pipe.decrby(_inflight(sub), count)
            pipe.execute()
    except RedisError:
        pass


def _was_slow(attempt: DeliveryAttempt) -> bool:
    late = attempt.duration_ms is not None and attempt.duration_ms > SLOW_SECONDS * 1000
    return late or bool(attempt.error and "timed out" in attempt.error)


def note_failing(p: Platform, session: Session, subscription_id: str, ok: bool, error: str) -> None:
    """End a subscription's failing streak on success; start it, or act on it, on failure."""
    if ok:
        session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id, Subscription.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return
    now = utcnow()
    session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, Subscription.failing_since.is_(None))
        .values(failing_since=now)
    )
    since = session.scalar(
        select(Subscription.failing_since).where(Subscription.id == subscription_id)
    )
    if since is not None and now - since >= timedelta(seconds=p.settings.disable_after):
        reason = (
            f"disabled at {iso(now)}: every delivery has failed since {iso(since)}; "
            f"last error: {error}"
        )
        session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id, Subscription.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason)
        )
        log.warning("subscription %s %s", subscription_id, reason)


def disable_gone(session: Session, subscription_id: str, delivery_id: str) -> None:
    """Disable a subscription whose receiver answered 410 Gone to ``delivery_id``.

    410 says the resource is gone for good (RFC 9110): the receiver asks for nothing
    more, so none of its deliveries is retried or sent until someone enables it again.
    ``disabled_reason`` names the answer; a subscription already disabled keeps its reason.
    """
    reason = (
        f"disabled at {iso(utcnow())}: the receiver answered 410 Gone to delivery "
        f"{delivery_id}; it asked for no more deliveries"
    )
    disabled = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, Subscription.enabled.is_(True))
        .values(enabled=False, disabled_reason=reason)
    ).rowcount
    if disabled:
        log.warning("subscription %s %s", subscription_id, reason)


def alert(p: Platform, sub: Subscription, delivery: Delivery, attempt: DeliveryAttempt) -> None:
    """E-mail the subscription's ``error_emails`` that a delivery failed for good."""
    if not sub.error_emails:
        return
    try:
        with p.db.session() as session:
            mailer = _mailer(p, session)
            event = session.get(Event, delivery.event_id)
        subject = f"[ihook] delivery to {sub.name} failed: {delivery.event_type}"
        text = "\n".join(
            [
                f"ihook could not deliver an event to the subscription {sub.name!r} ({sub.id}).",
                "",
                f"URL:         {sub.url}",
                f"Event:       {delivery.event_type} ({delivery.event_id})",
                f"Received at: {iso(event.received_at) if event else 'unknown'}",
                f"Delivery:    {delivery.id} ({delivery.attempts} attempts)",
                f"Last error:  {attempt.error}",
                "",
                f"Send it again: POST {p.settings.public_url}/api/v1/deliveries/"
                f"{delivery.id}/retry",
            ]
        )
        mailer.send(list(sub.error_emails), subject, text)
        note = f"sent to {', '.join(sub.error_emails)}"
    except (ConnectorError, LookupError) as exc:
        note = f"not sent: {exc}"
        log.warning("error e-mail for delivery %s %s", delivery.id, note)
    with p.db.session() as session:
        session.execute(update(Delivery).where(Delivery.id == delivery.id).values(alert=note))


def _mailer(p: Platform, session: Any) -> Any:
    """The smtp connector named by IHOOK_ALERT_CONNECTOR, else the only smtp connector."""
    query = select(Connector).where(Connector.kind == "smtp")
    if p.settings.alert_connector:
        query = query.where(Connector.name == p.settings.alert_connector)
    rows = session.scalars(query).all()
    if len(rows) != 1:
        wanted = p.settings.alert_connector
        raise LookupError(
            f"no smtp connector named {wanted!r}"
            if wanted
            else f"{len(rows)} smtp connectors; set IHOOK_ALERT_CONNECTOR to pick one"
        )
    return build_connector("smtp", full_config(rows[0], p.vault), policy=p.outbound)


def iso(moment: datetime) -> str:
    """A time as ISO 8601 with ``Z``."""
    return moment.isoformat().replace("+00:00", "Z")
