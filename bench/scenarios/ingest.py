"""Ingest: signed webhooks to ``/hooks/{key}`` against the bare Flask + HMAC + LPUSH endpoint.

Beside them, the "committed" baseline: the bare endpoint that also commits each body to
a SQLite file before it answers (``bench.bare_app``), the floor of any endpoint that
keeps DESIGN.md §4's promise. All three are served by gunicorn with the same settings
(``ihook api``'s command line, two sync workers) and loaded the same way:
``connections`` requests in flight for the duration, each request a distinct ~1 KB
signed callback. The endpoint is bound to the e2e workflow, so each 202 commits an
event and a queued run and enqueues one RQ job; no worker runs meanwhile. Checks:
every 202 has its event (and its run and job), no request was answered 200 duplicate,
the bare endpoint pushed one body per 202, and the committed one stored and pushed one
per 202.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, distinct, func, select

from bench import baselines, lms
from bench.bare_app import COMMITTED_LIST, TABLE
from bench.bare_app import LIST as BARE_LIST
from bench.context import API_WORKERS, Context, Outcome, Row, meets, ratio
from bench.load import LoadResult, run_load
from bench.payloads import signed_batch, write_requests
from bench.stack import Stack
from ihook.models import Event, Run

NAME = "ingest"
CONNECTIONS = 32
"""Requests in flight (the issue's wrk setting)."""
WARMUP_SECONDS = 2.0
MAX_RATE = 3000
"""Requests per second the warm-up's request files are sized for; more would repeat ids."""
P99_TARGET_MS = 50.0
QUEUE_KEY = "rq:queue:ihook"
"""The RQ list of ihook's run queue."""


def run(ctx: Context) -> Outcome:
    out = Outcome()
    seconds = ctx.options.seconds()
    rounds = 1 if ctx.options.quick else 2
    with ctx.stack() as stack:
        api = stack.start_api(API_WORKERS)
        setup = lms.create(stack, api)
        bare = baselines.start_bare(stack, setup.secret, API_WORKERS)
        commit_db = stack.root / "committed.db"
        committed = baselines.start_bare(stack, setup.secret, API_WORKERS, commit_db)
        ctx.log(f"ingest: ihook api and both bare endpoints up ({API_WORKERS} sync workers each)")
        targets = {
            "bare": bare.url + setup.path,
            "committed": committed.url + setup.path,
            "ihook": api.url + setup.path,
        }
        warm, results = measure(ctx, stack, setup, targets, rounds, seconds)
        count_checks(out, stack, setup, warm, results)
        _committed_checks(out, stack, commit_db, [warm["committed"], *results["committed"]])

    ihook_rate = _mean([r.rate for r in results["ihook"]])
    bare_rate = _mean([r.rate for r in results["bare"]])
    ihook_p99 = max(r.p99_ms for r in results["ihook"])
    bare_p99 = max(r.p99_ms for r in results["bare"])
    r = ratio(ihook_rate, bare_rate)
    generator = results["ihook"][0].generator
    note = f"{generator}, {CONNECTIONS} connections, {seconds:.0f} s x {rounds}"
    bare_name = "bare Flask+HMAC+LPUSH"
    p50 = _mean([x.p50_ms for x in results["ihook"]])
    bare_p50 = _mean([x.p50_ms for x in results["bare"]])
    committed_rate = _mean([r.rate for r in results["committed"]])
    committed_name = "bare + SQLite commit per request"
    out.rows += [
        Row.versus(
            NAME, "signed webhooks", "req/s", ihook_rate, bare_rate, bare_name, ">= 0.75", note
        ),
        Row.versus(NAME, "p50 latency", "ms", p50, bare_p50, bare_name),
        Row(
            NAME,
            "p99 latency",
            "ms",
            ihook_p99,
            bare_p99,
            bare_name,
            f"<= {P99_TARGET_MS:g} ms",
            None,
            meets(ihook_p99, f"<= {P99_TARGET_MS:g}"),
            "the target is on ihook's own p99",
        ),
        Row.versus(
            NAME,
            "committed baseline vs bare",
            "req/s",
            committed_rate,
            bare_rate,
            bare_name,
            note="the floor of an endpoint that commits before it answers",
        ),
        Row.versus(
            NAME,
            "signed webhooks vs committed",
            "req/s",
            ihook_rate,
            committed_rate,
            committed_name,
        ),
    ]
    out.metrics = {
        "generator": generator,
        "connections": CONNECTIONS,
        "ihook_rate": ihook_rate,
        "bare_rate": bare_rate,
        "committed_rate": committed_rate,
        "ratio": r,
        "committed_ratio": ratio(committed_rate, bare_rate),
        "ihook_p50_ms": p50,
        "ihook_p99_ms": ihook_p99,
        "bare_p99_ms": bare_p99,
        "rounds": {k: [x.to_dict() for x in v] for k, v in results.items()},
        "warmup": {k: v.to_dict() for k, v in warm.items()},
    }
    return out


def measure(
    ctx: Context,
    stack: Stack,
    setup: lms.Lms,
    targets: dict[str, str],
    rounds: int,
    seconds: float,
    prefix: str = "",
) -> tuple[dict[str, LoadResult], dict[str, list[LoadResult]]]:
    """Warm each target up, then load them in turn for ``rounds`` rounds.

    Each load run sends requests no other run sent (fresh ids, each starting with
    ``prefix``: give another one to measure the same stack again). Reusable on any stack
    (the growth scenario measures a full database the same way).
    """
    results: dict[str, list[LoadResult]] = {name: [] for name in targets}
    warm: dict[str, LoadResult] = {}
    files = 0
    max_rate = MAX_RATE

    def load(target: str, url: str, duration: float) -> LoadResult:
        nonlocal files
        files += 1
        count = int(max_rate * duration) + 1000
        batch = signed_batch(setup.secret, f"{prefix}{target}{files}-", count)
        path = write_requests(stack.root / f"requests-{files}.txt", batch)
        generator = ctx.options.generator
        try:
            return run_load(
                url, path, connections=CONNECTIONS, duration=duration, generator=generator
            )
        finally:
            path.unlink()

    for target, url in targets.items():
        warm[target] = load(target, url, WARMUP_SECONDS)
    # Enough distinct requests for twice the fastest warm-up rate (a repeat would show up
    # as a 200 duplicate from ihook and fail a check).
    max_rate = 2 * max(w.rate for w in warm.values())
    for n in range(rounds):
        for target, url in targets.items():
            result = load(target, url, seconds)
            results[target].append(result)
            ctx.log(
                f"ingest: {target} round {n + 1}: {result.rate:.0f} req/s, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"statuses {result.statuses}, errors {result.errors}"
            )
    return warm, results


def count_checks(
    out: Outcome,
    stack: Stack,
    setup: lms.Lms,
    warm: dict[str, LoadResult],
    results: dict[str, list[LoadResult]],
    *,
    before: tuple[int, ...] | None = None,
    name: str = "ihook",
) -> None:
    """Every 202 has its event, run and job; none is doubled.

    wrk stops reading answers when its time is up, so up to ``CONNECTIONS`` requests of
    each load run were handled without their answer being counted: the stored counts may
    exceed the 202s by that much, never fall short of them. ``before``: ``stored(...)``
    taken before ``measure``, when the stack already held events and runs (only what was
    added since is counted). The bare checks run when ``bare`` was a target.
    """
    ihook_runs = [warm["ihook"], *results["ihook"]]
    bare_runs = [warm["bare"], *results["bare"]] if "bare" in results else []
    cut_off = CONNECTIONS * len(ihook_runs)
    accepted = sum(r.count(202) for r in ihook_runs)
    duplicates = sum(r.count(200) for r in ihook_runs)
    other = sum(r.requests - r.count(202) - r.count(200) for r in ihook_runs)
    engine = create_engine(stack.database_url)
    counts = _settled(lambda: stored(engine, stack, setup))
    engine.dispose()
    base = before or (0,) * len(counts)
    events, keys, runs, jobs, pushed = (now - then for now, then in zip(counts, base, strict=True))
    bare_ok = sum(r.count(202) for r in bare_runs)
    lost = max(0, accepted - events) + max(0, bare_ok - pushed)
    doubled = (events - keys) + max(0, runs - events)
    out.lost += lost
    out.doubled += doubled
    out.check(
        accepted <= events <= accepted + cut_off,
        f"{name}: {accepted} answered 202, {events} events stored "
        f"(at most {cut_off} more: answers the load generator stopped waiting for)",
    )
    out.check(keys == events, f"{name}: {events} events, {keys} distinct webhook-ids")
    out.check(runs == events, f"{name}: {events} events, {runs} queued runs")
    _jobs_check(out, stack, name, runs, jobs, counts[3])
    out.check(duplicates == 0, f"{name}: {duplicates} answered 200 duplicate (ids repeated)")
    out.check(other == 0, f"{name}: {other} answered neither 202 nor 200")
    if bare_runs:
        out.check(
            bare_ok <= pushed <= bare_ok + cut_off,
            f"bare: {bare_ok} answered 202, {pushed} pushed",
        )
    errors = sum(r.errors for r in ihook_runs + bare_runs)
    lead = "" if name == "ihook" else f"{name}: "
    out.check(errors == 0, f"{lead}{errors} connection errors or timeouts")


def _committed_checks(out: Outcome, stack: Stack, db: Path, runs: list[LoadResult]) -> None:
    """The committed baseline stored and pushed one body per 202."""
    ok = sum(r.count(202) for r in runs)
    cut_off = CONNECTIONS * len(runs)
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    pushed = stack.redis().llen(COMMITTED_LIST)
    out.lost += max(0, ok - rows)
    out.check(
        ok <= rows <= ok + cut_off and ok <= pushed <= ok + cut_off,
        f"committed: {ok} answered 202, {rows} stored, {pushed} pushed",
    )
    errors = sum(r.errors for r in runs)
    out.check(errors == 0, f"committed: {errors} connection errors or timeouts")


def _jobs_check(out: Outcome, stack: Stack, name: str, runs: int, jobs: int, waiting: int) -> None:
    """The queued runs will reach a worker: a drain job waits in the queue for them all."""
    out.check(
        waiting >= 1 or runs == 0,
        f"{name}: {runs} queued runs, {waiting} drain job(s) waiting to wake a worker",
    )


def stored(engine: Engine, stack: Stack, setup: lms.Lms) -> tuple[int, ...]:
    """Events, their distinct dedupe keys, runs, RQ jobs waiting, bare bodies pushed."""
    with engine.connect() as conn:
        mine = Event.endpoint_id == setup.endpoint_id
        events = conn.scalar(select(func.count()).select_from(Event).where(mine)) or 0
        keys = conn.scalar(select(func.count(distinct(Event.dedupe_key))).where(mine)) or 0
        runs = conn.scalar(select(func.count()).select_from(Run)) or 0
    redis = stack.redis()
    return events, keys, runs, redis.llen(QUEUE_KEY), redis.llen(BARE_LIST)


def _settled(read: Callable[[], tuple[int, ...]], timeout: float = 15.0) -> tuple[int, ...]:
    """``read()`` once two reads 0.5 s apart agree (requests still in flight have ended)."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now == last:
            return now
        last = now
    return last


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0
