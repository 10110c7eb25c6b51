"""``ihook secrets reencrypt``: after it, the old key can go."""

from __future__ import annotations

import subprocess
import sys

from ihook.platform import Platform
from ihook.services.connectors import full_config, get_connector
from ihook.services.endpoints import current_secrets, get_endpoint
from ihook.services.subscriptions import get_subscription, request_auth, signing_secrets
from tests.conftest import settings_env


def test_reencrypt_moves_every_secret_to_the_new_key(client, settings):
    endpoint = client.post("/api/v1/endpoints", json={"name": "b", "auth": {"type": "bearer"}}).json
    rotated = client.post(f"/api/v1/endpoints/{endpoint['id']}/rotate-secret", json={}).json
    connector = client.post(
        "/api/v1/connectors",
        json={
            "name": "crm",
            "kind": "http",
            "config": {
                "base_url": "https://crm.example",
                "auth": {"type": "bearer", "token": "t0k3n"},
            },
        },
    ).json
    subscription = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "crm-out",
            "url": "https://127.0.0.1:8443/in",
            "event_types": ["record.*"],
            "auth": {"type": "bearer", "token": "out-t0k3n"},
            "headers": {"X-Tenant": "acme"},
        },
    ).json
    rotated_sub = client.post(
        f"/api/v1/subscriptions/{subscription['id']}/rotate-secret", json={}
    ).json

    both = settings.replace(secret_keys=("new-key", *settings.secret_keys))
    done = subprocess.run(
        [sys.executable, "-m", "ihook", "secrets", "reencrypt"],
        env=settings_env(both),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # the endpoint's secret and previous secret, the connector's, and the subscription's
    # signing secret, previous signing secret and auth/header secrets
    assert "re-encrypted 6 secret(s)" in done.stdout

    only_new = Platform(settings.replace(secret_keys=("new-key",)))
    with only_new.db.session() as session:
        assert current_secrets(get_endpoint(session, endpoint["id"]), only_new.vault) == [
            rotated["secret"],
            endpoint["secret"],
        ]
        config = full_config(get_connector(session, connector["id"]), only_new.vault)
        sub = get_subscription(session, subscription["id"])
        assert signing_secrets(sub, only_new.vault) == [
            rotated_sub["secret"],
            subscription["secret"],
        ]
        assert request_auth(sub, only_new.vault) == {
            "X-Tenant": "acme",
            "Authorization": "Bearer out-t0k3n",
        }
    assert config["auth"]["token"] == "t0k3n"
    only_new.close()


def test_reencrypt_with_no_key_that_reads_changes_nothing(client, settings):
    client.post("/api/v1/endpoints", json={"name": "b", "auth": {"type": "bearer"}})
    done = subprocess.run(
        [sys.executable, "-m", "ihook", "secrets", "reencrypt"],
        env=settings_env(settings.replace(secret_keys=("unrelated",))),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "cannot decrypt: wrong key or corrupted value; nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
