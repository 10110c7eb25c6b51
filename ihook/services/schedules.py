"""Scheduled workflows: fire each due slot once, however many schedulers run.

A workflow whose trigger is ``{schedule: ...}`` fires at most one slot per tick: the newest
slot that has come (so slots missed while no scheduler ran collapse into one firing) if it
is newer than the last one fired and not older than the schedule itself. Each firing is an
event of source ``schedule`` whose data names the slot and the window it covers, stored
with its queued run in the transaction that records the slot — so two schedulers racing
for the same slot produce one event and one run.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ihook.db import Database
from ihook.models import Workflow, utcnow
from ihook.services.events import Accepted, add_event
from workflows.schedule import Schedule, ScheduleError, parse_schedule

EVENT_TYPE = "schedule.fired"
"""The type of the event each firing stores."""

SOURCE = "schedule"
"""The source of those events."""


def schedule_of(definition: dict[str, Any]) -> Schedule | None:
    """The schedule of a definition's trigger, or None when it has none."""
    spec = (definition.get("trigger") or {}).get("schedule")
    if spec is None:
        return None
    try:
        return parse_schedule(spec)
    except ScheduleError:
        return None  # validation refuses these; an old row must not stop the scheduler


def track_schedule(workflow: Workflow, *, changed: bool) -> None:
    """Start, restart or stop counting slots after a workflow was saved or toggled.

    Slots count from the moment a schedule is set, changed or re-enabled: a new nightly
    job does not fire for last night, nor a re-enabled one for the nights it was off.
    """
    scheduled = workflow.enabled and schedule_of(workflow.definition) is not None
    if not scheduled:
        workflow.schedule_from = None
    elif changed or workflow.schedule_from is None:
        workflow.schedule_from = utcnow()


def fire_due(db: Database, now: datetime | None = None) -> list[Accepted]:
    """Fire every scheduled workflow whose slot has come; return what each firing stored."""
    now = now or utcnow()
    with db.session() as session:
        rows = session.execute(
            select(Workflow.id, Workflow.definition, Workflow.schedule_from, Workflow.last_slot)
            .where(Workflow.schedule_from.is_not(None), Workflow.enabled.is_(True))
            .order_by(Workflow.id)
        ).all()
    fired: list[Accepted] = []
    for workflow_id, definition, since, last in rows:
        schedule = schedule_of(definition)
        if schedule is None:
            continue
        slot = schedule.latest(now)
        if slot < since or (last is not None and slot <= last):
            continue
        with db.session() as session:
            accepted = _fire(session, workflow_id, schedule, slot, since)
        if accepted is not None:
            fired.append(accepted)
    return fired


def _fire(
    session: Session, workflow_id: str, schedule: Schedule, slot: datetime, since: datetime
) -> Accepted | None:
    """Record ``slot`` as fired and store its event and run, unless another scheduler did."""
    last = session.scalar(
        select(Workflow.last_slot).where(Workflow.id == workflow_id).with_for_update()
    )
    claimed = session.execute(
        update(Workflow)
        .where(
            Workflow.id == workflow_id,
            Workflow.schedule_from.is_not(None),
            or_(Workflow.last_slot.is_(None), Workflow.last_slot < slot),
        )
        .values(last_slot=slot)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        return None
    # The first window reaches back to the last slot before the schedule was set, so
    # nights missed before a first firing are covered too; later ones start at the last.
    start = last or min(schedule.before(slot), schedule.latest(since))
    return add_event(
        session,
        type=EVENT_TYPE,
        source=SOURCE,
        data={"slot": _iso(slot), "window": {"start": _iso(start), "end": _iso(slot)}},
        headers={},
        dedupe_key=f"schedule:{workflow_id}:{_iso(slot)}",
        workflow_id=workflow_id,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
