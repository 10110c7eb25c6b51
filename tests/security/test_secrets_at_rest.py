"""Secrets at rest: a database dump holds none in plaintext, and a key rotation re-encrypts
every row so that the old key can be dropped.

Every kind of secret ihook stores is made through the API: endpoint secrets of each auth
kind (generated ``whsec_`` ones and one supplied), a rotated endpoint secret, subscription
signing secrets and their auth and custom header values, connector passwords and tokens,
an SQL connector's URL with its password, and an API token. The dump is the database's own:
``pg_dump`` for PostgreSQL, SQLite's ``iterdump`` for a SQLite file.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import json
import shutil
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from ihook.app import create_app
from ihook.models import Connector
from ihook.platform import Platform
from ihook.secrets import SecretError, Vault
from ihook.services.connectors import full_config
from ihook.services.rekey import ENCRYPTED
from ihook.services.tokens import create_token
from tests.conftest import ApiClient, settings_env
from tests.support import signed_headers

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

NEW_KEY = "the-next-secret-key"


def make_every_secret(client, platform, receiver_url: str) -> dict[str, object]:
    """Create one of each secret-bearing thing; the plaintext secrets and the objects."""
    plain: list[str] = []
    endpoints = {}
    for name, auth in {
        "hmac": {"type": "hmac", "scheme": "standard-webhooks"},
        "github": {"type": "hmac", "scheme": "github"},
        "basic": {"type": "basic", "username": "lms"},
        "bearer": {"type": "bearer"},
        "header": {"type": "header", "header": "X-Api-Key", "secret": "supplied-key-7f3a9c2e"},
    }.items():
        made = client.post("/api/v1/endpoints", json={"name": name, "auth": auth})
        assert made.status_code == 201, made.json
        endpoints[name] = made.json
        plain += [made.json["secret"], made.json["ingest_url"].rsplit("/", 1)[1]]
    rotated = client.post(f"/api/v1/endpoints/{endpoints['bearer']['id']}/rotate-secret", json={})
    plain.append(rotated.json["secret"])
    endpoints["bearer"]["secret"] = rotated.json["secret"]

    subscription = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "crm",
            "environment": "sandbox",  # plain http to the local receiver
            "url": receiver_url,
            "event_types": ["member.updated"],
            "auth": {"type": "basic", "username": "crm", "password": "crm-password-5b1d"},
            "headers": {"X-Tenant-Key": "tenant-key-0c9e4a"},
        },
    )
    assert subscription.status_code == 201, subscription.json
    plain += [subscription.json["secret"], "crm-password-5b1d", "tenant-key-0c9e4a"]

    connectors = [
        {
            "name": "crm-api",
            "kind": "http",
            "config": {
                "base_url": receiver_url,
                "auth": {"type": "bearer", "token": "connector-token-61d2f8"},
                "headers": {"X-Partner-Key": "partner-key-a7e3d0"},
            },
        },
        {
            "name": "mailer",
            "kind": "smtp",
            "config": {
                "host": "smtp.example.org",
                "username": "ihook",
                "password": "smtp-password-93ab47",
                "from_address": "ihook@example.org",
            },
        },
        {
            "name": "warehouse",
            "kind": "sql",
            "config": {"url": "postgresql://dw:dw-password-2e8c51@db.example.org/dw"},
        },
    ]
    for connector in connectors:
        made = client.post("/api/v1/connectors", json=connector)
        assert made.status_code == 201, made.json
    plain += [
        "connector-token-61d2f8",
        "partner-key-a7e3d0",
        "smtp-password-93ab47",
        "dw-password-2e8c51",
    ]

    with platform.db.session() as session:
        plain.append(create_token(session, "ci")[1])
    return {"plain": plain, "endpoints": endpoints, "subscription": subscription.json}


def dump(settings) -> str:
    """The whole database as its own dump tool writes it."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database) as conn:
            return "\n".join(conn.iterdump())
    pg_dump = shutil.which("pg_dump") or max(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))
    out = subprocess.run(
        [
            pg_dump,
            "--no-owner",
            "--data-only",
            "--inserts",
            "-h",
            url.host,
            "-p",
            str(url.port),
            "-U",
            url.username,
            url.database,
        ],
        env={"PGPASSWORD": url.password or ""},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


def encrypted_values(platform) -> list[str]:
    """Every value stored encrypted, from every encrypted column."""
    values = []
    with platform.db.read() as session:
        for model, columns in ENCRYPTED:
            for row in session.query(model):
                values += [getattr(row, column) for column in columns if getattr(row, column)]
    return values


def test_a_database_dump_holds_no_plaintext_secret(client, platform, settings, httpserver):
    made = make_every_secret(client, platform, httpserver.url_for("/crm"))
    text = dump(settings)
    assert "INSERT INTO" in text and "crm-api" in text  # the dump holds the rows
    for secret in made["plain"]:
        assert secret not in text, f"{secret[:6]}… is in the dump"
    assert "whsec_" not in text
    for secret in ("crm-password-5b1d", "connector-token-61d2f8"):  # nor encoded
        assert base64.b64encode(f"crm:{secret}".encode()).decode() not in text


def test_key_rotation_reencrypts_every_row_and_the_old_key_can_go(
    client, platform, settings, httpserver
):
    made = make_every_secret(client, platform, httpserver.url_for("/crm"))
    before = encrypted_values(platform)
    assert len(before) >= 9

    rotated = settings.replace(secret_keys=(NEW_KEY, *settings.secret_keys))
    done = subprocess.run(
        [sys.executable, "-m", "ihook", "secrets", "reencrypt"],
        env=settings_env(rotated),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"re-encrypted {len(before)} secret(s) under the first key"
    after = encrypted_values(platform)
    assert len(after) == len(before) and not set(after) & set(before)
    new, old = Vault((NEW_KEY,)), Vault(settings.secret_keys)
    for token in after:
        new.decrypt(token)  # every row now under the new key alone
        with pytest.raises(SecretError):
            old.decrypt(token)

    # The old key dropped: an install that knows only the new key reads every secret.
    only_new = Platform(settings.replace(secret_keys=(NEW_KEY,)))
    try:
        app = create_app(platform=only_new)
        new_client = ApiClient(app.test_client())
        endpoint = made["endpoints"]["hmac"]
        body = json.dumps({"member": "m-1"}).encode()
        path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
        headers = signed_headers(endpoint["secret"], body, "msg_after_rotation")
        assert new_client.raw.post(path, data=body, headers=headers).status_code == 202
        with only_new.db.read() as session:
            configs = {
                row.name: full_config(row, only_new.vault) for row in session.query(Connector)
            }
        assert configs["crm-api"]["auth"]["token"] == "connector-token-61d2f8"
        assert configs["crm-api"]["headers"] == {"X-Partner-Key": "partner-key-a7e3d0"}
        assert configs["mailer"]["password"] == "smtp-password-93ab47"
        assert "dw-password-2e8c51" in configs["warehouse"]["url"]

        httpserver.expect_request("/crm").respond_with_data("{}", content_type="application/json")
        sub = made["subscription"]
        test = new_client.post(f"/api/v1/subscriptions/{sub['id']}/test", json={})
        assert test.status_code == 200 and test.json["status_code"] == 200, test.json
        request, _ = httpserver.log[-1]
        pair = base64.b64encode(b"crm:crm-password-5b1d").decode()
        assert request.headers["Authorization"] == f"Basic {pair}"
        assert request.headers["X-Tenant-Key"] == "tenant-key-0c9e4a"
        assert _signature_valid(sub["secret"], request)
    finally:
        only_new.close()


def _signature_valid(secret: str, request) -> bool:
    """Whether ``request`` carries a Standard Webhooks signature made with ``secret``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, signed + request.get_data(), hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    return expected in request.headers["webhook-signature"].split()
