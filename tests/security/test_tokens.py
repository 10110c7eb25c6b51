"""Tokens at every operation of the API: a revoked or expired token gets 401, a token
without the scope an operation needs gets 403, and a refused call changes nothing.

The operations are read from the OpenAPI document itself, so a route added later is
covered without touching this test.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from ihook.models import ApiToken, Endpoint
from ihook.services.tokens import create_token

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def operations(client) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation that needs a token."""
    spec = client.raw.get("/api/openapi.json").json
    found = []
    for template, item in spec["paths"].items():
        numbers = {
            param["name"]
            for param in item.get("parameters", [])
            if param.get("schema", {}).get("type") == "integer"
        }
        path = re.sub(
            r"\{([^}]+)\}", lambda m, ints=numbers: "1" if m[1] in ints else "x", template
        )
        for method, operation in item.items():
            if (
                method in {"get", "post", "put", "patch", "delete"}
                and operation.get("security") != []
            ):
                found.append((method, path))
    return found


def needs(method: str, path: str) -> str:
    """The scope docs/api.md says an operation needs."""
    if path.startswith(("/api/v1/tokens", "/api/v1/users")):
        return "admin"
    if method == "get":
        return "read"
    if (method, path) == ("post", "/api/v1/events"):
        return "publish"
    return "write"


def call(client, method: str, path: str, token: str):
    return getattr(client.raw, method)(path, json={}, headers={"Authorization": f"Bearer {token}"})


def test_each_scope_opens_exactly_what_it_should(client, platform):
    ops = operations(client)
    assert len(ops) >= 50
    held = {"read", "publish", "write", "admin"}
    tokens = {}
    with platform.db.session() as session:
        for scope in held:
            tokens[scope] = create_token(session, scope, [scope])[1]
    allowed = {
        "read": {"read"},
        "publish": {"publish"},
        "write": {"read", "publish", "write"},
        "admin": held,
    }
    for scope, token in tokens.items():
        for method, path in ops:
            status = call(client, method, path, token).status_code
            if needs(method, path) in allowed[scope]:
                assert status not in (401, 403), (scope, method, path, status)
            else:
                assert status == 403, (scope, method, path, status)


def test_revoked_and_expired_tokens_are_401_everywhere(client, platform):
    with platform.db.session() as session:
        revoked, revoked_value = create_token(session, "gone", ["admin"])
        expired, expired_value = create_token(session, "old", ["admin"])
    assert client.delete(f"/api/v1/tokens/{revoked.id}").status_code == 200
    with platform.db.session() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(ApiToken).where(ApiToken.id == expired.id).values(expires_at=past))
    for value, reason in ((revoked_value, "token revoked"), (expired_value, "token expired")):
        for method, path in operations(client):
            answer = call(client, method, path, value)
            assert answer.status_code == 401, (reason, method, path, answer.status_code)
            assert answer.json["message"] == reason


def test_a_refused_change_stores_nothing(client, platform):
    with platform.db.session() as session:
        reader = create_token(session, "reader", ["read"])[1]
    body = {"name": "sneaky", "auth": {"type": "none"}}
    answer = client.raw.post(
        "/api/v1/endpoints", json=body, headers={"Authorization": f"Bearer {reader}"}
    )
    assert answer.status_code == 403
    made = client.raw.post(
        "/api/v1/tokens",
        json={"name": "escalate", "scopes": ["admin"]},
        headers={"Authorization": f"Bearer {reader}"},
    )
    assert made.status_code == 403
    with platform.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Endpoint)) == 0
        assert session.scalar(select(func.count()).select_from(ApiToken)) == 1
