"""Secrets are shown once: never again in API answers, logs, stored headers or rows."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from sqlalchemy import MetaData, select

from tests.support import completion, signed_headers, wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def every_row_as_text(platform) -> str:
    metadata = MetaData()
    metadata.reflect(platform.db.engine)
    with platform.db.engine.connect() as conn:
        return "\n".join(
            repr(row) for table in metadata.sorted_tables for row in conn.execute(select(table))
        )


def test_secrets_never_reappear(client, platform, worker, processes, caplog):
    caplog.set_level(logging.DEBUG)
    made = {
        "hmac": {"type": "hmac", "scheme": "standard-webhooks"},
        "github": {"type": "hmac", "scheme": "github"},
        "basic": {"type": "basic", "username": "lms"},
        "bearer": {"type": "bearer"},
        "header": {"type": "header", "header": "X-Api-Key", "secret": "my-own-key-123456"},
    }
    endpoints = {
        name: client.post("/api/v1/endpoints", json={"name": name, "auth": auth}).json
        for name, auth in made.items()
    }
    flow = {
        "name": "keep",
        "trigger": {"endpoint": list(made)},
        "steps": [{"id": "t", "type": "transform", "expression": "data"}],
    }
    assert client.post("/api/v1/workflows", json=flow).status_code == 201
    rotated = client.post(f"/api/v1/endpoints/{endpoints['bearer']['id']}/rotate-secret", json={})
    secrets = [e["secret"] for e in endpoints.values()] + [rotated.json["secret"]]
    keys = [e["ingest_url"].rsplit("/", 1)[1] for e in endpoints.values()]
    assert all(secrets) and len(set(secrets)) == len(secrets)

    def hook(name: str) -> str:
        return "/hooks/" + endpoints[name]["ingest_url"].rsplit("/", 1)[1]

    body = json.dumps(completion()).encode()
    sent = [
        client.raw.post(hook("hmac"), data=body, headers=signed_headers(secrets[0], body, "m1")),
        client.raw.post(
            hook("basic"),
            json={"a": 1},
            headers={
                "Authorization": "Basic " + base64.b64encode(f"lms:{secrets[2]}".encode()).decode()
            },
        ),
        client.raw.post(
            hook("bearer"), json={"a": 1}, headers={"Authorization": f"Bearer {secrets[5]}"}
        ),
        client.raw.post(hook("header"), json={"a": 1}, headers={"X-Api-Key": secrets[4]}),
        # a refused request is logged (without the key it was given)
        client.raw.post(hook("header"), json={"a": 1}, headers={"X-Api-Key": secrets[4] + "x"}),
    ]
    assert [a.status_code for a in sent] == [202, 202, 202, 202, 401]
    run_ids = [run for a in sent[:4] for run in a.json["runs"]]
    wait_for(
        lambda: all(client.get(f"/api/v1/runs/{r}").json["status"] == "succeeded" for r in run_ids)
    )

    answers = [
        client.get("/api/v1/endpoints"),
        *[client.get(f"/api/v1/endpoints/{e['id']}") for e in endpoints.values()],
        client.patch(f"/api/v1/endpoints/{endpoints['hmac']['id']}", json={"description": "x"}),
        client.get("/api/v1/events"),
        *[client.get(f"/api/v1/events/{a.json['event_id']}") for a in sent[:4]],
        client.get("/api/v1/runs"),
        *[client.get(f"/api/v1/runs/{r}") for r in run_ids],
        client.get("/api/v1/workflows"),
    ]
    assert all(a.status_code == 200 for a in answers)
    places = {
        "API answers": "\n".join(a.get_data(as_text=True) for a in answers),
        "API process logs": caplog.text,
        "worker logs": processes.logs(),
        "database rows": every_row_as_text(platform),
    }
    for where, text in places.items():
        for secret in secrets + keys:
            assert secret not in text, f"a secret appears in {where}"
    assert "[redacted]" in places["database rows"]  # stored headers kept, values hidden
