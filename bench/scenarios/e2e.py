"""End to end: webhook → workflow (filter → transform → upsert → send) → the receiver.

Throughput (the drain): a batch of signed webhooks is accepted through ``/hooks/{key}``
while no worker runs; then 1 (or 2) ``ihook worker`` processes start, and runs/s is
the batch over the time from the first run's start to the last delivery at the
receiver. Baselines, on the same stack: the same stored workflow called in a plain loop
in one process with a worker's resources (no queue, no API), and stock RQ
SimpleWorkers draining trivial jobs (the queue alone).

Latency (live): with 2 workers running, webhooks are posted at a steady rate well
below capacity; receipt-to-delivery is the receiver's arrival time minus the event's
``received_at``, per webhook.

Checks, per batch: each accepted webhook has exactly one event and one run, the run
succeeded on its first attempt, and the receiver got its ``bench_id`` exactly once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from bench import baselines, lms, observe
from bench.context import API_WORKERS, Context, Outcome, Row, ratio
from bench.load import percentile, post_batch
from bench.payloads import signed_batch
from bench.stack import Api, Stack

NAME = "e2e"
POST_CONCURRENCY = 8
"""Requests in flight while a batch is posted."""
WORKER_COUNTS = (1, 2)
WARMUP_RUNS = 10
"""Webhooks the live phase sends, and does not count, before it measures."""


def run(ctx: Context) -> Outcome:
    out = Outcome()
    batch_size = ctx.options.size(250, 3000)
    live_count, live_rate = ctx.options.size(60, 400), 20
    with ctx.stack() as stack:
        api = stack.start_api(API_WORKERS)
        setup = lms.create(stack, api)
        if ctx.options.scheduler:
            stack.start_scheduler()
        db = observe.engine(stack)
        drains = {w: drain(ctx, out, stack, api, setup, db, w, batch_size) for w in WORKER_COUNTS}
        live = _live(ctx, out, stack, api, setup, db, live_count, live_rate)
        plain = _plain(ctx, out, stack, setup, batch_size)
        rq = {}
        for w in WORKER_COUNTS:
            rq[w] = baselines.rq_drain(stack, ctx.options.size(400, 5000), w)
            ctx.log(f"e2e: stock RQ, {w} SimpleWorker(s): {rq[w]['rate']} trivial jobs/s")
            out.lost += rq[w]["lost"]
            out.check(rq[w]["lost"] == 0, f"stock RQ {w}: {rq[w]['finished']} of {rq[w]['jobs']}")
        db.dispose()

    rate = {w: drains[w]["rate"] for w in WORKER_COUNTS}
    r_plain = ratio(rate[2], plain["rate"])
    r_rq = ratio(rate[2], rq[2]["rate"])
    loop, noop = "plain loop, 1 process", "RQ SimpleWorker x{}, no-op jobs"
    live_note = f"2 workers, {live['posted']} webhooks at {live_rate}/s"
    out.rows += [
        Row.versus(NAME, "1 worker", "runs/s", rate[1], plain["rate"], loop),
        Row.versus(NAME, "2 workers", "runs/s", rate[2], plain["rate"], loop, ">= 0.5"),
        Row.versus(NAME, "1 worker vs stock RQ", "runs/s", rate[1], rq[1]["rate"], noop.format(1)),
        Row.versus(
            NAME, "2 workers vs stock RQ", "runs/s", rate[2], rq[2]["rate"], noop.format(2), ">= 5"
        ),
        Row(NAME, "receipt→delivery p50", "ms", live["p50_ms"], note=live_note),
        Row(NAME, "receipt→delivery p99", "ms", live["p99_ms"], note=live_note),
    ]
    out.metrics = {
        "batch": batch_size,
        "rate_1_worker": rate[1],
        "rate_2_workers": rate[2],
        "plain_loop_rate": plain["rate"],
        "ratio": r_plain,
        "rq_rate_1_worker": rq[1]["rate"],
        "rq_rate_2_workers": rq[2]["rate"],
        "rq_ratio": r_rq,
        "latency_p50_ms": live["p50_ms"],
        "latency_p99_ms": live["p99_ms"],
        "drains": drains,
        "live": live,
        "plain_loop": plain,
        "stock_rq": rq,
    }
    return out


def _post(api: Api, setup: lms.Lms, prefix: str, count: int, **kw: Any) -> set[str]:
    """Post ``count`` signed webhooks; the ids answered 202."""
    batch = signed_batch(setup.secret, prefix, count)
    items = [(s.msg_id, setup.path, s.headers(), s.body) for s in batch]
    posted = post_batch(api.url, items, concurrency=POST_CONCURRENCY, **kw)
    return {p.key for p in posted if p.status == 202}


def drain(
    ctx: Context,
    out: Outcome,
    stack: Stack,
    api: Api,
    setup: lms.Lms,
    db: Engine,
    workers: int,
    count: int,
    *,
    prefix: str = "",
    name: str = "e2e",
) -> dict[str, Any]:
    """Post ``count`` webhooks with no worker running, then drain them with ``workers``.

    Reusable on any stack (the growth scenario drains on a full database the same way):
    ``prefix`` makes the batch's ids unique on that stack, ``name`` heads its log lines
    and checks. The stack's workers must be stopped when it is called; it stops its own.
    """
    prefix = f"{prefix}drain{workers}-"
    accepted = _post(api, setup, prefix, count)
    ctx.log(f"{name}: {len(accepted)} of {count} webhooks accepted; starting {workers} worker(s)")
    procs = stack.start_workers(workers)
    stats = observe.wait_received(stack, prefix, len(accepted), cap=max(60.0, count / 5))
    runs = observe.wait_runs_finished(db, accepted)
    stack.stop(*procs)
    got = observe.arrivals(stack, prefix)
    started = [r.started_at.timestamp() for r in runs if r.started_at]
    last = max((t for t, _ in got.values()), default=None)
    seconds = (last - min(started)) if started and last else None
    result = {
        "workers": workers,
        "posted": count,
        "accepted": len(accepted),
        "delivered": stats["distinct"],
        "seconds": round(seconds, 3) if seconds else None,
        "rate": round(len(got) / seconds, 1) if seconds else None,
    }
    label = f"drain {workers}" if name == "e2e" else f"{name} drain {workers}"
    _account(out, db, label, accepted, got, runs, result)
    ctx.log(
        f"{name}: {workers} worker(s): {result['rate']} runs/s ({result['delivered']} delivered)"
    )
    return result


def _live(
    ctx: Context,
    out: Outcome,
    stack: Stack,
    api: Api,
    setup: lms.Lms,
    db: Engine,
    count: int,
    rate: float,
) -> dict[str, Any]:
    prefix = "live-"
    procs = stack.start_workers(2)
    # The first runs of a fresh worker pay for lazy imports and cold caches; latency is
    # measured on warm workers.
    warm = _post(api, setup, "warm-", WARMUP_RUNS)
    observe.wait_received(stack, "warm-", len(warm), cap=30.0)
    accepted = _post(api, setup, prefix, count, rate=rate)
    observe.wait_received(stack, prefix, len(accepted), cap=60.0)
    runs = observe.wait_runs_finished(db, accepted)
    stack.stop(*procs)
    got = observe.arrivals(stack, prefix)
    received = {r.key: r.received_at.timestamp() for r in runs}
    waits = [(got[k][0] - received[k]) * 1000 for k in got if k in received]
    result = {
        "workers": 2,
        "rate": rate,
        "posted": count,
        "accepted": len(accepted),
        "p50_ms": _round(percentile(waits, 50)),
        "p90_ms": _round(percentile(waits, 90)),
        "p99_ms": _round(percentile(waits, 99)),
        "max_ms": _round(max(waits, default=None)),
    }
    _account(out, db, "live", accepted, got, runs, result)
    ctx.log(f"e2e: live at {rate}/s: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return result


def _plain(ctx: Context, out: Outcome, stack: Stack, setup: lms.Lms, count: int) -> dict[str, Any]:
    prefix = "plain-"
    result = baselines.plain_loop(
        stack, setup.workflow_id, signed_batch(setup.secret, prefix, count)
    )
    stats = observe.wait_received(stack, prefix, count, cap=10.0)
    lost, doubled = count - stats["distinct"], stats["doubled"]
    out.lost += lost
    out.doubled += doubled
    ok = result["statuses"] == {"succeeded": count}
    out.check(
        ok and not lost and not doubled,
        f"plain loop: {result['statuses']}, {stats['distinct']} received, {doubled} twice",
    )
    ctx.log(f"e2e: plain loop: {result['rate']} runs/s")
    return result


def _account(
    out: Outcome,
    db: Engine,
    name: str,
    accepted: set[str],
    got: dict[str, tuple[float, int]],
    runs: list[observe.RunRow],
    result: dict[str, Any],
) -> None:
    """Lost: accepted, never received. Doubled: received twice, or two events or runs."""
    events = observe.events_of(db, accepted)
    runs_per_key: dict[str, int] = {}
    for r in runs:
        runs_per_key[r.key] = runs_per_key.get(r.key, 0) + 1
    lost = len(accepted - got.keys())
    doubled = sum(1 for _, n in got.values() if n > 1)
    doubled += sum(1 for n in events.values() if n > 1)
    doubled += sum(1 for n in runs_per_key.values() if n > 1)
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    retried = sum(1 for r in runs if r.attempt > 1)
    strays = len(got.keys() - accepted)
    out.lost += lost
    out.doubled += doubled
    result.update(lost=lost, doubled=doubled, runs=statuses, retried=retried, strays=strays)
    out.check(
        not lost and not doubled and statuses == {"succeeded": len(accepted)},
        f"{name}: {len(accepted)} accepted, {len(got)} received, {lost} lost, "
        f"{doubled} doubled, runs {statuses}",
    )
    out.check(retried == 0, f"{name}: {retried} run(s) needed more than one attempt")
    out.check(strays == 0, f"{name}: {strays} received that were not answered 202")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
