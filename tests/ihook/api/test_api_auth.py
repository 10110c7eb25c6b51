"""The management API's bearer-token guard and its OpenAPI document (DESIGN.md §3)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from http import HTTPStatus

import pytest
from sqlalchemy import text

from ihook.services.tokens import create_token

ADMIN_TOKEN = "test-admin-token"  # tests/conftest.py's settings.admin_token
HEALTH = "/api/v1/health"
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")

EXPECTED_PATHS = {
    "/api/v1/endpoints",
    "/api/v1/endpoints/{endpoint_id}",
    "/api/v1/endpoints/{endpoint_id}/rotate-secret",
    "/api/v1/workflows",
    "/api/v1/workflows/{workflow_id}",
    "/api/v1/workflows/validate",
    "/api/v1/runs",
    "/api/v1/runs/{run_id}",
    "/api/v1/runs/{run_id}/retry",
    "/api/v1/events",
    "/api/v1/events/{event_id}",
    "/api/v1/events/{event_id}/replay",
    "/api/v1/records/{collection}",
    "/api/v1/records/{collection}/{key}",
    HEALTH,
}
"""The DESIGN §3 routes this build has, as OpenAPI writes them."""
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


def protected_routes(app) -> list[tuple[str, str]]:
    """``(method, concrete path)`` for every /api/v1 route but health."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.rule.startswith(HEALTH):
            continue
        path = PARAM.sub(lambda m: "1" if m.group(1) == "int" else "x_1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, path))
    return routes


def assert_401(answer) -> None:
    assert answer.status_code == 401, (answer.status_code, answer.get_data(as_text=True))
    body = answer.json
    assert body["code"] == 401
    assert body["status"] == HTTPStatus.UNAUTHORIZED.phrase
    assert body["message"]
    assert set(body) <= {"code", "status", "message", "errors"}
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_the_route_walk_sees_every_protected_resource(app):
    routes = protected_routes(app)
    paths = {path for _, path in routes}
    for expected in (
        "/api/v1/endpoints/x_1/rotate-secret",
        "/api/v1/workflows/x_1/versions/1",
        "/api/v1/runs/x_1/retry",
        "/api/v1/events/x_1/replay",
        "/api/v1/records/x_1/x_1",
    ):
        assert expected in paths
    assert ("DELETE", "/api/v1/endpoints/x_1") in routes
    assert ("PUT", "/api/v1/workflows/x_1") in routes
    assert len(routes) >= 20


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Bearer {ADMIN_TOKEN}x",
        "Bearer ",
        f"Basic {base64.b64encode(f'admin:{ADMIN_TOKEN}'.encode()).decode()}",
        f"Token {ADMIN_TOKEN}",
        ADMIN_TOKEN,
    ],
    ids=["none", "wrong", "longer", "empty", "basic", "token-scheme", "bare"],
)
def test_every_protected_route_is_401_without_a_valid_bearer_token(client, app, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    routes = protected_routes(app)
    assert routes
    for method, path in routes:
        answer = client.raw.open(path, method=method, headers=headers, json={})
        assert_401(answer)


def test_health_needs_no_token_and_the_admin_token_opens_the_rest(client):
    health = client.raw.get(HEALTH)
    assert health.status_code == 200
    assert health.json["database"] == "ok"
    assert health.json["pending_deliveries"] == 0 and health.json["delivery_queue_depth"] == 0
    assert client.raw.get("/api/v1/endpoints").status_code == 401
    assert client.get("/api/v1/endpoints").status_code == 200


def test_a_created_token_works_and_is_stored_hashed(client, platform):
    with platform.db.session() as session:
        row, token = create_token(session, "ci")
    assert token.startswith("ihk_") and len(token) > 20

    answer = client.raw.get("/api/v1/workflows", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.json == []
    lower = client.raw.get("/api/v1/workflows", headers={"Authorization": f"bearer {token}"})
    assert lower.status_code == 200
    assert_401(client.raw.get("/api/v1/workflows", headers={"Authorization": f"Bearer {token}1"}))

    with platform.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM api_tokens"))]
    assert len(rows) == 1
    assert rows[0]["id"] == row.id
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0]["last_used_at"] is not None
    stored = json.dumps(rows, default=str)
    assert token not in stored
    assert token[4:] not in stored


def test_openapi_document_lists_the_routes_with_bearer_security_and_summaries(client, app):
    answer = client.raw.get("/api/openapi.json")
    assert answer.status_code == 200
    doc = answer.json
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert EXPECTED_PATHS <= set(paths), EXPECTED_PATHS - set(paths)

    served = {
        PARAM.sub(r"{\2}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
    }
    assert served == set(paths)

    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert {"bearer": []} in doc["security"]

    operations = [
        (method, path, op)
        for path, item in paths.items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    assert len(operations) >= 20
    missing = [f"{m.upper()} {p}" for m, p, op in operations if not op.get("summary", "").strip()]
    assert missing == []
    assert paths["/api/v1/endpoints/{endpoint_id}/rotate-secret"]["post"]["summary"].startswith(
        "Rotate"
    )


def test_openapi_marks_health_as_needing_no_token(client):
    doc = client.raw.get("/api/openapi.json").json
    assert doc["paths"][HEALTH]["get"].get("security") == []
