"""Workers killed and stopped mid-run: no run lost, none run twice, none left ``running``.

Real ``ihook worker`` and ``ihook scheduler`` processes, a real redis-server, a real
receiver on 127.0.0.1. Each workflow sends the webhook to the receiver, then upserts a
record by the webhook's number. The receiver kills the very process that holds the
connection it was just given (found through the kernel's socket table), so each kill
lands in the middle of a run, between its send and its write.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug import Request, Response

from ihook.models import Record, Run
from tests.conftest import Processes
from tests.support import wait_for

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 2
"""Seconds a run may stay ``running`` before the sweeper takes its worker for dead."""
SWEEP_INTERVAL = 0.25
"""Seconds between the scheduler's sweeps in these tests."""
RECOVERY_BOUND = RUN_TIMEOUT + 2 * SWEEP_INTERVAL + 2.0
"""The bound on recovery stated in docs/reliability.md: the run's deadline passes
(``run_timeout`` after its claim), the next sweep re-queues it and wakes a worker, which
claims it and reaches the send step; 2 s covers the wake and a busy 2-core machine."""


def connection_holder(client_port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` (pids) holds the TCP connection whose client end is
    ``client_port`` on 127.0.0.1."""
    wanted = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        established, inode = fields[3] == "01", fields[9]
        if established and inode != "0" and int(fields[1].split(":")[1], 16) == client_port:
            wanted.add(f"socket:[{inode}]")  # (a closed socket of the same port has inode 0)
    for pid in candidates:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return pid
        except OSError:
            continue
    return None


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return tree


class Receiver:
    """The receiving system: counts each number's requests; on a number's first request it
    hands the connection's holder to ``on_first`` (which kills it)."""

    def __init__(self, on_first) -> None:
        self.on_first = on_first
        self.lock = threading.Lock()
        self.seen: dict[int, list[float]] = {}

    def __call__(self, request: Request) -> Response:
        n = request.get_json()["n"]
        with self.lock:
            times = self.seen.setdefault(n, [])
            times.append(time.monotonic())
            first = len(times) == 1
        if first:
            self.on_first(n, int(request.environ["REMOTE_PORT"]))
        return Response('{"ok": true}', status=200, content_type="application/json")


def member_flow(client, httpserver, name: str) -> str:
    """An endpoint whose workflow sends to the receiver, then upserts by ``n``; its path."""
    endpoint = client.post(
        "/api/v1/endpoints", json={"name": name, "auth": {"type": "none"}, "rate_limit": None}
    ).json
    steps = [
        {"id": "tell", "type": "send", "url": httpserver.url_for("/members"), "body": "data"},
        {"id": "save", "type": "upsert", "collection": name, "key": "n", "data": "data"},
    ]
    workflow = {"name": f"{name}-flow", "trigger": {"endpoint": name}, "steps": steps}
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    return "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]


def post_members(client, path: str, numbers: range) -> None:
    for n in numbers:
        assert client.raw.post(path, json={"n": n}).status_code == 202


def settled(platform, count: int):
    """(status, attempt) of every run once none is queued or running, else None."""
    with platform.db.read() as session:
        runs = session.execute(select(Run.status, Run.attempt, Run.error)).all()
    if len(runs) < count or any(status in ("queued", "running") for status, _, _ in runs):
        return None
    return runs


def records(platform, collection: str) -> dict[str, int]:
    with platform.db.read() as session:
        rows = session.execute(
            select(Record.key, Record.data).where(Record.collection == collection)
        )
        return {key: data["n"] for key, data in rows}


@pytest.fixture
def fault_processes(settings, tmp_path) -> Processes:
    """Processes with a short run timeout, so the sweeper notices a lost worker quickly."""
    logs = tmp_path / "fault-logs"
    logs.mkdir()
    procs = Processes(settings.replace(run_timeout=RUN_TIMEOUT), logs)
    yield procs
    procs.stop_all()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_hundred_work_horses_killed_mid_run(client, platform, httpserver, fault_processes):
    runs = 100
    worker = fault_processes.start("worker", "--fork")
    kills: list[int] = []

    def kill_the_horse(n: int, client_port: int) -> None:
        horse = connection_holder(client_port, process_tree(worker.pid)[1:])
        assert horse is not None and horse != worker.pid
        os.kill(horse, signal.SIGKILL)
        kills.append(n)

    receiver = Receiver(kill_the_horse)
    httpserver.expect_request("/members").respond_with_handler(receiver)
    post_members(client, member_flow(client, httpserver, "horses"), range(runs))
    fault_processes.start("scheduler", "--interval", str(SWEEP_INTERVAL))

    outcome = wait_for(lambda: settled(platform, runs), timeout=240, interval=0.5)
    logs = fault_processes.logs()[-3000:]
    assert len(kills) == runs, logs
    assert sorted(status for status, _, _ in outcome) == ["succeeded"] * runs, logs
    assert all(attempt == 2 for _, attempt, _ in outcome)  # the killed attempt, then one more
    assert worker.poll() is None  # the worker outlived its horses
    assert records(platform, "horses") == {str(n): n for n in range(runs)}
    assert {n: len(times) for n, times in receiver.seen.items()} == {n: 2 for n in range(runs)}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_twenty_workers_killed_beside_a_second_worker(
    client, platform, httpserver, fault_processes
):
    kills = 20
    survivor = fault_processes.start("worker")
    victim = [fault_processes.start("worker")]
    killed_at: dict[int, float] = {}
    lock = threading.Lock()

    def kill_the_victim(n: int, client_port: int) -> None:
        with lock:
            if len(killed_at) == kills:
                return
            holder = connection_holder(client_port, [victim[0].pid, survivor.pid])
            if holder != victim[0].pid:
                return  # the survivor's run goes on
            fault_processes.kill(victim[0])
            killed_at[n] = time.monotonic()
            victim[0] = fault_processes.start("worker")  # restarted, as a supervisor would

    receiver = Receiver(kill_the_victim)
    httpserver.expect_request("/members").respond_with_handler(receiver)
    path = member_flow(client, httpserver, "workers")
    fault_processes.start("scheduler", "--interval", str(SWEEP_INTERVAL))
    runs = 0
    while len(killed_at) < kills and runs < 600:  # a steady stream, shared by both workers
        post_members(client, path, range(runs, runs + 1))
        runs += 1
        time.sleep(0.1)

    outcome = wait_for(lambda: settled(platform, runs), timeout=120, interval=0.5)
    logs = fault_processes.logs()[-3000:]
    assert len(killed_at) == kills, logs
    assert survivor.poll() is None
    assert sorted(status for status, _, _ in outcome) == ["succeeded"] * runs, logs
    assert records(platform, "workers") == {str(n): n for n in range(runs)}
    tries = {n: len(times) for n, times in receiver.seen.items()}
    assert tries == {n: 2 if n in killed_at else 1 for n in range(runs)}  # none run twice
    with platform.db.read() as session:
        attempts = dict(
            session.execute(select(Run.attempt, func.count()).group_by(Run.attempt)).all()
        )
    assert attempts == {1: runs - kills, 2: kills}
    # Recovered: each killed run's next attempt reached the receiver within the bound.
    recovery = sorted(receiver.seen[n][1] - at for n, at in killed_at.items())
    print(f"{runs} runs, {kills} kills; recovered in {recovery[0]:.2f}-{recovery[-1]:.2f} s")
    assert recovery[-1] <= RECOVERY_BOUND, recovery


@pytest.mark.parametrize("fork", [False, True], ids=["simple", "fork"])
def test_sigterm_finishes_the_run_in_hand_and_leaves_the_rest_queued(
    client, platform, httpserver, fault_processes, fork
):
    runs = 30
    started = threading.Event()

    def slow(request: Request) -> Response:
        if len(receiver_seen) == 3:
            started.set()
        time.sleep(0.3)  # each run takes a while, so the stop lands mid-run
        return Response("{}", status=200, content_type="application/json")

    receiver_seen: list[int] = []

    def counting(request: Request) -> Response:
        receiver_seen.append(request.get_json()["n"])
        return slow(request)

    httpserver.expect_request("/members").respond_with_handler(counting)
    post_members(client, member_flow(client, httpserver, "deploy"), range(runs))
    worker = fault_processes.start("worker", *(["--fork"] if fork else []))
    assert started.wait(60), fault_processes.logs()
    worker.send_signal(signal.SIGTERM)  # what a deploy sends: to the worker process only
    stopped_in = time.monotonic()
    try:
        code = worker.wait(15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not stop:\n{fault_processes.logs()[-3000:]}")
    assert code == 0
    stopped_in = time.monotonic() - stopped_in
    with platform.db.read() as session:
        by_status = dict(
            session.execute(select(Run.status, func.count()).group_by(Run.status)).all()
        )
    assert "running" not in by_status, by_status  # the run in hand was finished
    assert by_status.get("queued", 0) > 0 and by_status.get("succeeded", 0) >= 3, by_status
    assert stopped_in < 5, stopped_in  # it did not drain the whole backlog first

    fault_processes.start("worker")
    outcome = wait_for(lambda: settled(platform, runs), timeout=60, interval=0.2)
    assert sorted(status for status, _, _ in outcome) == ["succeeded"] * runs
    assert all(attempt == 1 for _, attempt, _ in outcome)  # none lost, none run twice
    assert sorted(receiver_seen) == list(range(runs))
    assert records(platform, "deploy") == {str(n): n for n in range(runs)}
