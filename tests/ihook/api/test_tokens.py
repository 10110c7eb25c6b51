"""``/api/v1/tokens`` and the CLI: scoped tokens, shown once, expiring, revocable."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.conftest import settings_env


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_is_created_with_scopes_and_shown_once(client):
    made = client.post("/api/v1/tokens", json={"name": "lms", "scopes": ["read", "publish"]})
    assert made.status_code == 201, made.json
    assert made.json["token"].startswith("ihk_")
    assert made.json["scopes"] == ["read", "publish"]
    assert made.json["revoked_at"] is None and made.json["expires_at"] is None
    listed = client.get("/api/v1/tokens").json
    assert [t["name"] for t in listed] == ["lms"] and "token" not in listed[0]
    one = client.get(f"/api/v1/tokens/{made.json['id']}").json
    assert one["id"] == made.json["id"] and "token" not in one
    assert client.raw.get("/api/v1/runs", headers=bearer(made.json["token"])).status_code == 200


def test_bad_token_requests_are_422_naming_the_field(client):
    for body, field in [
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x"}, "scopes"),
        ({"scopes": ["read"]}, "name"),
        ({"name": "x", "scopes": ["read"], "token": "ihk_mine"}, "token"),
        ({"name": "x", "scopes": ["read"], "revoked_at": None}, "revoked_at"),
    ]:
        answer = client.post("/api/v1/tokens", json=body)
        assert answer.status_code == 422, (body, answer.json)
        assert field in answer.json["errors"]["json"], answer.json
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    answer = client.post(
        "/api/v1/tokens", json={"name": "x", "scopes": ["read"], "expires_at": past}
    )
    assert answer.status_code == 422 and "expires_at" in answer.json["errors"]["json"]
    assert client.get("/api/v1/tokens").json == []


def test_a_revoked_token_is_refused_from_its_next_request(client):
    made = client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["write"]}).json
    assert client.raw.get("/api/v1/endpoints", headers=bearer(made["token"])).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{made['id']}")
    assert revoked.status_code == 200 and revoked.json["revoked_at"] is not None
    refused = client.raw.get("/api/v1/endpoints", headers=bearer(made["token"]))
    assert refused.status_code == 401 and refused.json["message"] == "token revoked"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    again = client.delete(f"/api/v1/tokens/{made['id']}")
    assert again.status_code == 409
    assert client.delete("/api/v1/tokens/tok_none").status_code == 404
    assert client.get("/api/v1/tokens").json[0]["revoked_at"] is not None  # kept, for the record


def test_an_expired_token_is_refused(client, platform):
    from sqlalchemy import update

    from ihook.models import ApiToken

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = client.post(
        "/api/v1/tokens", json={"name": "temp", "scopes": ["read"], "expires_at": soon}
    ).json
    assert client.raw.get("/api/v1/runs", headers=bearer(made["token"])).status_code == 200
    with platform.db.session() as session:  # an hour goes by
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(ApiToken).where(ApiToken.id == made["id"]).values(expires_at=past))
    refused = client.raw.get("/api/v1/runs", headers=bearer(made["token"]))
    assert refused.status_code == 401 and refused.json["message"] == "token expired"


def test_only_admin_tokens_manage_tokens(client):
    write = client.post("/api/v1/tokens", json={"name": "w", "scopes": ["write"]}).json["token"]
    for method, path in [("get", "/api/v1/tokens"), ("post", "/api/v1/tokens")]:
        answer = getattr(client.raw, method)(path, headers=bearer(write), json={})
        assert answer.status_code == 403, answer.json
        assert answer.json["message"] == "this token lacks the 'admin' scope (it has: write)"
    admin = client.post("/api/v1/tokens", json={"name": "a", "scopes": ["admin"]}).json["token"]
    assert client.raw.get("/api/v1/tokens", headers=bearer(admin)).status_code == 200


def test_the_cli_creates_lists_and_revokes(settings):
    env = settings_env(settings)

    def ihook(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ihook", "token", *args],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    token = ihook("create", "--name", "reporting", "--scope", "read", "--expires-in-days", "30")
    assert token.startswith("ihk_")
    (line,) = ihook("list").splitlines()
    token_id, name, scopes, used, expiry, state = line.split("\t")
    assert (name, scopes, used, state) == ("reporting", "read", "never used", "active")
    assert expiry.startswith("expires ")
    assert ihook("revoke", token_id) == f"revoked {token_id}"
    assert ihook("list").split("\t")[-1].startswith("revoked ")
