"""Polling and transfer: items/s from a paged source, rows/s of an SQL → HTTP transfer.

Polling: the receiver serves N items (``item-0`` …, about 300 bytes each) in pages of
100 (``GET /source/items?page=P&per_page=100&total=N``). A poller (created disabled, so
only ``poll-now`` polls it; page-number pagination, no cursor) reads it with 1 worker
running. items/s is the items over the time from the poll's ``started_at`` to the
moment its commit (events, seen ids, log row: one transaction) is visible. A second
``poll-now`` reads every page again and must store nothing. Baseline: a plain
``http.client`` keep-alive loop fetching and parsing the same pages.

Transfer: a SQLite table of N rows (a file in the stack's temp dir) behind an ``sql``
connector; a manual workflow whose one ``transfer`` step POSTs them to the receiver
through an ``http`` connector, 100 rows per request. rows/s is the rows over the run's
``started_at`` → ``finished_at``. Baseline: a plain loop reading the same table with
``sqlite3`` (keyset pages of 100) and POSTing the same chunks with ``http.client``
keep-alive.

Checks: events stored == distinct item ids == ids remembered == N, the second poll
stored 0; the receiver counted every row id exactly once (for ihook and the baseline).
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from typing import Any

from sqlalchemy import Engine

from bench import observe
from bench.context import API_WORKERS, Context, Outcome, Row
from bench.stack import Api, Stack

NAME = "polling"
PAGE_SIZE = 100
"""Items per page of the source."""
CHUNK_SIZE = 100
"""Rows per request of the transfer."""
POLLER = "bench-source"
TABLE = "members"
ROW_PADDING = "x" * 150
"""Makes one row about 300 bytes as JSON."""


def run(ctx: Context) -> Outcome:
    out = Outcome()
    items = ctx.options.size(2000, 20000)
    rows = ctx.options.size(2000, 20000)
    with ctx.stack() as stack:
        api = stack.start_api(API_WORKERS)
        if ctx.options.scheduler:
            stack.start_scheduler()
        db = observe.engine(stack)
        workers = stack.start_workers(1)
        ctx.log("polling: ihook api and 1 worker up")
        poll = _poll(ctx, out, stack, api, db, items)
        plain_poll = _poll_baseline(ctx, out, stack, items)
        transfer = _transfer(ctx, out, stack, api, db, rows)
        plain_transfer = _transfer_baseline(ctx, out, stack, rows)
        stack.stop(*workers)
        db.dispose()

    get_loop = "http.client keep-alive GET loop"
    post_loop = "sqlite3 + http.client keep-alive loop"
    pages = f"{PAGE_SIZE} per page, 1 worker"
    out.rows += [
        Row.versus(
            NAME,
            f"poll {items} items, all new",
            "items/s",
            poll["rate"],
            plain_poll["rate"],
            get_loop,
            note=pages,
        ),
        Row.versus(
            NAME,
            f"poll again, {items} items all seen",
            "items/s",
            poll["again_rate"],
            plain_poll["rate"],
            get_loop,
            note=pages,
        ),
        Row.versus(
            NAME,
            f"transfer {rows} rows, sql → http",
            "rows/s",
            transfer["rate"],
            plain_transfer["rate"],
            post_loop,
            note=f"{CHUNK_SIZE} rows per request, 1 worker",
        ),
    ]
    out.metrics = {
        "items": items,
        "rows": rows,
        "poll_rate": poll["rate"],
        "poll_baseline_rate": plain_poll["rate"],
        "poll_ratio": out.rows[0].ratio,
        "transfer_rate": transfer["rate"],
        "transfer_baseline_rate": plain_transfer["rate"],
        "transfer_ratio": out.rows[2].ratio,
        "poll": poll,
        "poll_baseline": plain_poll,
        "transfer": transfer,
        "transfer_baseline": plain_transfer,
    }
    return out


# -- polling ---------------------------------------------------------------------------


def _poll(
    ctx: Context, out: Outcome, stack: Stack, api: Api, db: Engine, items: int
) -> dict[str, Any]:
    pages = items // PAGE_SIZE + 1  # the last page is short or empty
    poller = stack.api_call(
        api,
        "POST",
        "/api/v1/pollers",
        {
            "name": POLLER,
            "enabled": False,  # polled by poll-now only, never by the scheduler
            "request": {
                "url": f"{stack.receiver_url}/source/items",
                "params": {"total": str(items)},
            },
            "interval_seconds": 3600,
            "items": "data",
            "id": "id",
            "pagination": {"page_param": "page", "page_size": PAGE_SIZE, "size_param": "per_page"},
            "max_pages": min(1000, pages + 1),
        },
    )
    cap = max(60.0, items / 50)
    stack.api_call(api, "POST", f"/api/v1/pollers/{poller['id']}/poll-now")
    polls, visible = observe.wait_polls(db, poller["id"], 1, timeout=cap)
    first = polls[0] if polls else None
    seconds = visible - first.started_at.timestamp() if first else None
    stored = observe.polled_events(db, f"poller:{POLLER}", poller["id"])
    added = (
        stored.last_received.timestamp() - first.started_at.timestamp()
        if first and stored.last_received
        else None
    )
    ctx.log(f"polling: first poll {_describe(first)}; committed after {_sec(seconds)} s")

    stack.api_call(api, "POST", f"/api/v1/pollers/{poller['id']}/poll-now")
    polls, visible = observe.wait_polls(db, poller["id"], 2, timeout=cap)
    again = polls[1] if len(polls) > 1 else None
    again_seconds = visible - again.started_at.timestamp() if again else None
    after = observe.polled_events(db, f"poller:{POLLER}", poller["id"])
    ctx.log(f"polling: second poll {_describe(again)}; committed after {_sec(again_seconds)} s")

    expected = [f"item-{n}" for n in range(items)]
    lost = sum(1 for k in expected if k not in after.ids)
    doubled = sum(n - 1 for n in after.ids.values() if n > 1)
    strays = len(after.ids.keys() - set(expected))
    out.lost += lost
    out.doubled += doubled
    ok_first = first is not None and first.status == "succeeded" and first.items_new == items
    out.check(
        ok_first and first is not None and first.items_seen == items,
        f"poll 1: {_describe(first)} (expected {items} seen, {items} new)",
    )
    out.check(
        stored.count == items and len(stored.ids) == items and stored.seen == items,
        f"poll 1: {stored.count} events stored, {len(stored.ids)} distinct item ids, "
        f"{stored.seen} ids remembered (expected {items} each)",
    )
    ok_again = again is not None and again.status == "succeeded" and again.items_new == 0
    out.check(
        ok_again and after.count == items,
        f"poll 2: {_describe(again)}; {after.count} events in all (expected 0 new, {items})",
    )
    out.check(
        not lost and not doubled and not strays,
        f"polls: {lost} items lost, {doubled} stored twice, {strays} not from the source",
    )
    return {
        "items": items,
        "pages": first.pages if first else None,
        "status": first.status if first else None,
        "items_new": first.items_new if first else None,
        "seconds": _sec(seconds),
        "rate": _rate(items, seconds),
        "seconds_to_last_event_added": _sec(added),
        "duration_ms": first.duration_ms if first else None,
        "again_items_new": again.items_new if again else None,
        "again_seconds": _sec(again_seconds),
        "again_rate": _rate(items, again_seconds),
        "lost": lost,
        "doubled": doubled,
    }


def _poll_baseline(ctx: Context, out: Outcome, stack: Stack, items: int) -> dict[str, Any]:
    """The same pages fetched and parsed with one keep-alive ``http.client`` connection."""
    host, port = stack.receiver_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    ids: list[str] = []
    pages = 0
    started = time.perf_counter()
    page = 1
    while True:
        conn.request("GET", f"/source/items?total={items}&page={page}&per_page={PAGE_SIZE}")
        response = conn.getresponse()
        data = json.loads(response.read())["data"]
        pages += 1
        ids += [item["id"] for item in data]
        if len(data) < PAGE_SIZE:
            break
        page += 1
    seconds = time.perf_counter() - started
    conn.close()
    distinct = len(set(ids))
    out.check(
        distinct == len(ids) == items,
        f"plain poll: {len(ids)} items read, {distinct} distinct (expected {items})",
    )
    result = {"items": len(ids), "pages": pages, "seconds": _sec(seconds)}
    result["rate"] = _rate(len(ids), seconds)
    ctx.log(f"polling: plain GET loop: {result['rate']} items/s over {pages} pages")
    return result


# -- transfer --------------------------------------------------------------------------


def seed_table(path: str, rows: int) -> None:
    """A SQLite table of ``rows`` rows, about 300 bytes each, ``bench_id`` ``row-<n>``."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, bench_id TEXT NOT NULL, "
            "external_id TEXT NOT NULL, email TEXT NOT NULL, course TEXT NOT NULL, "
            "score INTEGER NOT NULL, completed_at TEXT NOT NULL, notes TEXT NOT NULL)"
        )
        conn.executemany(
            f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    n,
                    f"row-{n}",
                    f"m-{n}",
                    f"learner{n}@example.org",
                    "CS101",
                    n % 101,
                    "2026-11-20 10:00:00",
                    ROW_PADDING,
                )
                for n in range(rows)
            ),
        )
    conn.close()


def _transfer(
    ctx: Context, out: Outcome, stack: Stack, api: Api, db: Engine, rows: int
) -> dict[str, Any]:
    path = stack.root / "source.db"
    seed_table(str(path), rows)
    connectors = [
        {"name": "source_db", "kind": "sql", "config": {"url": f"sqlite:///{path}"}},
        {
            "name": "sink",
            "kind": "http",
            "config": {"base_url": stack.receiver_url, "allow_private": True},
        },
    ]
    for connector in connectors:
        stack.api_call(api, "POST", "/api/v1/connectors", connector)
    workflow = {
        "name": "bench-transfer",
        "trigger": {"manual": True},
        "steps": [
            {
                "id": "push",
                "type": "transfer",
                "source": {"connector": "source_db", "table": TABLE},
                "target": {"connector": "sink", "path": "/bulk/transfer-", "body": "rows"},
                "chunk_size": CHUNK_SIZE,
            }
        ],
    }
    created = stack.api_call(api, "POST", "/api/v1/workflows", workflow)
    ctx.log(f"polling: {rows} rows seeded; transfer workflow created")
    queued = stack.api_call(
        api, "POST", f"/api/v1/workflows/{created['id']}/runs", {"data": {}, "type": "manual"}
    )
    run_id = queued["runs"][0]
    found = observe.wait_run(db, run_id, timeout=max(60.0, rows / 50))
    stats = observe.wait_received(stack, "transfer-", rows, cap=10.0)
    seconds = None
    if found and found.started_at and found.finished_at:
        seconds = (found.finished_at - found.started_at).total_seconds()
    output = _step_output(found)
    lost, doubled = _account_rows(out, stack, "transfer", "transfer-", rows)
    error = f", error: {found.error}" if found and found.error else ""
    out.check(
        found is not None and found.status == "succeeded" and found.attempt == 1,
        f"transfer run: {found.status if found else 'not found'}, attempt "
        f"{found.attempt if found else '-'}{error}",
    )
    out.check(
        isinstance(output, dict)
        and output.get("read") == rows
        and output.get("written") == rows
        and not output.get("failed")
        and not output.get("retried_chunks"),
        f"transfer step output: {output}",
    )
    result = {
        "rows": rows,
        "status": found.status if found else None,
        "output": output,
        "requests": stats["requests"],
        "seconds": _sec(seconds),
        "rate": _rate(rows, seconds),
        "lost": lost,
        "doubled": doubled,
    }
    ctx.log(f"polling: transfer: {result['rate']} rows/s ({stats['distinct']} rows received)")
    return result


def _transfer_baseline(ctx: Context, out: Outcome, stack: Stack, rows: int) -> dict[str, Any]:
    """The same table read with sqlite3 by keyset pages, each POSTed with http.client."""
    host, port = stack.receiver_url.removeprefix("http://").split(":")
    db = sqlite3.connect(str(stack.root / "source.db"))
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"content-type": "application/json"}
    sent = requests = failures = 0
    last = -1
    started = time.perf_counter()
    while True:
        cursor = db.execute(
            f"SELECT * FROM {TABLE} WHERE id > ? ORDER BY id LIMIT ?", (last, CHUNK_SIZE)
        )
        names = [d[0] for d in cursor.description]
        chunk = [dict(zip(names, row, strict=True)) for row in cursor]
        if not chunk:
            break
        conn.request("POST", "/bulk/plain-", body=json.dumps(chunk).encode(), headers=headers)
        response = conn.getresponse()
        response.read()
        failures += response.status != 200
        requests += 1
        sent += len(chunk)
        last = chunk[-1]["id"]
    seconds = time.perf_counter() - started
    conn.close()
    db.close()
    observe.wait_received(stack, "plain-", rows, cap=10.0)
    _account_rows(out, stack, "plain transfer", "plain-", rows)
    out.check(failures == 0, f"plain transfer: {requests} requests, {failures} not 200")
    result = {"rows": sent, "requests": requests, "seconds": _sec(seconds)}
    result["rate"] = _rate(sent, seconds)
    ctx.log(f"polling: plain sqlite3 + http.client loop: {result['rate']} rows/s")
    return result


def _account_rows(out: Outcome, stack: Stack, name: str, prefix: str, rows: int) -> tuple[int, int]:
    """Every ``row-<n>`` received under ``prefix`` exactly once, nothing else."""
    got = observe.arrivals(stack, prefix)
    expected = {f"{prefix}row-{n}" for n in range(rows)}
    lost = len(expected - got.keys())
    doubled = sum(1 for _, count in got.values() if count > 1)
    strays = len(got.keys() - expected)
    out.lost += lost
    out.doubled += doubled
    out.check(
        not lost and not doubled and not strays,
        f"{name}: {rows} rows, {len(got)} distinct received, {lost} lost, "
        f"{doubled} twice, {strays} unknown",
    )
    return lost, doubled


def _step_output(found: observe.OneRun | None) -> Any:
    if found is None or not found.steps:
        return None
    output = found.steps[-1].get("output")
    if isinstance(output, str):
        try:
            return json.loads(output)
        except ValueError:
            return output
    return output


def _describe(poll: observe.PollRow | None) -> str:
    if poll is None:
        return "not logged"
    text = (
        f"{poll.status}, {poll.pages} pages, {poll.items_seen} seen, {poll.items_new} new, "
        f"{poll.duration_ms} ms"
    )
    return text + (f", error: {poll.error}" if poll.error else "")


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 else None


def _sec(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
