"""Polls: a poller's source is read, and its new items become events, never twice.

A poll reads every page first (``ihook.poll_fetch``), then stores in one transaction,
with the poller's row locked: the items whose id the poller has not seen (one
``poller_items`` row each), their events and queued runs, the new cursor and the log
row. Only after the commit are the runs enqueued. A poll that fails at any point stores
nothing but its log row and the poller's back-off, and leaves the cursor where it was,
so the next poll reads the same items again and the ids already seen keep it from
storing any twice.

``Poller.config`` (validated when saved; read as valid here)::

    request:     {connector: <http connector name>, path: <template>}
                 or {url: <template of an absolute URL>}
                 plus method: GET | POST (default GET), params: {name: <template>},
                 headers: {name: <template>}, json: <JSON whose strings are templates>
    schedule:    {interval_seconds: n} or {cron: "...", timezone: "..."}  (the scheduler's)
    items:       jmespath over a page's parsed body -> the list of items (default "@")
    id:          jmespath over one item -> its identity (string or number, stringified);
                 an id seen once is never an event again, so to see an item's changes
                 put its version in the id (``join('@', [to_string(id), updated_at])``)
    cursor:      jmespath over {"items": [every item read, all pages], "page": <last page's
                 body>, "state": {"cursor": <cursor before>}} -> the next watermark;
                 null keeps the cursor (optional)
    pagination:  {next: jmespath over a page's body -> the next URL or path, resolved
                 against the page's URL and kept to the first request's origin}
                 or {page_param: name, first_page: 1, page_size: n, size_param: name}
                 (page_param stops at an empty page or one with fewer than page_size items)
    max_pages:   default 10, at most 1000 (read in pagination too): a poll that needs
                 more pages fails
    format:      auto (from the content-type; else JSON) | json | ndjson | csv
    mode:        item (one event per new item, data = the item) | batch (one event per
                 poll with new items, data = {"items": [...], "count": n})
    event_type:  the type of those events (the column ``Poller.event_type`` is used)

Templates (sandboxed jinja2) see ``state.cursor``, ``now`` (ISO-8601 UTC), ``poller.id``,
``poller.name`` and ``page`` (the page number with ``page_param``, else null). A
``next`` link's URL is requested as given: the configured params go to the first page
only; headers and body go to every page.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ihook.ids import new_id
from ihook.models import Poll, Poller, PollerItem, utcnow
from ihook.platform import Platform
from ihook.poll_fetch import Fetched, PollFailed, fetch, next_cursor, target_for
from ihook.services.events import POLLER_SOURCE, Accepted, add_event
from workflows.expressions import utc_now

log = logging.getLogger(__name__)

BACKOFF_FIRST = 5.0
"""Seconds a poller waits after its first failure in a row; doubled after each next one."""
BACKOFF_MAX = 3600.0
"""The longest a failing poller waits between polls."""
SEEN_CHUNK = 500
"""Ids looked up at once among the items a poller has seen."""
MAX_LOGGED_EVENTS = 1000
"""Event ids a poll's log row keeps."""


@dataclass(frozen=True)
class _Poller:
    """What a poll reads of its poller before it starts (no row held while fetching)."""

    id: str
    name: str
    config: dict[str, Any]
    cursor: Any


def poll_job(p: Platform, poller_id: str, slot: str | None) -> str:
    """The RQ job: one poll (``slot``: the scheduled time, ISO; None: a manual poll).

    Says what happened; never raises, so a poll is never retried by RQ (the next slot is
    the retry).
    """
    try:
        when = datetime.fromisoformat(slot.replace("Z", "+00:00")) if slot else None
        done = poll(p, poller_id, slot=when, trigger="schedule" if slot else "manual")
    except Exception as exc:
        log.exception("poll of %s could not be recorded", poller_id)
        return f"failed: internal: {type(exc).__name__}: {exc}"
    if done is None:
        return "skipped: the poller is disabled or gone"
    if done.status == "failed":
        return f"failed: {done.error}"
    return f"succeeded: {done.pages} page(s), {done.items_seen} item(s), {done.items_new} new"


def poll(
    p: Platform, poller_id: str, *, slot: datetime | None, trigger: str = "schedule"
) -> Poll | None:
    """Poll once and return the logged poll; None (nothing done) for a deleted poller
    or, when ``trigger`` is ``schedule``, a disabled one (``manual`` polls it anyway).

    Raises only when the database cannot record the outcome.
    """
    started, clock = utcnow(), time.perf_counter()
    with p.db.session() as session:
        row = session.get(Poller, poller_id)
        if row is None or (not row.enabled and trigger == "schedule"):
            return None
        poller = _Poller(row.id, row.name, dict(row.config), row.cursor)
    log_row = Poll(
        id=new_id("poll"),
        poller_id=poller.id,
        slot=slot,
        trigger=trigger,
        started_at=started,
        cursor_before=poller.cursor,
        cursor_after=poller.cursor,
    )
    context = {
        "state": {"cursor": poller.cursor},
        "now": utc_now(),
        "poller": {"id": poller.id, "name": poller.name},
    }
    try:
        with p.db.session() as session:
            target = target_for(session, p.vault, p.outbound, poller.config)
        fetched = fetch(poller.config, target, context, budget=float(p.settings.run_timeout))
        log_row.pages, log_row.http_status = fetched.pages, fetched.http_status
        cursor = next_cursor(poller.config, fetched, poller.cursor)
        accepted = _store(p, poller, fetched, cursor, log_row, clock)
    except PollFailed as exc:
        log_row.pages, log_row.http_status = exc.pages, exc.http_status
        return _fail(p, log_row, exc.message, clock)
    except Exception as exc:
        log.exception("poll of %s failed", poller_id)
        return _fail(p, log_row, f"internal: {type(exc).__name__}: {exc}", clock)
    if accepted is None:
        return None  # the poller was deleted while it was being polled
    p.dispatch(accepted)
    return log_row


def _store(
    p: Platform, poller: _Poller, fetched: Fetched, cursor: Any, log_row: Poll, clock: float
) -> Accepted | None:
    """Commit the new items' events, the cursor and the log row; what to enqueue."""
    with p.db.session() as session:
        # Held to the commit: a second poll of this poller waits here, then sees our ids.
        row = session.scalar(select(Poller).where(Poller.id == poller.id).with_for_update())
        if row is None:
            return None
        unique: dict[str, Any] = {}
        for ident, item in fetched.entries:
            unique.setdefault(ident, item)  # an id repeated within the poll: its first item
        seen = _seen(session, poller.id, list(unique))
        new = [(ident, item) for ident, item in unique.items() if ident not in seen]
        source = f"{POLLER_SOURCE}{poller.name}"
        runs: list[str] = []
        deliveries: list[str] = []
        events: list[str] = []

        def add(data: Any, idents: list[str]) -> None:
            accepted = add_event(
                session,
                type=row.event_type,
                source=source,
                data=data,
                headers={},
                poller=poller.name,
            )
            events.append(accepted.event_id)
            runs.extend(accepted.run_ids)
            deliveries.extend(accepted.delivery_ids)
            session.add_all(
                PollerItem(poller_id=poller.id, item_id=ident, event_id=accepted.event_id)
                for ident in idents
            )

        if poller.config.get("mode") == "batch":
            if new:
                items = [item for _, item in new]
                add({"items": items, "count": len(items)}, [ident for ident, _ in new])
        else:
            for ident, item in new:
                add(item, [ident])
        if cursor is not None:
            row.cursor = cursor
        row.failures, row.retry_after = 0, None
        log_row.status = "succeeded"
        log_row.items_seen, log_row.items_new = len(fetched.entries), len(new)
        log_row.cursor_after = row.cursor
        log_row.events = events[:MAX_LOGGED_EVENTS]
        log_row.duration_ms = _ms_since(clock)
        session.add(log_row)
    # One Accepted for the whole poll: its runs and deliveries go to Redis in one pipeline.
    return Accepted(events[0] if events else "", run_ids=runs, delivery_ids=deliveries)


def _seen(session: Session, poller_id: str, idents: list[str]) -> set[str]:
    seen: set[str] = set()
    for start in range(0, len(idents), SEEN_CHUNK):
        chunk = idents[start : start + SEEN_CHUNK]
        query = select(PollerItem.item_id).where(
            PollerItem.poller_id == poller_id, PollerItem.item_id.in_(chunk)
        )
        seen.update(session.scalars(query))
    return seen


def _fail(p: Platform, log_row: Poll, error: str, clock: float) -> Poll | None:
    """Log the failed poll and back the poller off; nothing else changes."""
    log_row.status, log_row.error = "failed", error
    log_row.items_seen, log_row.items_new, log_row.events = 0, 0, []
    with p.db.session() as session:
        row = session.scalar(select(Poller).where(Poller.id == log_row.poller_id).with_for_update())
        if row is None:
            return None
        row.failures = (row.failures or 0) + 1
        row.retry_after = utcnow() + backoff(row.failures)
        log_row.cursor_after = log_row.cursor_before
        log_row.duration_ms = _ms_since(clock)
        session.add(log_row)
    log.warning("poll of %s failed: %s", row.name, error)
    return log_row


def backoff(failures: int) -> timedelta:
    """How long a poller that failed ``failures`` times in a row waits: 5 s, 10 s, … 1 h."""
    doublings = min(max(failures - 1, 0), 20)  # 5 s * 2**20 is far past the cap already
    return timedelta(seconds=min(BACKOFF_FIRST * 2**doublings, BACKOFF_MAX))


def _ms_since(clock: float) -> float:
    return round((time.perf_counter() - clock) * 1000, 1)
