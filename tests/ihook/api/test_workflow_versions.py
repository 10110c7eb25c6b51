"""``GET /api/v1/workflows/{id}/versions``: a workflow's stored versions, oldest first."""

from __future__ import annotations

from datetime import datetime

import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

FIRST = {
    "name": "shape",
    "steps": [{"id": "copy", "type": "transform", "expression": "data"}],
}


def test_versions_are_listed_oldest_first_with_the_current_one_marked(client):
    made = client.post("/api/v1/workflows", json=FIRST)
    assert made.status_code == 201, made.json
    wf_id = made.json["id"]
    renamed = {**FIRST, "name": "reshape"}
    for body in (renamed, renamed, {**renamed, "description": "now described"}):
        assert client.put(f"/api/v1/workflows/{wf_id}", json=body).status_code == 200
    client.patch(f"/api/v1/workflows/{wf_id}", json={"enabled": False})
    answer = client.get(f"/api/v1/workflows/{wf_id}/versions")
    assert answer.status_code == 200, answer.json
    listed = answer.json
    assert [(v["version"], v["name"], v["current"]) for v in listed] == [
        (1, "shape", False),
        (2, "reshape", False),
        (3, "reshape", True),
    ]
    times = [datetime.fromisoformat(v["created_at"]) for v in listed]
    assert times == sorted(times) and all(t.tzinfo for t in times)
    one = client.get(f"/api/v1/workflows/{wf_id}/versions/1").json
    assert one["name"] == "shape" and one["version"] == 1


def test_versions_of_an_unknown_workflow_are_404_and_need_read_only(client):
    assert client.get("/api/v1/workflows/wf_missing/versions").status_code == 404
    wf_id = client.post("/api/v1/workflows", json=FIRST).json["id"]
    made = client.post("/api/v1/tokens", json={"name": "reader", "scopes": ["read"]})
    reader = made.json["token"]
    headers = {"Authorization": f"Bearer {reader}"}
    answer = client.raw.get(f"/api/v1/workflows/{wf_id}/versions", headers=headers)
    assert answer.status_code == 200 and [v["version"] for v in answer.json] == [1]
    assert client.raw.get(f"/api/v1/workflows/{wf_id}/versions").status_code == 401


def test_the_operation_is_in_the_openapi_document(client):
    spec = client.raw.get("/api/openapi.json").json
    operation = spec["paths"]["/api/v1/workflows/{workflow_id}/versions"]["get"]
    assert {"200", "401", "404"} <= set(operation["responses"])
