"""Growth: ingest and end-to-end rates on an empty database and on one with N stored rows.

One stack, measured twice the same way: ingest (``ingest.measure``, ihook only: wrk
posts signed webhooks to ``/hooks/{key}`` with no worker running) and the e2e drain
(``e2e.drain``: a batch posted, then drained by 2 workers). Between the two, N events
and N finished runs (N = 10,000 quick, 100,000 full) are bulk-inserted straight into
the ``events`` and ``runs`` tables with SQLAlchemy Core, while the API keeps running:
the LMS endpoint's and workflow's ids, distinct ``webhook-id`` dedupe keys, runs
``succeeded``, ``received_at`` spread over the past 30 days; their headers, step logs
and outputs are copied from a real run of the first measurement (on SQLite the WAL is
then checkpointed into the database file). The baseline of each rate is the same rate
on the empty database; the target is a ratio of at least 0.9.

The ingest load leaves its runs queued (no worker runs meanwhile). After its checks
they are marked ``skipped`` and the run queue is emptied, so the drain that follows
times its own batch only.

Checks: those of ingest (every 202 has its event and run, none doubled) and of the e2e
drain (every accepted webhook received once, its run succeeded on attempt 1), for each
measurement.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from rq import Queue
from sqlalchemy import Engine, func, insert, select, update

from bench import lms, observe
from bench.context import API_WORKERS, Context, Outcome, Row
from bench.payloads import completion
from bench.scenarios import e2e, ingest
from bench.stack import Api, Stack
from ihook.ids import new_id
from ihook.models import Event, Run, utcnow

NAME = "growth"
TARGET = ">= 0.9"
"""Rates at N stored rows within 10 % of the empty database's."""
SPREAD = timedelta(days=30)
"""The seeded events' ``received_at`` run over this much of the past."""
INSERT_CHUNK = 2000
"""Rows per insert transaction (the API and the scheduler keep writing meanwhile)."""
WORKERS = 2
"""Workers of the drain."""


def run(ctx: Context) -> Outcome:
    out = Outcome()
    seed_count = ctx.options.size(10_000, 100_000)
    batch = ctx.options.size(200, 3000)
    seconds = 3.0 if ctx.options.quick and not ctx.options.duration else ctx.options.seconds()
    rounds = 1 if ctx.options.quick else 2
    with ctx.stack() as stack:
        api = stack.start_api(API_WORKERS)
        setup = lms.create(stack, api)
        if ctx.options.scheduler:
            stack.start_scheduler()
        db = observe.engine(stack)
        phases = {"empty": _phase(ctx, out, stack, api, setup, db, "empty", batch, seconds, rounds)}
        seeded = seed(db, setup, seed_count)
        ctx.log(
            f"growth: {seed_count} events and runs seeded in {seeded['seconds']} s "
            f"({seeded['events_total']} events, {seeded['runs_total']} runs stored)"
        )
        phases["grown"] = _phase(ctx, out, stack, api, setup, db, "grown", batch, seconds, rounds)
        db.dispose()

    empty, grown = phases["empty"], phases["grown"]
    stored = f"{seeded['events_total']:,} events + {seeded['runs_total']:,} runs stored"
    baseline = "same stack, empty database"
    note = f"{seed_count:,} of each seeded; {stored}"
    out.rows += [
        Row.versus(
            NAME,
            f"ingest at {seed_count:,} seeded rows",
            "req/s",
            grown["ingest_rate"],
            empty["ingest_rate"],
            baseline,
            TARGET,
            note,
        ),
        Row.versus(
            NAME,
            f"e2e {WORKERS} workers at {seed_count:,} seeded rows",
            "runs/s",
            grown["e2e_rate"],
            empty["e2e_rate"],
            baseline,
            TARGET,
            note,
        ),
    ]
    out.metrics = {
        "seeded": seed_count,
        "ingest_ratio": out.rows[0].ratio,
        "e2e_ratio": out.rows[1].ratio,
        "ingest_rate_empty": empty["ingest_rate"],
        "ingest_rate_grown": grown["ingest_rate"],
        "e2e_rate_empty": empty["e2e_rate"],
        "e2e_rate_grown": grown["e2e_rate"],
        "seed": seeded,
        "phases": phases,
    }
    return out


def _phase(
    ctx: Context,
    out: Outcome,
    stack: Stack,
    api: Api,
    setup: lms.Lms,
    db: Engine,
    phase: str,
    batch: int,
    seconds: float,
    rounds: int,
) -> dict[str, Any]:
    """Ingest, then the e2e drain, on the database as it is now."""
    name = f"growth {phase}"
    before = ingest.stored(db, stack, setup)
    targets = {"ihook": api.url + setup.path}
    warm, results = ingest.measure(ctx, stack, setup, targets, rounds, seconds, prefix=f"{phase}-")
    ingest.count_checks(out, stack, setup, warm, results, before=before, name=f"{name} ingest")
    rates = [r.rate for r in results["ihook"]]
    ingest_rate = round(sum(rates) / len(rates), 2)
    retired = retire_backlog(db, stack)
    ctx.log(f"{name}: ingest {ingest_rate} req/s; {retired} queued runs of its load retired")
    drained = e2e.drain(
        ctx, out, stack, api, setup, db, WORKERS, batch, prefix=f"{phase}-", name=name
    )
    return {
        "ingest_rate": ingest_rate,
        "ingest_p99_ms": max(r.p99_ms for r in results["ihook"]),
        "ingest_rounds": [r.to_dict() for r in results["ihook"]],
        "ingest_runs_retired": retired,
        "e2e_rate": drained["rate"],
        "drain": drained,
    }


def retire_backlog(db: Engine, stack: Stack) -> int:
    """Mark every queued run ``skipped`` and empty the run queue; how many were marked.

    Called with no worker running, once ingest's checks are done: those runs are its
    load's, and the drain that follows must time its own batch only. The database goes
    first, so the sweeper never sees a queued run whose job is gone.
    """
    now = utcnow()
    with db.begin() as conn:
        count = conn.execute(
            update(Run)
            .where(Run.status == "queued")
            .values(status="skipped", finished_at=now, error="bench: ingest load, not run")
        ).rowcount
    Queue(ingest.QUEUE_KEY.removeprefix("rq:queue:"), connection=stack.redis()).empty()
    return count


def seed(db: Engine, setup: lms.Lms, count: int) -> dict[str, Any]:
    """Insert ``count`` events of the LMS endpoint and one finished run of each.

    The shapes (event type, source and headers; the run's version, step log and output)
    are copied from the newest succeeded run of the workflow, so the rows look like the
    ones ihook writes.
    """
    with db.connect() as conn:
        template = conn.execute(
            select(Event.type, Event.source, Event.headers)
            .add_columns(Run.workflow_version, Run.steps, Run.output)
            .join(Run, Run.event_id == Event.id)
            .where(Run.workflow_id == setup.workflow_id, Run.status == "succeeded")
            .order_by(Run.finished_at.desc())
            .limit(1)
        ).first()
    # Without a succeeded run (the first drain failed its checks), plain shapes will do.
    event_type, source, headers, version, steps, output = template or (
        "webhook.received",
        "endpoint:lms",
        {"content-type": "application/json"},
        1,
        [],
        None,
    )
    now = utcnow()
    start = now - SPREAD
    step = SPREAD / count
    began = time.perf_counter()
    for first in range(0, count, INSERT_CHUNK):
        events, runs = [], []
        for n in range(first, min(first + INSERT_CHUNK, count)):
            received = start + step * n
            key = f"seed-{n}"
            event_id = _id("evt", received)
            events.append(
                {
                    "id": event_id,
                    "type": event_type,
                    "source": source,
                    "endpoint_id": setup.endpoint_id,
                    "data": completion(key),
                    "headers": {**headers, "webhook-id": key},
                    "dedupe_key": key,
                    "environment": "live",
                    "received_at": received,
                }
            )
            started = received + timedelta(milliseconds=30)
            runs.append(
                {
                    "id": _id("run", received),
                    "workflow_id": setup.workflow_id,
                    "workflow_version": version,
                    "event_id": event_id,
                    "status": "succeeded",
                    "attempt": 1,
                    "created_at": received,
                    "next_attempt_at": received,
                    "started_at": started,
                    "finished_at": started + timedelta(milliseconds=25),
                    "deadline_at": None,
                    "error": None,
                    "failed_step": None,
                    "output": output,
                    "response": None,
                    "steps": steps,
                }
            )
        with db.begin() as conn:
            conn.execute(insert(Event), events)
            conn.execute(insert(Run), runs)
    seconds = time.perf_counter() - began
    checkpoint = None
    if db.dialect.name == "sqlite":
        # A database that grew over 30 days holds its rows in the file, not in a WAL
        # full of fresh pages that the next writer would have to copy back.
        with db.connect() as conn:
            checkpoint = list(conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one())
    with db.connect() as conn:
        events_total = conn.scalar(select(func.count()).select_from(Event)) or 0
        runs_total = conn.scalar(select(func.count()).select_from(Run)) or 0
    return {
        "count": count,
        "seconds": round(seconds, 1),
        "rows_per_second": round(2 * count / seconds),
        "wal_checkpoint": checkpoint,
        "events_total": events_total,
        "runs_total": runs_total,
    }


def _id(prefix: str, at: datetime) -> str:
    """An id as ihook makes it, for the time ``at`` (ids sort by time)."""
    return new_id(prefix, at.timestamp())
