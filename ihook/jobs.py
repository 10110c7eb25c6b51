"""RQ job entry points. Jobs take ids, never objects, and are safe to run twice."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ihook import polling, sender
from ihook.models import Event, Run, RunStatus, WorkflowVersion, utcnow
from ihook.platform import Platform
from ihook.queue import DRAIN_SECONDS, WorkQueue, draining_stopped
from ihook.resources import run_resources
from ihook.routing import Snapshot, snapshot_of
from ihook.services.events import Accepted, add_event
from ihook.services.runs import backoff, claim_next, claim_run, finish_run
from ihook.settings import Settings
from workflows import RunResult, run_workflow

log = logging.getLogger(__name__)

_platform: Platform | None = None


def platform() -> Platform:
    """This worker process's platform, built from the environment on first use."""
    global _platform
    if _platform is None:
        _platform = Platform(Settings.from_env())
    return _platform


def use_platform(value: Platform | None) -> None:
    """Set the platform jobs use (a worker started with explicit settings)."""
    global _platform
    _platform = value


def drain_runs(not_before: float | None = None) -> str:
    """Execute due queued runs one after another until none is left (RQ job).

    The transaction that stores a run's outcome also claims the next run, so a run
    costs two write transactions of the worker's (its claim is its predecessor's end).
    Stops claiming after ``DRAIN_SECONDS`` and wakes a fresh job if work is left, so one
    job never outlives its RQ timeout and RQ's own bookkeeping gets its turn; stops at
    once, after the run in hand, when the worker is asked to stop (``stop_draining``).
    ``not_before``: the time (epoch seconds) a scheduled job is for.
    """
    p = platform()
    WorkQueue.wait_until(not_before)
    started = time.monotonic()

    def in_time() -> bool:
        return not draining_stopped() and time.monotonic() - started < DRAIN_SECONDS

    claimed: Claimed | None = None
    if in_time():
        with p.db.session() as session:
            claimed, more = _claim(p, session, more=True)
        if more:
            p.queue.wake()  # a backlog: let every free worker join in
    done = 0
    while claimed is not None:
        outcome = _perform(p, *claimed)
        done += 1
        go_on = in_time()
        with p.db.session() as session:
            kept, told = _record(p, session, outcome)
            claimed = _claim(p, session)[0] if go_on else None
        _after(p, outcome, kept, told)
    if not in_time():
        p.queue.wake()  # out of time, perhaps not out of work: hand over
        return f"{done} run(s), more left"
    return f"{done} run(s)"


def execute_run(run_id: str) -> str:
    """Run one queued run to its end (or to its next retry) and store the step log.

    Jobs of this kind come only from versions that queued one job per run; they are
    still honoured after an upgrade.
    """
    p = platform()
    with p.db.session() as session:
        run = claim_run(session, run_id, timeout=p.settings.run_timeout)
        if run is None:
            return "not claimed: already taken, finished or not yet due"
        work = _load(session, run)
    outcome = _perform(p, run, *work)
    with p.db.session() as session:
        kept, told = _record(p, session, outcome)
    return _after(p, outcome, kept, told)


Claimed = tuple[Run, "Event | None", "WorkflowVersion | None", Snapshot]
"""A claimed run and what its work needs."""


def _claim(p: Platform, session: Session, *, more: bool = False) -> tuple[Claimed | None, bool]:
    """Claim the due run waiting longest, with what its work needs; with ``more``, say
    whether another is due too."""
    run, another = claim_next(session, timeout=p.settings.run_timeout, more=more)
    if run is None:
        return None, False
    return (run, *_load(session, run)), another


_versions: dict[tuple[str, int], WorkflowVersion] = {}
"""Workflow versions this process has read: a version never changes once saved."""


def _load(session: Session, run: Run) -> tuple[Event | None, WorkflowVersion | None, Snapshot]:
    """What a claimed run needs: its event, its workflow version, the configuration."""
    key = (run.workflow_id, run.workflow_version)
    version = _versions.get(key)
    if version is None:
        version = session.get(WorkflowVersion, key)
        if version is not None:
            session.expunge(version)
            if len(_versions) > 1000:
                _versions.clear()
            _versions[key] = version
    row = session.connection().execute(_EVENT, {"id": run.event_id}).first()
    event = None if row is None else Event(**row._asdict())  # read with Core: half the cost
    return event, version, snapshot_of(session)


_EVENT = select(*Event.__table__.columns).where(Event.__table__.c.id == bindparam("id"))
"""A run's event, read as a row (the ORM's identity-map load cost twice as much)."""


@dataclass
class Outcome:
    """How a run's attempt ended, to be stored."""

    run: Run
    event: Event | None
    version: WorkflowVersion | None
    snapshot: Snapshot
    status: RunStatus
    error: str | None = None
    result: RunResult | None = None
    retry_in: timedelta | None = None


def _perform(
    p: Platform,
    run: Run,
    event: Event | None,
    version: WorkflowVersion | None,
    snapshot: Snapshot,
) -> Outcome:
    """Run a claimed run's workflow (outside any transaction of ours)."""
    if event is None or version is None:
        return Outcome(run, event, version, snapshot, RunStatus.failed, "event or workflow gone")
    try:
        resources = run_resources(p, run, event, snapshot)
        result = run_workflow(
            version.definition,
            event_document(event),
            resources=resources,
            run={"id": run.id, "attempt": run.attempt},
        )
    except Exception as exc:  # a bug in the engine: fail the run visibly, never vanish
        log.exception("run %s crashed", run.id)
        return Outcome(run, event, version, snapshot, RunStatus.failed, f"internal: {exc}")
    retry = result.retryable and run.attempt < p.settings.max_attempts
    retry_in = backoff(run.attempt) if retry else None
    status = RunStatus(result.status)
    return Outcome(run, event, version, snapshot, status, result.error, result, retry_in)


def _record(p: Platform, session: Session, outcome: Outcome) -> tuple[bool, Accepted | None]:
    """Store the outcome in ``session``'s transaction. Whether it was still this attempt's
    to store (the sweeper may have given the run to another worker), and the ``run.*``
    event it publishes."""
    result = outcome.result
    if result is None:
        kept = finish_run(
            session, outcome.run, status=outcome.status, steps=[], error=outcome.error
        )
        return kept, None
    kept = finish_run(
        session,
        outcome.run,
        status=outcome.status,
        steps=[step.to_dict() for step in result.steps],
        output=_json_safe(result.output),
        response=_json_safe(result.response),
        error=result.error,
        failed_step=result.failed_step,
        retry_in=outcome.retry_in,
    )
    if not kept or outcome.retry_in is not None:
        return kept, None
    assert outcome.event is not None and outcome.version is not None
    told = _tell_outcome(
        session, outcome.snapshot, outcome.run, outcome.version, outcome.event, result
    )
    return kept, told


def _after(p: Platform, outcome: Outcome, kept: bool, told: Accepted | None) -> str:
    """Once the outcome is committed: wake whoever has work from it; say what happened."""
    if told is not None:
        p.dispatch(told)
    if kept and outcome.retry_in is not None:
        p.queue.wake_at(utcnow() + outcome.retry_in)
        return f"retry {outcome.run.attempt + 1} in {outcome.retry_in.total_seconds():.0f}s"
    return outcome.status


def _tell_outcome(
    session: Session,
    snapshot: Snapshot,
    run: Run,
    version: WorkflowVersion,
    event: Event,
    result: RunResult,
) -> Accepted | None:
    """Publish ``run.succeeded`` / ``run.failed`` in the run's last transaction, if wanted.

    Only when a workflow or subscription listens for it, and never for a run that a
    ``run.*`` event started (a workflow reporting on failed runs must not feed itself).
    """
    if result.status not in ("succeeded", "failed") or event.type.startswith("run."):
        return None
    event_type = f"run.{result.status}"
    if not snapshot.has_listeners(event_type):  # as of the run's start
        return None
    data = {
        "run_id": run.id,
        "workflow_id": run.workflow_id,
        "workflow_name": version.definition.get("name"),
        "workflow_version": run.workflow_version,
        "event_id": event.id,
        "event_type": event.type,
        "status": result.status,
        "attempt": run.attempt,
        "error": result.error,
        "failed_step": result.failed_step,
        "finished_at": utcnow().isoformat().replace("+00:00", "Z"),
    }
    return add_event(session, type=event_type, source=f"run:{run.id}", data=data, headers={})


def drain_deliveries(not_before: float | None = None) -> str:
    """Make due delivery attempts until none is due (see ``ihook.sender``).

    ``not_before``: the time (epoch seconds) a scheduled job is for.
    """
    WorkQueue.wait_until(not_before)
    return sender.drain(platform())


def send_delivery(delivery_id: str) -> str:
    """Make the next attempt at one delivery (jobs queued by versions before drain jobs)."""
    return sender.send_delivery(platform(), delivery_id)


def event_document(event: Event) -> dict[str, Any]:
    """The event as workflows see it."""
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "data": event.data,
        "headers": event.headers,
        "received_at": event.received_at.isoformat(),
    }


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def run_poll(poller_id: str, slot: str | None = None) -> str:
    """Make one poll of a poller (``slot``: the scheduled time it is for, ISO; None: now)."""
    return polling.poll_job(platform(), poller_id, slot)
