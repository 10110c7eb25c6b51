"""The LMS integration the ingest and e2e scenarios drive (DESIGN.md §5's example).

A Standard Webhooks endpoint, an ``http`` connector to the receiver, and a workflow
bound to the endpoint: filter → transform → upsert a record → send to the receiver.
Everything is created through the management API, as an integrator would.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.stack import Api, Stack

RATE_LIMIT = {"requests": 1_000_000, "per_seconds": 1}
"""Far above any rate reached, yet still checked in Redis on every request (the default
of 600/s would answer 429 to part of the load)."""


@dataclass(frozen=True)
class Lms:
    """What was created: the endpoint's ingest path and secret, and the workflow id."""

    endpoint_id: str
    path: str
    secret: str
    workflow_id: str


def workflow(name: str, endpoint: str) -> dict:
    """The e2e workflow; ``bench_id`` is passed through so the receiver can count it."""
    return {
        "name": name,
        "trigger": {"endpoint": endpoint},
        "steps": [
            {"id": "completed_only", "type": "filter", "if": "data.status == 'completed'"},
            {
                "id": "activity",
                "type": "transform",
                "mapping": {
                    "bench_id": "data.bench_id",
                    "member_id": "data.learner.external_id",
                    "course": "data.course.code",
                    "completed_at": "data.completed_at",
                    "score": "data.score.raw",
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
            {
                "id": "notify",
                "type": "send",
                "connector": "crm",
                "method": "POST",
                "path": "/members/{{ steps.activity.member_id }}/activities",
                "body": "steps.activity",
            },
        ],
    }


def create(stack: Stack, api: Api, name: str = "lms") -> Lms:
    """Create the connector (once), the endpoint and its workflow."""
    connectors = stack.api_call(api, "GET", "/api/v1/connectors")
    if not any(c["name"] == "crm" for c in connectors):
        config = {"base_url": stack.receiver_url, "allow_private": True}
        stack.api_call(
            api, "POST", "/api/v1/connectors", {"name": "crm", "kind": "http", "config": config}
        )
    endpoint = stack.api_call(
        api,
        "POST",
        "/api/v1/endpoints",
        {
            "name": name,
            "auth": {"type": "hmac", "scheme": "standard-webhooks"},
            "rate_limit": RATE_LIMIT,
        },
    )
    created = stack.api_call(api, "POST", "/api/v1/workflows", workflow(f"{name}-flow", name))
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    return Lms(endpoint["id"], path, endpoint["secret"], created["id"])
