"""RQ job entry points. Jobs take ids, never objects, and are safe to run twice."""

from __future__ import annotations

import json
import logging
from typing import Any

from ihook.models import Event, RunStatus, WorkflowVersion
from ihook.platform import Platform
from ihook.resources import run_resources
from ihook.services.runs import backoff, claim_run, finish_run
from ihook.settings import Settings
from workflows import run_workflow

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


def execute_run(run_id: str) -> str:
    """Run one queued run to its end (or to its next retry) and store the step log."""
    p = platform()
    with p.db.session() as session:
        run = claim_run(session, run_id, timeout=p.settings.run_timeout)
        if run is None:
            return "not claimed: already taken, finished or not yet due"
        event = session.get(Event, run.event_id)
        version = session.get(WorkflowVersion, (run.workflow_id, run.workflow_version))
    if event is None or version is None:
        with p.db.session() as session:
            finish_run(
                session, run, status=RunStatus.failed, steps=[], error="event or workflow gone"
            )
        return "failed"
    try:
        resources = run_resources(p, run, event)
        result = run_workflow(
            version.definition,
            event_document(event),
            resources=resources,
            run={"id": run.id, "attempt": run.attempt},
        )
    except Exception as exc:  # a bug in the engine: fail the run visibly, never vanish
        log.exception("run %s crashed", run_id)
        with p.db.session() as session:
            finish_run(session, run, status=RunStatus.failed, steps=[], error=f"internal: {exc}")
        return "failed"
    retry = result.retryable and run.attempt < p.settings.max_attempts
    retry_in = backoff(run.attempt) if retry else None
    with p.db.session() as session:
        kept = finish_run(
            session,
            run,
            status=RunStatus(result.status),
            steps=[step.to_dict() for step in result.steps],
            output=_json_safe(result.output),
            response=_json_safe(result.response),
            error=result.error,
            failed_step=result.failed_step,
            retry_in=retry_in,
        )
    if kept and retry_in is not None:
        p.queue.enqueue_in(retry_in, run.id, run.attempt + 1)
        return f"retry {run.attempt + 1} in {retry_in.total_seconds():.0f}s"
    return result.status


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
