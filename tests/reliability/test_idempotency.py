"""One webhook delivered many times at once is stored once and run once.

Senders retry, and some retry in bursts. Here 50 connections post the same signed
webhook (same ``webhook-id``) at the same moment to a real ``ihook api`` (gunicorn, two
sync workers) with a real worker draining: one event, one run, one side effect, and
every other answer says it was a duplicate of that event.
"""

from __future__ import annotations

import http.client
import json
import threading

import pytest
from sqlalchemy import func, select

from ihook.models import Event, Record, Run
from tests.support import free_port, signed_headers, wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

SENDERS = 50


def _request(
    address: str, method: str, path: str, body: bytes | None, headers: dict
) -> tuple[int, dict]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_fifty_concurrent_copies_make_one_event_and_one_run(client, platform, processes):
    address = f"127.0.0.1:{free_port()}"
    processes.start("api", "--bind", address, "--workers", "2")
    processes.start("worker")
    endpoint = client.post(
        "/api/v1/endpoints",
        json={"name": "burst", "auth": {"type": "hmac", "scheme": "standard-webhooks"}},
    ).json
    steps = [{"id": "save", "type": "upsert", "collection": "burst", "key": "n", "data": "data"}]
    workflow = {"name": "burst-flow", "trigger": {"endpoint": "burst"}, "steps": steps}
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    body = json.dumps({"n": 1, "who": "member-1"}).encode()
    headers = signed_headers(endpoint["secret"], body, "msg_burst")

    def up() -> bool:
        try:
            return _request(address, "GET", "/api/v1/health", None, {})[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=30)
    ready = threading.Barrier(SENDERS)
    answers: list[tuple[int, dict]] = []

    def send() -> None:
        ready.wait()
        answers.append(_request(address, "POST", path, body, headers))

    threads = [threading.Thread(target=send) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * (SENDERS - 1) + [202], statuses
    accepted = next(answer for status, answer in answers if status == 202)
    duplicates = [answer for status, answer in answers if status == 200]
    assert all(
        answer == {"event_id": accepted["event_id"], "duplicate": True} for answer in duplicates
    )

    def settled():
        with platform.db.read() as session:
            runs = session.scalars(select(Run)).all()
            if not runs or any(run.status not in ("succeeded", "failed") for run in runs):
                return None
            events = session.scalar(
                select(func.count()).select_from(Event).where(Event.type == "webhook.received")
            )
            records = session.scalar(select(func.count()).select_from(Record))
            return events, [(run.status, run.attempt) for run in runs], records

    events, runs, records = wait_for(settled, timeout=60)
    assert events == 1 and runs == [("succeeded", 1)] and records == 1
