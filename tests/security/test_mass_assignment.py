"""Fields a client may not set are refused, on create and on change, and never stored.

``id``, ``created_at``, ``updated_at``, a top-level ``secret``, the endpoint's
``key_hint`` and any unknown key: each is a 422 naming the field, and what is stored
stays as it was.
"""

from __future__ import annotations

import pytest

PUBLIC = "https://93.184.216.34"
RESOURCES = {
    "endpoints": {"name": "e", "auth": {"type": "none"}},
    "subscriptions": {"name": "s", "url": f"{PUBLIC}/hook", "event_types": ["*"]},
    "connectors": {"name": "c", "kind": "http", "config": {"base_url": PUBLIC}},
    "workflows": {
        "name": "w",
        "steps": [{"id": "a", "type": "transform", "mapping": {"x": "data"}}],
    },
    "pollers": {
        "name": "p",
        "request": {"url": f"{PUBLIC}/items"},
        "interval_seconds": 60,
        "id": "id",
    },
}
FORBIDDEN = {
    "id": "x_forged",
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "key_hint": "forged",
    "is_admin": True,
}


def _refused(answer, field: str) -> None:
    assert answer.status_code == 422, (field, answer.status_code, answer.json)
    assert field in answer.json["errors"]["json"], (field, answer.json)


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_forbidden_fields_are_refused_on_create(client, resource):
    path = f"/api/v1/{resource}"
    for field, value in FORBIDDEN.items():
        if resource == "pollers" and field == "id":
            continue  # a poller's ``id`` is the jmespath of an item's id: checked below
        _refused(client.post(path, json={**RESOURCES[resource], field: value}), field)
    assert client.get(path).json == []  # nothing was created


@pytest.mark.parametrize("resource", list(RESOURCES))
def test_forbidden_fields_are_refused_on_change_and_nothing_moves(client, resource):
    path = f"/api/v1/{resource}"
    created = client.post(path, json=RESOURCES[resource])
    assert created.status_code == 201, created.json
    item = f"{path}/{created.json['id']}"
    before = client.get(item).json
    for field, value in FORBIDDEN.items():
        if resource == "pollers" and field == "id":
            continue
        _refused(client.patch(item, json={field: value}), field)
    assert client.get(item).json == before


def test_a_pollers_id_expression_never_becomes_its_id(client):
    created = client.post("/api/v1/pollers", json={**RESOURCES["pollers"], "id": "x_forged"})
    assert created.status_code == 201, created.json
    assert created.json["id"].startswith("pol") and created.json["id"] != "x_forged"
    assert client.get("/api/v1/pollers/x_forged").status_code == 404
