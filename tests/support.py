"""Helpers for tests (import as `tests.support`)."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def signed_headers(secret: str, body: bytes, msg_id: str, timestamp: int | None = None) -> dict:
    """Standard Webhooks headers made by the independent ``standardwebhooks`` package."""
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    ts = int(time.time()) if timestamp is None else timestamp
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


LMS_WORKFLOW = {
    "name": "lms-course-completion",
    "trigger": {"endpoint": "lms"},
    "steps": [
        {"id": "completed_only", "type": "filter", "if": "data.status == 'completed'"},
        {
            "id": "activity",
            "type": "transform",
            "mapping": {
                "member_id": "data.learner.external_id",
                "course": "data.course.code",
                "completed_at": "data.completed_at",
            },
        },
        {
            "id": "save",
            "type": "upsert",
            "connector": "records",
            "collection": "activities",
            "key": ["member_id", "course"],
            "data": "steps.activity",
        },
    ],
}
"""The LMS course-completion workflow of DESIGN.md §5 (the send step is added per test)."""


def completion(member: str = "m-1", course: str = "CS101", status: str = "completed") -> dict:
    """An LMS course-completion callback body."""
    return {
        "status": status,
        "learner": {"external_id": member, "name": "Ada"},
        "course": {"code": course, "title": "Intro"},
        "completed_at": "2026-11-20T10:00:00Z",
    }


class MemoryStore:
    """A ``connectors.RecordStore`` in a dict, with the platform's write rules."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict] = {}

    def get(self, collection: str, key: str) -> dict | None:
        return self.rows.get((collection, key))

    def write(self, collection: str, key: str, data: dict, *, mode: str) -> str:
        from connectors import RecordError

        old = self.rows.get((collection, key))
        if mode == "insert" and old is not None:
            raise RecordError(f"{collection}/{key} exists")
        if mode == "update" and old is None:
            raise RecordError(f"{collection}/{key} does not exist")
        self.rows[(collection, key)] = data
        if old is None:
            return "created"
        return "unchanged" if old == data else "updated"

    def delete(self, collection: str, key: str) -> bool:
        return self.rows.pop((collection, key), None) is not None

    def page(self, collection: str, after: str | None, limit: int) -> list[tuple[str, dict]]:
        keys = sorted(k for c, k in self.rows if c == collection and (after is None or k > after))
        return [(k, self.rows[(collection, k)]) for k in keys[:limit]]


def subscribe(client, url: str, name: str = "crm", **fields) -> dict:
    """A subscription to ``member.*`` events at ``url``; retries after 1 s by default."""
    body = {"name": name, "url": url, "event_types": ["member.*"], **fields}
    body.setdefault("retry_schedule", [0, 1, 1])
    answer = client.post("/api/v1/subscriptions", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json
