"""Sending deliveries: one attempt per job, signed, logged, retried on the schedule.

An attempt POSTs the delivery's body with Standard Webhooks headers (``webhook-id`` is
the delivery id on every attempt) through the SSRF guard, re-checking the URL rules of
the subscription. A 2xx within the timeout is success; anything else is logged and
retried after the subscription's ``retry_schedule``; after the last attempt the
delivery fails and the subscription's ``error_emails`` are told through an smtp
connector. A subscription failing longer than ``disable_after`` is disabled.

One slow receiver must not hold every worker: while a subscription's recent attempts
are slow, at most one of its deliveries is sent at a time and the others are put off
for a second, which frees the worker for other subscriptions.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select, update

import ihook
from connectors import build_connector
from connectors.errors import ConnectorError
from connectors.outbound import OutboundPolicy, send_request
from ihook.errors import Invalid
from ihook.models import Connector, Delivery, DeliveryAttempt, Event, Subscription, utcnow
from ihook.platform import Platform
from ihook.secrets import redact_headers
from ihook.services import deliveries as service
from ihook.services.connectors import full_config
from ihook.services.subscriptions import check_target, request_auth, signing_secrets
from ihook.signing import sign

log = logging.getLogger(__name__)

EXCERPT_CHARS = 2000
"""How much of a receiver's answer an attempt keeps."""
SLOW_SECONDS = 2.0
"""An attempt slower than this marks its subscription slow for ``SLOW_FOR`` seconds."""
SLOW_FOR = 300
MAX_PARALLEL = 8
"""Deliveries of one subscription sent at once; 1 while it is slow."""
PUT_OFF = timedelta(seconds=1)
"""How long a delivery waits when its subscription has as many in flight as allowed."""


@dataclass
class AttemptResult:
    """An attempt as the API's ``test`` call reports it."""

    delivery_id: str
    status_code: int | None
    duration_ms: float | None
    response_excerpt: str | None
    error: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send_delivery(p: Platform, delivery_id: str, *, single: bool = False) -> str:
    """Make the next attempt at a delivery; say what happened (for RQ's job result).

    ``single``: one attempt, no retry, no e-mail, no effect on the subscription's health
    (the API's ``test`` call).
    """
    with p.db.read() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return "nothing to do"
        subscription_id = delivery.subscription_id
        enabled = service.subscription_of(session, delivery).enabled
    if not single and not enabled:
        with p.db.session() as session:
            service.fail_unsent(session, delivery_id, "not sent: the subscription is disabled")
        return "not sent: the subscription is disabled"
    slot = _take_slot(p, subscription_id)
    if slot is None:
        p.deliveries.enqueue_in(
            PUT_OFF, delivery_id, delivery.attempts + 1, id_suffix=f"-w{time.monotonic_ns()}"
        )
        return "put off: the receiver is slow"
    try:
        with p.db.session() as session:  # committed before sending: no lock held meanwhile
            delivery = service.claim(session, delivery_id, timeout=p.settings.delivery_timeout)
            if delivery is None:
                return "not claimed: taken, finished or not yet due"
            sub = service.subscription_of(session, delivery)
        attempt = _attempt(p, sub, delivery)
    finally:
        _free_slot(p, subscription_id, slot)
    schedule = sub.retry_schedule or [0]
    retry_in = None if single or delivery.attempts >= len(schedule) else schedule[delivery.attempts]
    with p.db.session() as session:
        outcome = service.finish_attempt(session, delivery, attempt, retry_in=retry_in)
        if not single:
            _note_health(p, session, sub.id, outcome.succeeded, attempt)
    if outcome.succeeded:
        return f"delivered on attempt {attempt.number}"
    if outcome.retry_in is not None:
        nxt = delivery.attempts + 1
        if outcome.retry_in <= 0:
            p.deliveries.enqueue([(delivery_id, nxt)])
        else:
            p.deliveries.enqueue_in(timedelta(seconds=outcome.retry_in), delivery_id, nxt)
        return f"attempt {attempt.number} failed; retry in {outcome.retry_in}s"
    if not single and delivery.attempts == len(schedule):
        _alert(p, sub, delivery, attempt)
    return f"failed after {attempt.number} attempt(s)"


def attempt_result(p: Platform, delivery_id: str) -> AttemptResult:
    """The last attempt of a delivery, as ``test`` answers it."""
    with p.db.session() as session:
        attempts = service.attempts_of(session, delivery_id)
    last = attempts[-1] if attempts else None
    return AttemptResult(
        delivery_id=delivery_id,
        status_code=last.status_code if last else None,
        duration_ms=last.duration_ms if last else None,
        response_excerpt=last.response_excerpt if last else None,
        error=last.error if last else "not sent",
    )


def _attempt(p: Platform, sub: Subscription, delivery: Delivery) -> DeliveryAttempt:
    """POST the delivery once; the attempt as it went (not yet stored)."""
    body = json.dumps(delivery.body, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    secrets = signing_secrets(sub, p.vault)
    signature = " ".join(sign(secret, delivery.id, timestamp, body) for secret in secrets)
    extra = request_auth(sub, p.vault)
    headers = {
        **extra,
        "webhook-id": delivery.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": f"ihook/{ihook.__version__}",
    }
    attempt = DeliveryAttempt(
        delivery_id=delivery.id,
        number=delivery.attempts,
        started_at=utcnow(),
        url=sub.url,
        request_headers=redact_headers(headers, extra=extra.keys()),
    )
    policy = OutboundPolicy(
        allow_private=p.settings.allow_private_networks,
        timeout=float(p.settings.delivery_timeout),
        max_redirects=0,  # a receiver that moved is a failure to fix, not to follow
    )
    started = time.perf_counter()
    try:
        check_target(sub.url, sub.environment, allow_http=p.settings.allow_http, policy=policy)
        response = send_request("POST", sub.url, policy=policy, headers=headers, content=body)
    except Invalid as exc:
        attempt.error = f"refused: {'; '.join(exc.errors.get('url', [])) or exc}"
    except ConnectorError as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"
    else:
        attempt.status_code = response.status
        attempt.response_excerpt = response.body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[
            :EXCERPT_CHARS
        ]
        if not 200 <= response.status < 300:
            attempt.error = f"HTTP {response.status}"
    attempt.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return attempt


# -- health: slow receivers, failing subscriptions -----------------------------------------


def _take_slot(p: Platform, subscription_id: str) -> int | None:
    """Count this send in the subscription's in-flight number; None if over its limit."""
    key = f"ihook:inflight:{subscription_id}"
    try:
        with p.redis.pipeline() as pipe:
            pipe.incr(key).expire(key, 120).exists(f"ihook:slow:{subscription_id}")
            count, _, slow = pipe.execute()
        if count > (1 if slow else MAX_PARALLEL):
            p.redis.decr(key)
            return None
    except RedisError:
        return 0  # without Redis no limit: sending matters more than fairness
    return 1


def _free_slot(p: Platform, subscription_id: str, slot: int) -> None:
    if slot:
        try:
            p.redis.decr(f"ihook:inflight:{subscription_id}")
        except RedisError:
            pass


def _note_health(
    p: Platform, session: Any, subscription_id: str, ok: bool, attempt: DeliveryAttempt
) -> None:
    """Mark slow receivers; start, end or act on a subscription's failing streak."""
    slow = attempt.duration_ms is not None and attempt.duration_ms > SLOW_SECONDS * 1000
    try:
        if slow or (attempt.error and "timed out" in attempt.error):
            p.redis.set(f"ihook:slow:{subscription_id}", 1, ex=SLOW_FOR)
        elif ok:
            p.redis.delete(f"ihook:slow:{subscription_id}")
    except RedisError:
        pass
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
            f"disabled at {_iso(now)}: every delivery has failed since {_iso(since)}; "
            f"last error: {attempt.error}"
        )
        session.execute(
            update(Subscription)
            .where(Subscription.id == subscription_id, Subscription.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason)
        )
        log.warning("subscription %s %s", subscription_id, reason)


def _alert(p: Platform, sub: Subscription, delivery: Delivery, attempt: DeliveryAttempt) -> None:
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
                f"Received at: {_iso(event.received_at) if event else 'unknown'}",
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


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
