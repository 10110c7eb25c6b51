"""What ihook is measured against, each run beside it on the same stack.

- ``start_bare``: the bare Flask + HMAC + LPUSH endpoint (``bench.bare_app``), served
  by gunicorn with the command line ``ihook api`` uses (sync workers, same count,
  access log on stdout with ihook's logger class).
- ``rq_drain``: stock RQ ``SimpleWorker`` processes (``rq worker --burst``) draining N
  trivial jobs.
- ``plain_loop``: the workflow's steps called in a loop in this process with the
  resources a worker lends a run (``ihook.resources.run_resources``), no queue, no API.
- ``raw_clients``: plain Python clients posting signed webhooks to the receiver, to find
  the fastest a Python process can deliver.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.payloads import Signed
from bench.stack import Api, Stack, free_port
from ihook.signing import generate_secret, sign

RQ_QUEUE = "bench-trivial"
"""The queue the stock RQ drain uses."""
DRAIN_TIMEOUT = 120.0
"""Seconds the stock RQ workers have to drain their jobs."""


def trivial() -> None:
    """The stock RQ baseline's job: nothing at all."""


def gunicorn_args(bind: str, workers: int, app: str) -> list[str]:
    """gunicorn as ``ihook api`` runs it (ihook/cli.py), serving ``app``."""
    threads = os.environ.get("IHOOK_API_THREADS", "1")
    args = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers)]
    args += ["--threads", threads]
    args += ["--access-logfile", "-", "--logger-class", "ihook.accesslog.RedactingLogger"]
    return [*args, app]


def start_bare(stack: Stack, secret: str, workers: int, commit_db: Path | None = None) -> Api:
    """The bare endpoint on a free port, verifying ``secret``; once it answers.

    ``commit_db``: a SQLite file each body is committed to before the answer (the
    "committed" baseline, see ``bench.bare_app``).
    """
    port = free_port()
    extra = {"BENCH_COMMIT_DB": str(commit_db)} if commit_db else {}
    env = stack.env(BENCH_SECRET=secret, **extra)
    args = gunicorn_args(f"127.0.0.1:{port}", workers, "bench.bare_app:create_app()")
    child = stack.spawn("committed" if commit_db else "bare", args, env)
    url = f"http://127.0.0.1:{port}"
    stack.wait_http(url + "/", "bare endpoint", child)
    return Api(child, url)


# -- stock RQ -------------------------------------------------------------------------


def rq_drain(stack: Stack, jobs: int, workers: int) -> dict[str, Any]:
    """Enqueue ``jobs`` trivial jobs, drain them with ``workers`` stock SimpleWorkers.

    The rate is jobs over the time from the first job's start to the last one's end,
    from RQ's own timestamps, so process start-up is not counted.
    """
    from rq import Queue
    from rq.job import Job, JobStatus

    redis = stack.redis()
    queue = Queue(RQ_QUEUE, connection=redis)
    queue.empty()
    ids = [f"bench-trivial-{workers}-{n}" for n in range(jobs)]
    for start in range(0, jobs, 1000):
        datas = [
            Queue.prepare_data("bench.baselines.trivial", job_id=jid)
            for jid in ids[start : start + 1000]
        ]
        with redis.pipeline() as pipe:
            queue.enqueue_many(datas, pipeline=pipe)
            pipe.execute()
    rq = str(Path(sys.executable).with_name("rq"))
    args = [rq, "worker", "--burst", "--quiet", "-w", "rq.worker.SimpleWorker"]
    args += ["--url", stack.redis_url, RQ_QUEUE]
    children = [stack.spawn("rq-worker", args) for _ in range(workers)]
    deadline = time.monotonic() + DRAIN_TIMEOUT
    for child in children:
        try:
            child.proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass  # what they did not finish counts as lost
    stack.stop(*children)
    fetched: list[Job | None] = []
    for start in range(0, jobs, 1000):
        fetched += Job.fetch_many(ids[start : start + 1000], connection=redis)
    done = [j for j in fetched if j is not None and j.get_status() == JobStatus.FINISHED]
    starts = [j.started_at for j in done if j.started_at]
    ends = [j.ended_at for j in done if j.ended_at]
    seconds = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    return {
        "workers": workers,
        "jobs": jobs,
        "finished": len(done),
        "lost": jobs - len(done),
        "seconds": round(seconds, 3),
        "rate": round(len(done) / seconds, 1) if seconds > 0 else None,
    }


# -- the plain loop -------------------------------------------------------------------


def plain_loop(stack: Stack, workflow_id: str, batch: list[Signed]) -> dict[str, Any]:
    """Run the stored workflow for each callback in this process, no queue, no API.

    Each iteration does what a worker's job does between claiming and finishing a run:
    build the run's resources and call ``run_workflow`` on the stored definition. The
    bodies are parsed before the clock starts (parsing is ingest's work).
    """
    from sqlalchemy import select

    from ihook.ids import new_id
    from ihook.jobs import event_document
    from ihook.models import Event, Run, WorkflowVersion, utcnow
    from ihook.platform import Platform
    from ihook.resources import run_resources
    from ihook.routing import snapshot_of
    from ihook.settings import Settings
    from workflows import run_workflow

    platform = Platform(Settings.from_env(stack.env()))
    with platform.db.session() as session:
        version = session.scalars(
            select(WorkflowVersion)
            .where(WorkflowVersion.workflow_id == workflow_id)
            .order_by(WorkflowVersion.version.desc())
        ).first()
        assert version is not None
        definition = version.definition
        snapshot = snapshot_of(session)  # the configuration, as a worker reads it per run
    events = [
        Event(
            id=new_id("evt"),
            type="webhook.received",
            source="endpoint:plain",
            data=json.loads(item.body),
            headers=item.headers(),
            received_at=utcnow(),
        )
        for item in batch
    ]
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    for event in events:
        run = Run(id=new_id("run"), workflow_id=workflow_id, workflow_version=1, attempt=1)
        result = run_workflow(
            definition,
            event_document(event),
            resources=run_resources(platform, run, event, snapshot),
            run={"id": run.id, "attempt": 1},
        )
        status = str(result.status)
        statuses[status] = statuses.get(status, 0) + 1
    seconds = time.perf_counter() - started
    platform.close()
    return {
        "runs": len(events),
        "statuses": statuses,
        "seconds": round(seconds, 3),
        "rate": round(len(events) / seconds, 1),
    }


# -- raw clients ----------------------------------------------------------------------


@dataclass
class RawClient:
    """A way to POST to the receiver from plain Python."""

    name: str
    make: Callable[[str], Callable[[str, dict[str, str], bytes], int]]


def _httpx(url: str) -> Callable[[str, dict[str, str], bytes], int]:
    client = httpx.Client(base_url=url)
    return lambda path, headers, body: client.post(path, headers=headers, content=body).status_code


def _http_client(url: str) -> Callable[[str, dict[str, str], bytes], int]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def post(path: str, headers: dict[str, str], body: bytes) -> int:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    return post


def _http_client_new(url: str) -> Callable[[str, dict[str, str], bytes], int]:
    host, port = url.removeprefix("http://").split(":")

    def post(path: str, headers: dict[str, str], body: bytes) -> int:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    return post


RAW_CLIENTS = [
    RawClient("http.client keep-alive", _http_client),
    RawClient("httpx.Client keep-alive", _httpx),
    RawClient("http.client new connection", _http_client_new),
]
"""The raw clients tried; the fastest is the delivery baseline."""


def raw_client(stack: Stack, client: RawClient, threads: int, count: int) -> dict[str, Any]:
    """``count`` signed deliveries to the receiver from ``threads`` threads of ``client``."""
    secret = generate_secret()
    prefix = f"raw-{client.name.split()[0]}-{client.name.split()[-1]}-{threads}-"
    ts = int(time.time())
    body_text = json.dumps({"type": "bench.raw", "timestamp": ts, "data": {"pad": "x" * 900}})
    body = body_text.encode()
    items = []
    for n in range(count):
        msg_id = f"{prefix}{n}"
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, msg_id, ts, body),
            "content-type": "application/json",
        }
        items.append(headers)
    share = [items[n::threads] for n in range(threads)]
    failures = [0] * threads

    def work(n: int) -> None:
        post = client.make(stack.receiver_url)
        for headers in share[n]:
            if post("/raw", headers, body) != 200:
                failures[n] += 1

    workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    got = stack.receiver(f"stats?prefix={prefix}")
    return {
        "client": client.name,
        "threads": threads,
        "requests": count,
        "seconds": round(seconds, 3),
        "rate": round(count / seconds, 1),
        "failed": sum(failures),
        "lost": count - got["distinct"],
        "doubled": got["doubled"],
    }
