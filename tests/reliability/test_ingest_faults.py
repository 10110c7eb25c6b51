"""Ingest under faults: Redis killed, a crash after the commit, the database gone.

What ihook acknowledged it has stored, and what it stored it runs, once: real redis-server
(killed with SIGKILL), real ``ihook api`` / ``ihook worker`` / ``ihook scheduler``
processes, real SQLite and PostgreSQL, processes that die between commit and enqueue.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ihook.models import Event, Record, Run
from tests.conftest import Processes, RedisServer, settings_env
from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_server(tmp_path):
    """A Redis of this test's own, so it can be killed and started again."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def inserting_flow(client, name: str) -> str:
    """An endpoint whose workflow *inserts* a record keyed by ``n`` (a second insert of the
    same key fails the run, so a run done twice cannot hide); its ingest path."""
    endpoint = client.post(
        "/api/v1/endpoints", json={"name": name, "auth": {"type": "none"}, "rate_limit": None}
    ).json
    steps = [{"id": "save", "type": "insert", "collection": name, "key": "n", "data": "data"}]
    workflow = {"name": f"{name}-flow", "trigger": {"endpoint": name}, "steps": steps}
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    return "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]


def final_runs(platform, count: int):
    """{status: count} once ``count`` runs exist and none is queued or running, else None."""
    with platform.db.read() as session:
        rows = dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).all())
    if sum(rows.values()) < count or rows.get("queued") or rows.get("running"):
        return None
    return rows


def record_keys(platform, collection: str) -> set[int]:
    with platform.db.read() as session:
        keys = session.scalars(select(Record.key).where(Record.collection == collection))
        return {int(key) for key in keys}


def count(platform, model) -> int:
    with platform.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def post(address: str, path: str, body: bytes) -> tuple[int, dict]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


def start_api(processes) -> str:
    """``ihook api`` (gunicorn, two workers) on a free port, answering; its host:port."""
    address = f"127.0.0.1:{free_port()}"
    processes.start("api", "--bind", address, "--workers", "2")

    def answers() -> bool:
        try:
            host, port = address.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/api/v1/health")
            conn.getresponse().read()
            return True
        except OSError:
            return False

    wait_for(answers, timeout=30)
    return address


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_redis_killed_during_ten_thousand_webhooks(client, platform, processes, redis_server):
    total, senders = 10_000, 8
    path = inserting_flow(client, "flood")
    address = start_api(processes)
    for _ in range(2):
        processes.start("worker")
    processes.start("scheduler", "--interval", "0.5")
    numbers = iter(range(total))
    lock = threading.Lock()
    answers: dict[int, int] = {}
    sent = threading.Semaphore(0)

    def sender() -> None:
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            try:
                status = post(address, path, json.dumps({"n": n}).encode())[0]
            except OSError as exc:  # counted as not acknowledged
                status = -1
                print(f"webhook {n}: {exc}", file=sys.stderr)
            answers[n] = status
            sent.release()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for done in range(1, total + 1):
        sent.acquire()
        if done == 3_000:
            redis_server.stop()  # SIGKILL: no save, its queues are gone
        if done == 6_000:
            redis_server.start()  # empty
    for thread in threads:
        thread.join()

    acknowledged = {n for n, status in answers.items() if 200 <= status < 300}
    outcome = wait_for(lambda: final_runs(platform, len(acknowledged)), timeout=300, interval=1)
    logs = processes.logs()[-3000:]
    assert sorted(set(answers.values())) == [202], logs  # Redis is not needed to acknowledge
    assert outcome == {"succeeded": total}, logs
    assert count(platform, Event) == total + total  # each webhook and its record.created
    assert record_keys(platform, "flood") == acknowledged  # one insert each, none failed twice


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_thousand_crashes_between_commit_and_enqueue(client, platform, processes, settings):
    crashes = 1_000
    path = inserting_flow(client, "crashes")
    died = subprocess.run(
        [sys.executable, "-m", "tests.reliability.crash_after_commit", str(crashes), path],
        env=settings_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    assert died.stdout.split() == [str(crashes)], died.stderr[-2000:]
    assert final_runs(platform, crashes) is None  # all stored, none started
    assert count(platform, Run) == crashes and platform.queue.depth() == 0  # nothing enqueued

    processes.start("worker")
    processes.start("scheduler", "--interval", "0.5")
    outcome = wait_for(lambda: final_runs(platform, crashes), timeout=180, interval=0.5)
    assert outcome == {"succeeded": crashes}, processes.logs()[-3000:]
    with platform.db.read() as session:
        assert session.scalar(select(func.max(Run.attempt))) == 1  # none ran twice
    assert record_keys(platform, "crashes") == set(range(crashes))


class Gate:
    """A TCP relay on 127.0.0.1 in front of PostgreSQL that a test can shut and open:
    shut, it drops every connection and refuses new ones, as a database host that went
    away."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_port()
        self.open_ = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.open()

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def shut(self) -> None:
        assert self.listener is not None
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                near, _ = listener.accept()
            except OSError:
                return  # shut
            far = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_database_unavailable_at_ingest_is_503_and_enqueues_nothing(
    client, platform, settings, tmp_path
):
    path = inserting_flow(client, "outage")
    url = make_url(settings.database_url)
    gate = Gate((url.host or "127.0.0.1", url.port or 5432))
    through_gate = url.set(port=gate.port).render_as_string(hide_password=False)
    (tmp_path / "gated-logs").mkdir()
    processes = Processes(settings.replace(database_url=through_gate), tmp_path / "gated-logs")
    try:
        address = start_api(processes)
        assert post(address, path, b'{"n": 0}')[0] == 202  # warm: pooled connections exist
        jobs_before = len(platform.redis.keys("rq:job:*"))
        depth_before = platform.queue.depth()
        gate.shut()
        refused = [post(address, path, json.dumps({"n": n}).encode()) for n in range(1, 21)]
        gate.open()
        after = post(address, path, b'{"n": 21}')
    finally:
        processes.stop_all()
        gate.shut()
    unavailable = {
        "code": 503,
        "status": "Service Unavailable",
        "message": "the database cannot take events right now",
    }
    assert refused == [(503, unavailable)] * 20
    assert len(platform.redis.keys("rq:job:*")) == jobs_before  # no job for what was refused
    assert platform.queue.depth() == depth_before
    assert after[0] == 202  # back as soon as the database is
    with platform.db.read() as session:
        stored = session.scalars(select(Event.data).where(Event.type == "webhook.received"))
        assert sorted(data["n"] for data in stored) == [0, 21]
