"""Runs: their life cycle (claim, finish, retry) and the sweeps that keep none lost.

A run moves ``queued → running → succeeded | failed | skipped``. Every transition is one
conditional UPDATE, so a job delivered twice, a late worker or two schedulers racing
change nothing they should not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from ihook.errors import Conflict
from ihook.models import FINISHED, Run, RunStatus, utcnow
from ihook.services.common import fetch, page

BACKOFF_BASE = 2.0
"""Seconds before the first retry of a retryable failure; doubled on each attempt."""
BACKOFF_MAX = 3600.0
"""Longest wait between two attempts."""
SWEEP_BATCH = 500
"""Runs a sweep looks at in one pass."""
EARLY_CLAIM = timedelta(seconds=1)
"""How early a retry may be claimed: RQ's scheduler keeps times to the whole second."""


def backoff(attempt: int) -> timedelta:
    """How long to wait after failed ``attempt`` (1-based): 2 s, 4 s, 8 s … capped at 1 h."""
    return timedelta(seconds=min(BACKOFF_BASE * 2 ** (attempt - 1), BACKOFF_MAX))


def get_run(session: Session, run_id: str) -> Run:
    """The run, or NotFound."""
    return fetch(session, Run, run_id, f"run {run_id} not found")


def list_runs(
    session: Session,
    *,
    workflow_id: str | None = None,
    event_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Run]:
    """Runs newest first, filtered by workflow, event, status and time range."""
    query = select(Run)
    if workflow_id:
        query = query.where(Run.workflow_id == workflow_id)
    if event_id:
        query = query.where(Run.event_id == event_id)
    if status:
        query = query.where(Run.status == status)
    query = page(query, Run.created_at, since=since, until=until, after=after, limit=limit)
    return list(session.scalars(query))


def claim_run(session: Session, run_id: str, *, timeout: int) -> Run | None:
    """Mark a due queued run ``running`` for this worker; None when it is not ours to run."""
    now = utcnow()
    claimed = session.execute(
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == RunStatus.queued,
            Run.next_attempt_at <= now + EARLY_CLAIM,
        )
        .values(
            status=RunStatus.running,
            attempt=Run.attempt + 1,
            started_at=now,
            deadline_at=now + timedelta(seconds=timeout),
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.expire_all()
    return session.get(Run, run_id)


def claim_next(session: Session, *, timeout: int, more: bool = False) -> tuple[Run | None, bool]:
    """Claim the queued run due longest (as ``claim_run``); with ``more``, say whether
    another is due too.

    One ``UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING``; on PostgreSQL the inner
    select skips rows other workers are claiming (``SKIP LOCKED``), on SQLite the write
    transaction already keeps them out. The run comes back detached, not in the session.
    """
    now = utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    claim = _CLAIM_LOCKED if postgres else _CLAIM
    row = (
        session.connection()
        .execute(claim, {"now": now, "deadline": now + timedelta(seconds=timeout)})
        .first()
    )
    if row is None:
        return None, False
    run = Run(**row._asdict())
    another = more and session.connection().execute(_ANOTHER, {"now": now}).first() is not None
    return run, another


def _claim_statement(*, skip_locked: bool) -> Any:
    due = (
        select(Run.id)
        .where(Run.status == RunStatus.queued, Run.next_attempt_at <= bindparam("now"))
        .order_by(Run.next_attempt_at)
        .limit(1)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    table = Run.__table__
    return (
        update(table)
        .where(table.c.id == due.scalar_subquery())
        .values(
            status=RunStatus.running,
            attempt=table.c.attempt + 1,
            started_at=bindparam("now"),
            deadline_at=bindparam("deadline"),
        )
        .returning(*(table.c[name] for name in CLAIMED_COLUMNS))
    )


CLAIMED_COLUMNS = (
    "id",
    "workflow_id",
    "workflow_version",
    "event_id",
    "status",
    "attempt",
    "started_at",
    "deadline_at",
)
"""What a claim returns of the run: all its work needs."""
_CLAIM = _claim_statement(skip_locked=False)
_CLAIM_LOCKED = _claim_statement(skip_locked=True)
_ANOTHER = (
    select(Run.id)
    .where(Run.status == RunStatus.queued, Run.next_attempt_at <= bindparam("now"))
    .limit(1)
)


def finish_run(
    session: Session,
    run: Run,
    *,
    status: RunStatus,
    steps: list[dict[str, Any]],
    output: Any = None,
    response: Any = None,
    error: str | None = None,
    failed_step: str | None = None,
    retry_in: timedelta | None = None,
) -> bool:
    """Record the outcome of the attempt ``run`` holds; with ``retry_in``, queue it again.

    Returns False (and writes nothing) when the run is no longer this attempt's: the
    sweeper gave it to another worker.
    """
    values: dict[str, Any] = {
        "run_id": run.id,
        "run_attempt": run.attempt,
        "v_steps": steps,
        "v_output": output,
        "v_response": response,
        "v_error": error,
        "v_failed_step": failed_step,
    }
    if retry_in is not None:
        values.update(v_status=RunStatus.queued, v_at=utcnow() + retry_in)
    else:
        values.update(v_status=status, v_at=utcnow())
    statement = _REQUEUE if retry_in is not None else _FINISH
    return session.connection().execute(statement, values).rowcount == 1


def _finish_statement(*, retry: bool) -> Any:
    """The UPDATE that stores an attempt's outcome, if the run is still that attempt's.

    Built once: Core on the connection, every value a parameter (building the statement
    for each run, and the ORM's bulk update, cost more than executing it).
    """
    table = Run.__table__
    return (
        update(table)
        .where(
            table.c.id == bindparam("run_id"),
            table.c.status == RunStatus.running,
            table.c.attempt == bindparam("run_attempt"),
        )
        .values(
            {
                "steps": bindparam("v_steps"),
                "output": bindparam("v_output"),
                "response": bindparam("v_response"),
                "error": bindparam("v_error"),
                "failed_step": bindparam("v_failed_step"),
                "status": bindparam("v_status"),
                "deadline_at": None,
                ("next_attempt_at" if retry else "finished_at"): bindparam("v_at"),
            }
        )
    )


_FINISH = _finish_statement(retry=False)
_REQUEUE = _finish_statement(retry=True)


def retry_run(session: Session, run_id: str) -> Run:
    """Queue a finished run again now (a new attempt on the same workflow version)."""
    run = get_run(session, run_id)
    if run.status not in FINISHED:
        raise Conflict(f"run {run_id} is {run.status}; only finished runs can be retried")
    run.status = RunStatus.queued
    run.next_attempt_at = utcnow()
    run.finished_at = None
    run.error = None
    run.failed_step = None
    return run


def waiting_runs(session: Session, *, grace: int) -> int:
    """How many queued runs have been due for at least ``grace`` seconds (at most 500)."""
    cutoff = utcnow() - timedelta(seconds=grace)
    due = (
        select(Run.id)
        .where(Run.status == RunStatus.queued, Run.next_attempt_at <= cutoff)
        .limit(SWEEP_BATCH)
    )
    return session.scalar(select(func.count()).select_from(due.subquery())) or 0


def release_stuck(session: Session, *, max_attempts: int) -> list[tuple[str, int]]:
    """Queue again the runs ``running`` past their deadline (their worker died).

    Runs that used up their attempts fail instead. Returns the re-queued runs.
    """
    now = utcnow()
    stuck = session.execute(
        select(Run.id, Run.attempt)
        .where(Run.status == RunStatus.running, Run.deadline_at < now)
        .limit(SWEEP_BATCH)
    ).all()
    requeued = []
    for run_id, attempt in stuck:
        lost = update(Run).where(
            Run.id == run_id, Run.status == RunStatus.running, Run.attempt == attempt
        )
        note = f"attempt {attempt} did not finish before its deadline (worker lost)"
        if attempt >= max_attempts:
            session.execute(
                lost.values(status=RunStatus.failed, finished_at=now, deadline_at=None, error=note)
            )
            continue
        changed = session.execute(
            lost.values(status=RunStatus.queued, next_attempt_at=now, deadline_at=None, error=note)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            requeued.append((run_id, attempt + 1))
    return requeued
