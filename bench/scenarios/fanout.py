"""Fan-out: outgoing webhooks, 1 event × 200 subscriptions and N events × 1 subscription.

Events are published through ``POST /api/v1/events`` while no worker runs, so each
delivery is stored ``pending`` with its job queued; then ``ihook worker`` processes
start and deliveries/s is the deliveries over the time from the first attempt's start
to the last arrival at the receiver. The baseline is the fastest plain Python client
posting signed ~1 KB webhooks to the same receiver in the same run (several clients
tried, 1 and 2 threads): one worker against one thread, two against two.

Checks: each published event has one delivery per subscription, each delivery
succeeded on its first attempt, and the receiver got each ``webhook-id`` exactly once.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine

from bench import baselines, observe
from bench.context import API_WORKERS, Context, Outcome, Row, ratio
from bench.load import post_batch
from bench.stack import ADMIN_TOKEN, Api, Stack

NAME = "fanout"
WIDE = 200
"""Subscriptions of the one wide event."""
RETRY_SCHEDULE = [0, 1, 2]
"""Short, so a failed attempt would show up within the run (none is expected)."""
RAW_THREADS = (1, 2)
PUBLISH_CONCURRENCY = 8


def run(ctx: Context) -> Outcome:
    out = Outcome()
    deep = ctx.options.size(400, 20000)
    raw_count = ctx.options.size(1500, 10000)
    with ctx.stack() as stack:
        api = stack.start_api(API_WORKERS)
        if ctx.options.scheduler:
            stack.start_scheduler()
        db = observe.engine(stack)
        raws = [
            baselines.raw_client(stack, client, threads, raw_count)
            for threads in RAW_THREADS
            for client in baselines.RAW_CLIENTS
        ]
        for raw in raws:
            ctx.log(f"fanout: raw {raw['client']} x{raw['threads']}: {raw['rate']} req/s")
            out.lost += raw["lost"]
            out.doubled += raw["doubled"]
            out.check(
                not raw["lost"] and not raw["doubled"] and not raw["failed"],
                f"raw {raw['client']} x{raw['threads']}: {raw['requests']} sent, "
                f"{raw['lost']} lost, {raw['doubled']} doubled, {raw['failed']} not 200",
            )
        wide_subs = [_subscribe(stack, api, f"wide-{n}", "bench.wide") for n in range(WIDE)]
        deep_subs = {w: _subscribe(stack, api, f"deep-{w}", f"bench.deep{w}") for w in (1, 2)}
        ctx.log(f"fanout: {WIDE + 2} subscriptions created")

        _publish(api, "bench.wide", 1)
        wide = _drain(ctx, out, stack, db, "1 event x 200 subscriptions", wide_subs, WIDE, 2)
        deeps = {}
        for w in (1, 2):
            published = _publish(api, f"bench.deep{w}", deep)
            ctx.log(f"fanout: {published} of {deep} events published")
            label = f"{deep} events x 1 subscription"
            deeps[w] = _drain(ctx, out, stack, db, label, [deep_subs[w]], published, w)
        db.dispose()

    fastest = {
        t: max((r for r in raws if r["threads"] == t), key=lambda r: r["rate"]) for t in RAW_THREADS
    }
    raw1, raw2 = fastest[1]["rate"], fastest[2]["rate"]
    r_deep1 = ratio(deeps[1]["rate"], raw1)
    name1 = f"{fastest[1]['client']} x1"
    name2 = f"{fastest[2]['client']} x2"
    unit = "deliveries/s"
    out.rows += [
        Row.versus(
            NAME, f"{WIDE} subscriptions x 1 event, 2 workers", unit, wide["rate"], raw2, name2
        ),
        Row.versus(
            NAME,
            f"1 subscription x {deep} events, 1 worker",
            unit,
            deeps[1]["rate"],
            raw1,
            name1,
            ">= 0.5",
            "per worker",
        ),
        Row.versus(
            NAME, f"1 subscription x {deep} events, 2 workers", unit, deeps[2]["rate"], raw2, name2
        ),
    ]
    out.rows += [
        Row(
            NAME,
            f"receiver: raw {r['client']} x{r['threads']}",
            "req/s",
            None,
            r["rate"],
            "capacity check",
        )
        for r in raws
    ]
    out.metrics = {
        "rate_per_worker": deeps[1]["rate"],
        "rate_2_workers": deeps[2]["rate"],
        "wide_rate": wide["rate"],
        "raw_rate": raw1,
        "raw_rate_2_threads": raw2,
        "ratio": r_deep1,
        "wide": wide,
        "deep": deeps,
        "raw_clients": raws,
    }
    return out


def _subscribe(stack: Stack, api: Api, name: str, event_type: str) -> str:
    body = {
        "name": name,
        "url": f"{stack.receiver_url}/{name}",
        "event_types": [event_type],
        "retry_schedule": RETRY_SCHEDULE,
    }
    return stack.api_call(api, "POST", "/api/v1/subscriptions", body)["id"]


def _publish(api: Api, event_type: str, count: int) -> int:
    """Publish ``count`` ~1 KB events of ``event_type``; how many were answered 202."""
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    items = []
    for n in range(count):
        data = {"member": f"m-{n}", "course": "CS101", "status": "completed", "pad": "x" * 800}
        body = json.dumps({"type": event_type, "data": data, "id": f"{event_type}-{n}"})
        items.append((f"{event_type}-{n}", "/api/v1/events", headers, body.encode()))
    posted = post_batch(api.url, items, concurrency=PUBLISH_CONCURRENCY)
    return sum(1 for p in posted if p.status == 202)


def _drain(
    ctx: Context,
    out: Outcome,
    stack: Stack,
    db: Engine,
    label: str,
    subscriptions: list[str],
    expected: int,
    workers: int,
) -> dict[str, Any]:
    stack.receiver("reset", "POST")
    procs = stack.start_workers(workers)
    stats = observe.wait_received(stack, "dlv_", expected, cap=max(60.0, expected / 5))
    rows = observe.wait_deliveries_finished(db, subscriptions)
    stack.stop(*procs)
    got = observe.arrivals(stack, "dlv_")
    last = max((t for t, _ in got.values()), default=None)
    first = rows.first_started.timestamp() if rows.first_started else None
    seconds = last - first if last and first else None
    lost = len(rows.ids - got.keys()) + max(0, expected - rows.count)
    doubled = stats["doubled"] + max(0, rows.count - expected)
    strays = len(got.keys() - rows.ids)
    out.lost += lost
    out.doubled += doubled
    name = f"{label}, {workers} worker(s)"
    statuses = dict(rows.statuses)
    out.check(
        not lost and not doubled and statuses == {"succeeded": expected},
        f"{name}: {expected} expected, {rows.count} stored, {len(got)} received, "
        f"{lost} lost, {doubled} doubled, deliveries {statuses}",
    )
    out.check(dict(rows.attempts) == {1: rows.count}, f"{name}: attempts {dict(rows.attempts)}")
    out.check(strays == 0, f"{name}: {strays} received that are not these deliveries")
    result = {
        "workers": workers,
        "expected": expected,
        "delivered": len(got),
        "seconds": round(seconds, 3) if seconds else None,
        "rate": round(len(got) / seconds, 1) if seconds else None,
        "lost": lost,
        "doubled": doubled,
        "statuses": statuses,
    }
    ctx.log(f"fanout: {name}: {result['rate']} deliveries/s")
    return result
