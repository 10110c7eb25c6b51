"""Pollers: create, change, switch on and off, delete; ask for a poll now.

A poller's definition is checked by ``poller_fields.validate`` and stored whole in
``config`` (name, description and enabled have their own columns). The scheduler polls
only slots at or after ``schedule_from``: it is set to now when a poller is created
enabled, when its schedule changes and when it is switched back on (so no slot from
before counts), and cleared while it is off. A changed definition or a switch back on
also forgets the back-off of earlier failures, so a fixed poller is polled at its next
slot. Workflows bind to a poller by name (``trigger: {poller: <name>}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.outbound import OutboundPolicy
from ihook.errors import Unavailable
from ihook.ids import new_id
from ihook.models import Poller, Workflow, utcnow
from ihook.services.common import fetch, flush_unique
from ihook.services.poller_fields import (
    DEFAULT_MAX_PAGES,
    DEFAULTS,
    FORMATS,
    MAX_PAGE_SIZE,
    MAX_PAGES,
    METHODS,
    MODES,
    SCHEDULE_FIELDS,
    default_event_type,
    validate,
)

if TYPE_CHECKING:
    from ihook.queue import JobQueue

__all__ = [
    "DEFAULTS",
    "DEFAULT_MAX_PAGES",
    "FORMATS",
    "MAX_PAGES",
    "MAX_PAGE_SIZE",
    "METHODS",
    "MODES",
    "create_poller",
    "default_event_type",
    "definition",
    "delete_poller",
    "fed_workflows",
    "get_poller",
    "list_pollers",
    "poll_now",
    "update_poller",
]


def get_poller(session: Session, poller_id: str) -> Poller:
    """The poller, or NotFound."""
    return fetch(session, Poller, poller_id, f"poller {poller_id} not found")


def list_pollers(session: Session) -> list[Poller]:
    """Every poller, oldest first."""
    return list(session.scalars(select(Poller).order_by(Poller.id)))


def create_poller(session: Session, fields: dict[str, Any], *, policy: OutboundPolicy) -> Poller:
    """Check a definition and store it as a new poller (enabled unless it says otherwise)."""
    checked = validate(session, fields, None, policy=policy)
    columns = {"description": "", "enabled": True, **checked.columns}
    poller = Poller(id=new_id("pol"), config=checked.config, failures=0, **columns)
    poller.cursor = checked.initial_cursor
    _track_schedule(poller, restart=True)
    session.add(poller)
    flush_unique(session, "poller", poller.name)
    return poller


def update_poller(
    session: Session,
    poller_id: str,
    fields: dict[str, Any],
    *,
    policy: OutboundPolicy,
    partial: bool = False,
) -> Poller:
    """Replace a poller's definition, or with ``partial`` change only the fields given.

    A replacement gives the definition fields left out their defaults; ``enabled`` and
    the cursor keep their values unless given (``initial_cursor`` sets the cursor, null
    included).
    """
    poller = get_poller(session, poller_id)
    checked = validate(session, fields, poller, policy=policy, partial=partial)
    was_enabled, old_config = poller.enabled, poller.config
    if not partial:
        checked.columns.setdefault("description", "")
    for name, value in checked.columns.items():
        setattr(poller, name, value)
    poller.config = checked.config
    if checked.cursor_given:
        poller.cursor = checked.initial_cursor
    switched_on = poller.enabled and not was_enabled
    if switched_on or checked.config != old_config:
        poller.failures, poller.retry_after = 0, None
    _track_schedule(poller, restart=checked.schedule_changed or switched_on)
    poller.updated_at = utcnow()
    flush_unique(session, "poller", poller.name)
    return poller


def delete_poller(session: Session, poller_id: str) -> None:
    """Delete a poller with its poll log and the item ids it has seen (not its events)."""
    session.delete(get_poller(session, poller_id))


def poll_now(session: Session, queue: JobQueue, poller_id: str) -> str:
    """Queue one poll of the poller now, outside its schedule; return the job id."""
    get_poller(session, poller_id)
    job_id = f"poll-{poller_id}-now-{new_id('job')}"  # RQ ids take no ':'; each is new
    if not queue.enqueue_jobs([(job_id, (poller_id, None))]):
        raise Unavailable("the poll could not be queued (Redis is unavailable); try again")
    return job_id


def fed_workflows(session: Session, name: str) -> list[str]:
    """Ids of the workflows whose trigger is ``{poller: <name>}``, oldest first."""
    query = select(Workflow.id).where(Workflow.poller == name).order_by(Workflow.id)
    return list(session.scalars(query))


def definition(poller: Poller) -> dict[str, Any]:
    """The poller as a create body would give it, with every default filled in."""
    config = poller.config
    body: dict[str, Any] = {
        "name": poller.name,
        "description": poller.description,
        "enabled": poller.enabled,
        "request": config.get("request"),
    }
    schedule = config.get("schedule") or {}
    body.update({name: schedule[name] for name in SCHEDULE_FIELDS if name in schedule})
    body.update({name: config.get(name, default) for name, default in DEFAULTS.items()})
    body["id"] = config.get("id")
    body["event_type"] = poller.event_type
    return body


def _track_schedule(poller: Poller, *, restart: bool) -> None:
    """Count slots from now after a (re)start; count none while the poller is off."""
    if not poller.enabled:
        poller.schedule_from = None
    elif restart or poller.schedule_from is None:
        poller.schedule_from = utcnow()
