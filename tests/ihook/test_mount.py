"""ihook as a plugin: ``init_app`` mounts the API and ingress into a host Flask app."""

from __future__ import annotations

import pytest
from flask import Flask, abort, jsonify
from sqlalchemy import select

from ihook import init_app
from ihook.models import Event
from tests.conftest import ADMIN_TOKEN

PREFIX = "/integrations"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def host(platform):
    """A member system with its own routes, and ihook mounted under /integrations."""
    app = Flask("members")
    app.config["TESTING"] = True

    @app.get("/")
    def home():
        return "member system"

    @app.get("/members")
    def members():
        return jsonify([{"id": 1, "name": "Ada"}])

    @app.get("/members/<int:member_id>")
    def member(member_id: int):
        if member_id != 1:
            abort(404)
        return jsonify({"id": 1, "name": "Ada"})

    init_app(app, url_prefix=PREFIX, platform=platform)
    return app


@pytest.fixture
def http(host):
    return host.test_client()


def test_the_hosts_own_routes_still_answer(http):
    assert http.get("/").text == "member system"
    assert http.get("/members").json == [{"id": 1, "name": "Ada"}]
    assert http.get("/members/1").json == {"id": 1, "name": "Ada"}
    # The host's errors stay the host's (HTML here); ihook's, under the prefix, are JSON.
    missing = http.get("/members/2")
    assert missing.status_code == 404
    assert missing.content_type.startswith("text/html")
    assert http.post("/members").status_code == 405
    assert http.get("/nowhere").content_type.startswith("text/html")
    ours = http.get(f"{PREFIX}/api/v1/nowhere")
    assert ours.status_code == 404
    assert ours.json["code"] == 404


def test_the_api_answers_under_the_prefix_with_a_token(http):
    assert http.get(f"{PREFIX}/api/v1/health").status_code == 200
    assert http.get(f"{PREFIX}/api/v1/endpoints").status_code == 401
    listed = http.get(f"{PREFIX}/api/v1/endpoints", headers=AUTH)
    assert listed.status_code == 200, listed.json
    assert listed.json == []
    # Nothing of ihook is left at the root.
    assert http.get("/api/v1/health").status_code == 404
    assert http.get("/api/openapi.json").status_code == 404
    assert http.post("/hooks/whatever", json={}).status_code == 404


def test_openapi_lists_the_prefixed_paths(http):
    doc = http.get(f"{PREFIX}/api/openapi.json")
    assert doc.status_code == 200
    paths = list(doc.json["paths"])
    assert f"{PREFIX}/api/v1/endpoints" in paths
    assert f"{PREFIX}/api/v1/workflows" in paths
    assert all(path.startswith(f"{PREFIX}/api/v1/") for path in paths), paths
    assert http.get(f"{PREFIX}/api/docs").status_code == 200


def test_an_endpoint_ingests_under_the_prefix(http, platform):
    created = http.post(
        f"{PREFIX}/api/v1/endpoints", json={"name": "crm", "auth": {"type": "none"}}, headers=AUTH
    )
    assert created.status_code == 201, created.json
    ingest_url = created.json["ingest_url"]
    assert f"{PREFIX}/hooks/" in ingest_url
    path = ingest_url[ingest_url.index(f"{PREFIX}/hooks/") :]

    answer = http.post(path, json={"member": 1, "change": "joined"})
    assert answer.status_code == 202, answer.json
    with platform.db.session() as session:
        event = session.scalar(select(Event).where(Event.id == answer.json["event_id"]))
        assert event is not None
        assert event.data == {"member": 1, "change": "joined"}
        assert event.source == "endpoint:crm"

    shown = http.get(f"{PREFIX}/api/v1/events/{answer.json['event_id']}", headers=AUTH)
    assert shown.status_code == 200, shown.json
