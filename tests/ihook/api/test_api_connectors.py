"""/api/v1/connectors: http connectors by name, secrets write-only, used by send steps."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from ihook.models import Connector
from ihook.services.connectors import full_config
from tests.support import wait_for

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
TOKEN = "crm-token-0123456789"
TENANT_KEY = "tenant-key-4c1b9e"


def crm_connector(client, base_url: str, name: str = "crm"):
    return client.post(
        "/api/v1/connectors",
        json={
            "name": name,
            "kind": "http",
            "config": {
                "base_url": base_url,
                "auth": {"type": "bearer", "token": TOKEN},
                "headers": {"X-Source": "ihook", "X-Tenant-Key": TENANT_KEY},
            },
        },
    )


@both_backends
def test_crud_never_shows_the_secret(client, platform):
    created = crm_connector(client, "https://crm.example.com/api")
    assert created.status_code == 201, created.json
    body = created.json
    assert body["config"]["auth"] == {"type": "bearer"}
    assert body["config"]["base_url"] == "https://crm.example.com/api"
    url = f"/api/v1/connectors/{body['id']}"
    answers = [client.get("/api/v1/connectors"), client.get(url)]
    changed = client.patch(url, json={"config": {"timeout": 5}})
    answers.append(changed)
    assert changed.json["config"]["timeout"] == 5
    assert changed.json["config"]["auth"] == {"type": "bearer"}  # the token was kept
    assert "headers" not in changed.json["config"]  # names and values: write-only
    for answer in answers:
        assert answer.status_code == 200
        assert TOKEN not in answer.get_data(as_text=True)
        assert TENANT_KEY not in answer.get_data(as_text=True)
    with platform.db.session() as session:
        row = session.scalars(select(Connector)).one()
        for secret in (TOKEN, TENANT_KEY):
            assert secret not in json.dumps(row.config) and secret not in row.secrets_enc
        kept = full_config(row, platform.vault)
    assert kept["headers"] == {"X-Source": "ihook", "X-Tenant-Key": TENANT_KEY}  # as sent
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_config_is_checked_against_the_kind(client):
    bad_kind = client.post("/api/v1/connectors", json={"name": "x", "kind": "ftp", "config": {}})
    assert bad_kind.status_code == 422
    assert "unknown connector kind 'ftp'" in bad_kind.json["errors"]["json"]["kind"][0]
    bad = client.post(
        "/api/v1/connectors",
        json={"name": "x", "kind": "http", "config": {"auth": {"type": "bearer"}}},
    )
    assert bad.status_code == 422
    errors = bad.json["errors"]["json"]
    assert set(errors) == {"config.base_url", "config.auth.token"}
    reserved = crm_connector(client, "https://x.example", name="records")
    assert reserved.status_code == 422 and "name" in reserved.json["errors"]["json"]
    crm_connector(client, "https://x.example")
    assert crm_connector(client, "https://y.example").status_code == 409


@both_backends
def test_send_through_a_connector_carries_its_auth(client, httpserver, worker, processes):
    httpserver.expect_request(
        "/api/members/m-1/activities",
        method="POST",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "X-Source": "ihook",
            "X-Tenant-Key": TENANT_KEY,
        },
    ).respond_with_json({"id": 7}, status=201)
    assert crm_connector(client, httpserver.url_for("/api")).status_code == 201
    ep = client.post("/api/v1/endpoints", json={"name": "lms", "auth": {"type": "none"}}).json
    workflow = {
        "name": "notify-crm",
        "trigger": {"endpoint": "lms"},
        "steps": [
            {
                "id": "notify",
                "type": "send",
                "connector": "crm",
                "path": "/members/{{ data.member }}/activities",
                "body": "data",
            }
        ],
    }
    assert client.post("/api/v1/workflows", json=workflow).status_code == 201
    answer = client.raw.post("/hooks/" + ep["ingest_url"].rsplit("/", 1)[1], json={"member": "m-1"})
    run_id = answer.json["runs"][0]
    run = wait_for(
        lambda: (
            (r := client.get(f"/api/v1/runs/{run_id}").json)["status"] != "queued"
            and r["status"] != "running"
            and r
        )
    )
    assert run["status"] == "succeeded", run
    assert run["output"]["status"] == 201 and run["output"]["body"] == {"id": 7}
    for secret in (TOKEN, TENANT_KEY):
        assert secret not in json.dumps(run) and secret not in processes.logs()


def test_workflow_naming_a_missing_connector_is_refused(client):
    workflow = {
        "name": "w",
        "steps": [{"id": "s", "type": "send", "connector": "crm", "body": "data"}],
    }
    answer = client.post("/api/v1/workflows", json=workflow)
    assert answer.status_code == 422
    assert "steps.s" in answer.json["errors"]["json"]
