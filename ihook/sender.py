"""Sending deliveries: signed, logged, retried on the schedule, several at a time.

An attempt POSTs the delivery's body with Standard Webhooks headers (``webhook-id`` is
the delivery id on every attempt) through the SSRF guard, re-checking the URL rules of
the subscription. A 2xx within the timeout is success; anything else is logged and
retried after the subscription's ``retry_schedule``; after the last attempt the
delivery fails and the subscription's ``error_emails`` are told (``delivery_health``).

What a receiver answers is read only up to ``RESPONSE_BYTES`` once decoded (a huge body
or a gzip bomb is cut there, never inflated further) and kept as a short excerpt; the
status decides. A redirect is not followed. ``Retry-After`` on a 429 or 503 puts the
next attempt off at least that long. A 410 Gone ends the delivery and disables the
subscription: the receiver said it wants no more.

A worker drains deliveries (``drain``): it claims due ones from the database and keeps
up to ``SEND_THREADS`` attempts in flight, each in a thread of its own, while its main
thread stores finished attempts together and claims more. A subscription with as many
attempts in flight as it may have (one while it is slow) has its other deliveries put
off for a second, so one slow receiver never holds a worker's threads from the others.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from sqlalchemy.orm import Session

import ihook
from connectors.errors import ConnectFailed, ConnectorError, OutboundRefused
from connectors.outbound import OutboundPolicy, OutboundResponse, send_request
from ihook import delivery_health as health
from ihook.errors import Invalid
from ihook.models import Delivery, DeliveryAttempt, Subscription, utcnow
from ihook.platform import Platform
from ihook.queue import DRAIN_SECONDS, draining_stopped
from ihook.routing import snapshot_of
from ihook.secrets import redact_headers
from ihook.services import deliveries as service
from ihook.services.subscriptions import check_target, request_auth, signing_secrets
from ihook.signing import sign

log = logging.getLogger(__name__)

EXCERPT_CHARS = 2000
"""How much of a receiver's answer an attempt keeps."""
RESPONSE_BYTES = 4 * EXCERPT_CHARS
"""How much of a receiver's answer is read, decoded (UTF-8 takes up to 4 bytes a
character); the rest is never read nor inflated."""
GONE = 410
"""The answer that disables a subscription at once."""
RETRY_AFTER_STATUSES = frozenset({429, 503})
"""Answers whose ``Retry-After`` header puts the next attempt off."""
MAX_RETRY_AFTER = 2 * 86_400
"""The longest ``Retry-After`` honoured, seconds: the longest wait a retry schedule may
hold (a longer one is cut to this)."""
SEND_THREADS = 8
"""Attempts one worker makes at once (threads: the waiting is on the network)."""
MAX_FLYING = 4 * SEND_THREADS
"""Deliveries one worker holds claimed: being sent, or next in line for a thread."""
PUT_OFF = timedelta(seconds=1)
"""How long a delivery waits when its subscription has as many in flight as allowed."""
POLL_SECONDS = 0.2
"""While attempts are in flight, how often the worker looks for more to claim."""
GATHER_SECONDS = 0.005
"""After one attempt ends, how long to wait for others to store them in the same turn."""


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


@dataclass
class Claimed:
    """A delivery taken for one attempt, with its subscription."""

    delivery: Delivery
    sub: Subscription
    retry_after: int | None = None
    """Seconds the receiver asked to be left alone (``Retry-After``), once answered."""


def drain(p: Platform) -> str:
    """Make due delivery attempts until none is due (an RQ job's work); say how many.

    Each turn of the loop is one transaction: it stores the attempts that finished since
    the last turn and claims as many due deliveries as there is room for.
    """
    started = time.monotonic()
    flying: dict[Future[DeliveryAttempt], Claimed] = {}
    finished: list[tuple[Claimed, DeliveryAttempt]] = []
    made = 0
    woke = False
    while True:
        claiming = not draining_stopped() and time.monotonic() - started < DRAIN_SECONDS
        room = MAX_FLYING - len(flying) if claiming else 0
        if room or finished:
            mine = Counter(item.sub.id for item in flying.values())
            claimed, more, after = _turn(p, finished, room, mine)
            made += len(finished)
            finished = []
            after()
            if more and not woke:
                woke = p.deliveries.wake()  # a backlog: let every free worker join in
            for item in claimed:
                flying[_pool().submit(_attempt, p, item)] = item
        if not flying:
            break
        done, rest = wait(flying, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        if done and rest:  # quick receivers: store the attempts that end together at once
            done |= wait(rest, timeout=GATHER_SECONDS).done
        finished = [(flying.pop(f), f.result()) for f in done]
    if draining_stopped() or time.monotonic() - started >= DRAIN_SECONDS:
        p.deliveries.wake()  # out of time, perhaps not out of work: hand over
    return f"{made} attempt(s)"


def send_delivery(p: Platform, delivery_id: str, *, single: bool = False) -> str:
    """Make the next attempt at one delivery now, in this thread; say what happened.

    ``single``: one attempt, no retry, no e-mail, no effect on the subscription's health
    (the API's ``test`` call).
    """
    with p.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return "nothing to do"
        sub = service.subscription_of(session, delivery)
        if not single and not sub.enabled:
            service.fail_unsent(session, [delivery_id], "not sent: the subscription is disabled")
            return "not sent: the subscription is disabled"
        claimed = service.claim(session, delivery_id, timeout=p.settings.delivery_timeout)
        if claimed is None:
            return "not claimed: taken, finished or not yet due"
    item = Claimed(claimed, sub)
    attempt = _attempt(p, item)
    if single:
        with p.db.session() as session:
            service.finish_attempt(session, claimed, attempt, retry_in=None)
        return "delivered" if attempt.succeeded else "failed"
    return _finish(p, [(item, attempt)])[0]


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


def _turn(
    p: Platform, finished: list[tuple[Claimed, DeliveryAttempt]], room: int, mine: Counter[str]
) -> tuple[list[Claimed], bool, Callable[[], object]]:
    """In one transaction, store ``finished`` and claim up to ``room`` due deliveries.

    Returns the claimed, whether more are due, and what to do after the commit.
    """
    _note(p, finished, count_slots=True)  # free their slots before claiming more
    with p.db.session() as session:
        after = _store(p, session, finished)
        claimed, more, held = _claim_due(p, session, room, mine) if room else ([], False, False)
    if held:
        p.deliveries.wake_at(utcnow() + PUT_OFF)
    return claimed, more, after


def _claim_due(
    p: Platform, session: Session, room: int, mine: Counter[str]
) -> tuple[list[Claimed], bool, bool]:
    """Claim up to ``room`` due deliveries, as many per subscription as it may have in
    flight (``mine``: this worker's, by subscription). A slow subscription with no slot
    free has its due deliveries put off, so they stop filling the claim window; a fast
    one at its limit keeps them due for whoever frees a slot. Also: whether more are
    due, and whether some were put off."""
    due = service.due(session, limit=2 * room)
    if not due:
        return [], False, False
    disabled = [delivery_id for delivery_id, _, enabled in due if not enabled]
    service.fail_unsent(session, disabled, "not sent: the subscription is disabled")
    candidates = [(delivery_id, sub) for delivery_id, sub, enabled in due if enabled]
    wanted = Counter(sub for _, sub in candidates[:room])
    for sub in wanted:
        wanted[sub] = min(wanted[sub], max(0, health.MAX_PARALLEL - mine[sub]))
    granted, slow = health.take_slots(p, +wanted)
    full = {sub for sub in wanted if not granted.get(sub) and sub in slow}
    chosen = []
    for delivery_id, sub in candidates[:room]:
        if granted.get(sub, 0) > 0:
            granted[sub] -= 1
            chosen.append(delivery_id)
    held = [d for d, sub in candidates if sub in full]
    if held:
        service.put_off(session, held, until=utcnow() + PUT_OFF)
    deliveries = service.claim_many(session, chosen, timeout=_claim_timeout(p))
    subs = snapshot_of(session).subscription_by_id  # claimed: of enabled subscriptions
    missing = {d.subscription_id for d in deliveries} - subs.keys()
    if missing:  # not expected: read them
        subs = {**subs, **service.subscriptions_by_id(session, missing)}
    more = len(candidates) > len(chosen) + len(held)
    return [Claimed(d, subs[d.subscription_id]) for d in deliveries], more, bool(held)


def _claim_timeout(p: Platform) -> int:
    """How long a claimed delivery may take: its own timeout, behind a full queue of them."""
    return p.settings.delivery_timeout * (MAX_FLYING // SEND_THREADS)


def _finish(p: Platform, results: list[tuple[Claimed, DeliveryAttempt]]) -> list[str]:
    """Store finished attempts in their own transaction, then retries and e-mails."""
    _note(p, results, count_slots=False)
    with p.db.session() as session:
        after = _store(p, session, results)
    return after()


def _store(
    p: Platform, session: Session, results: list[tuple[Claimed, DeliveryAttempt]]
) -> Callable[[], list[str]]:
    """Store finished attempts in ``session``; what to do once it is committed."""
    if not results:
        return list
    rows = [(item.delivery, attempt, _next_wait(item, attempt)) for item, attempt in results]
    outcomes = service.finish_attempts(session, rows)
    last = {}
    for (item, attempt), outcome in zip(results, outcomes, strict=True):
        last[item.sub.id] = (item.sub, outcome.succeeded, attempt)
        if attempt.status_code == GONE:
            health.disable_gone(session, item.sub.id, item.delivery.id)
    for sub, ok, attempt in last.values():
        if not ok or sub.failing_since is not None:  # a streak to start, go on or end
            health.note_failing(p, session, sub.id, ok, attempt.error or "")

    def after() -> list[str]:
        return [
            _after(p, item, attempt, outcome)
            for (item, attempt), outcome in zip(results, outcomes, strict=True)
        ]

    return after


def _next_wait(item: Claimed, attempt: DeliveryAttempt) -> int | None:
    """Seconds until the next attempt, or None when this one was the last.

    The subscription's ``retry_schedule`` says how long, or longer when the receiver asked
    (``Retry-After``); after the schedule's last attempt, or a 410 Gone, there is none.
    """
    schedule = item.sub.retry_schedule or [0]
    number = item.delivery.attempts
    if attempt.status_code == GONE or number >= len(schedule):
        return None
    return max(schedule[number], item.retry_after or 0)


def _note(
    p: Platform, results: list[tuple[Claimed, DeliveryAttempt]], *, count_slots: bool
) -> None:
    """Tell Redis how the attempts went (slow receivers) and, with ``count_slots``, that
    they are no longer in flight."""
    if results:
        health.note_speed(
            p,
            ((item.sub.id, attempt) for item, attempt in results),
            done=Counter(item.sub.id for item, _ in results) if count_slots else None,
        )


def _after(p: Platform, item: Claimed, attempt: DeliveryAttempt, outcome: service.Outcome) -> str:
    """Schedule the next attempt or send the e-mail; say what happened."""
    if outcome.succeeded:
        return f"delivered on attempt {attempt.number}"
    if outcome.retry_in is not None:
        if outcome.retry_in <= 0:
            p.deliveries.wake()
        else:
            p.deliveries.wake_at(utcnow() + timedelta(seconds=outcome.retry_in))
        return f"attempt {attempt.number} failed; retry in {outcome.retry_in}s"
    if attempt.status_code == GONE:
        health.alert(p, item.sub, item.delivery, attempt)
        return f"failed: 410 Gone on attempt {attempt.number}; the subscription is disabled"
    if item.delivery.attempts == len(item.sub.retry_schedule or [0]):
        health.alert(p, item.sub, item.delivery, attempt)
    return f"failed after {attempt.number} attempt(s)"


_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """This process's sending threads, started on first use."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="ihook-send")
    return _executor


def _attempt(p: Platform, item: Claimed) -> DeliveryAttempt:
    """POST the delivery once; the attempt as it went (not yet stored). Never raises.

    Notes on ``item`` how long the receiver asked to wait (``Retry-After``), if it did.
    """
    sub, delivery = item.sub, item.delivery
    timeout = p.settings.delivery_timeout
    attempt = DeliveryAttempt(
        delivery_id=delivery.id, number=delivery.attempts, started_at=utcnow(), url=sub.url
    )
    started = time.perf_counter()
    try:
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
        attempt.request_headers = redact_headers(headers, extra=extra.keys())
        policy = OutboundPolicy(
            allow_private=p.settings.allow_private_networks,
            timeout=float(timeout),
            max_redirects=0,  # a receiver that moved is a failure to fix, not to follow
            max_response_bytes=RESPONSE_BYTES,
            truncate_response=True,  # an excerpt is all that is kept
        )
        check_target(  # the URL rules; the guard in send_request checks the addresses
            sub.url, sub.environment, allow_http=p.settings.allow_http, policy=policy, resolve=False
        )
        response = send_request("POST", sub.url, policy=policy, headers=headers, content=body)
    except Invalid as exc:
        attempt.error = f"refused: {'; '.join(exc.errors.get('url', [])) or exc}"
    except OutboundRefused as exc:
        attempt.error = f"refused: {exc.message}"
    except ConnectFailed as exc:
        attempt.error = (
            _timed_out(timeout, exc.message)
            if exc.message.startswith("timed out")
            else f"{type(exc).__name__}: {exc}"
        )
    except ConnectorError as exc:
        attempt.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug must fail the attempt visibly, not lose the delivery
        log.exception("attempt at delivery %s crashed", delivery.id)
        attempt.error = f"internal: {type(exc).__name__}: {exc}"
    else:
        attempt.status_code = response.status
        attempt.response_excerpt = _excerpt(response.body)
        if not 200 <= response.status < 300:
            attempt.error = f"HTTP {response.status}"
            item.retry_after = _retry_after(response)
            if item.retry_after is not None:
                attempt.error += f", Retry-After {item.retry_after} s"
    attempt.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return attempt


def _timed_out(timeout: int, message: str) -> str:
    """An attempt cut by the delivery timeout, named as such, with where it was cut
    (connecting, waiting for the answer, reading it)."""
    where = re.sub(r"^timed out(: timed out)?|: timed out$", "", message).strip(": ")
    return (
        f"timed out after {timeout} s (IHOOK_DELIVERY_TIMEOUT) {where or 'waiting for the answer'}"
    )


def _excerpt(body: bytes) -> str:
    """What an attempt keeps of an answer: its first ``EXCERPT_CHARS`` characters as UTF-8,
    undecodable bytes and NULs (which PostgreSQL text cannot hold) as U+FFFD."""
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
    return text.replace("\x00", "\ufffd")


def _retry_after(response: OutboundResponse) -> int | None:
    """Seconds a 429 or 503 asks to wait (``Retry-After``: seconds or an HTTP date), at most
    ``MAX_RETRY_AFTER``; None for other answers or a value that is neither."""
    value = response.headers.get("retry-after", "").strip()
    if response.status not in RETRY_AFTER_STATUSES or not value:
        return None
    if value.isascii() and value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; "-0000" parses as naive
        when = when.replace(tzinfo=UTC)
    seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(0, math.ceil(seconds)), MAX_RETRY_AFTER)
