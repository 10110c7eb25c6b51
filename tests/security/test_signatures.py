"""Signed webhooks through ``POST /hooks/{key}``: what gets in, what is refused.

Every case goes through the whole ingress (routing, auth, parsing, storing) of the real
app, and a refused request must leave nothing behind but its rejection log row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import func, select

from ihook.models import Event, Rejection
from tests.support import signed_headers

GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
"""GitHub's published test vector ("Validating webhook deliveries", GitHub Docs)."""

GENERIC_AUTH = {
    "type": "hmac",
    "scheme": "generic",
    "header": "X-Signature",
    "algorithm": "sha512",
    "encoding": "base64",
    "prefix": "sha512=",
}
BODY = json.dumps({"event": "course.completed", "learner": "m-1"}).encode()


def _create(client, name: str, auth: dict) -> dict:
    answer = client.post("/api/v1/endpoints", json={"name": name, "auth": auth})
    assert answer.status_code == 201, answer.json
    return answer.json


def _path(endpoint: dict) -> str:
    return "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]


def _count(platform, model) -> int:
    with platform.db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _github_headers(secret: str, body: bytes) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "content-type": "application/json"}


def _generic_headers(secret: str, body: bytes) -> dict:
    import base64

    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha512).digest()).decode()
    return {"X-Signature": f"sha512={digest}", "content-type": "application/json"}


def test_github_published_test_vector_authenticates(client):
    endpoint = _create(client, "gh", {"type": "hmac", "scheme": "github", "secret": GITHUB_SECRET})
    path = _path(endpoint)
    # The vector's body is plain text: it passes authentication (checked first), then is
    # refused for its content type, not for its signature.
    headers = {"X-Hub-Signature-256": GITHUB_SIGNATURE, "content-type": "text/plain"}
    answer = client.raw.post(path, data=GITHUB_BODY, headers=headers)
    assert answer.status_code == 415, answer.json
    assert "content type 'text/plain' is not accepted" in answer.json["message"]
    wrong = {**headers, "X-Hub-Signature-256": GITHUB_SIGNATURE[:-1] + "0"}
    refused = client.raw.post(path, data=GITHUB_BODY, headers=wrong)
    assert refused.status_code == 401
    assert refused.json["message"].startswith("authentication failed")
    # The same secret over a JSON body is accepted.
    accepted = client.raw.post(path, data=BODY, headers=_github_headers(GITHUB_SECRET, BODY))
    assert accepted.status_code == 202, accepted.json


SCHEMES = {
    "standard-webhooks": (
        {"type": "hmac", "scheme": "standard-webhooks"},
        lambda secret, body: signed_headers(secret, body, hashlib.sha256(body).hexdigest()[:24]),
        "webhook-signature",
    ),
    "github": ({"type": "hmac", "scheme": "github"}, _github_headers, "X-Hub-Signature-256"),
    "generic": (GENERIC_AUTH, _generic_headers, "X-Signature"),
}


@pytest.mark.parametrize("scheme", list(SCHEMES))
@pytest.mark.parametrize("attack", ["tampered body", "wrong secret", "missing header"])
def test_forged_requests_are_401_and_store_nothing(client, platform, scheme, attack):
    auth, sign, header = SCHEMES[scheme]
    endpoint = _create(client, f"ep-{scheme}", auth)
    path, secret = _path(endpoint), endpoint["secret"]
    assert client.raw.post(path, data=BODY, headers=sign(secret, BODY)).status_code == 202
    events, rejections = _count(platform, Event), _count(platform, Rejection)
    headers, body = sign(secret, BODY), BODY
    if attack == "tampered body":
        body = BODY.replace(b"m-1", b"m-2")
    elif attack == "wrong secret":
        other = _create(client, f"other-{scheme}", auth)["secret"]
        headers = sign(other, BODY)
    else:
        headers = {k: v for k, v in headers.items() if k != header}
    answer = client.raw.post(path, data=body, headers=headers)
    assert answer.status_code == 401, answer.json
    assert answer.json["message"].startswith("authentication failed: ")
    assert secret not in json.dumps(answer.json)
    assert _count(platform, Event) == events  # nothing stored
    assert _count(platform, Rejection) == rejections + 1  # but the refusal is logged


@pytest.mark.parametrize(("offset", "status"), [(-301, 401), (301, 401), (-299, 202), (299, 202)])
def test_standard_webhooks_timestamp_tolerance_is_300_seconds(client, offset, status):
    endpoint = _create(client, "ts", {"type": "hmac", "scheme": "standard-webhooks"})
    headers = signed_headers(endpoint["secret"], BODY, f"msg_{offset}", int(time.time()) + offset)
    answer = client.raw.post(_path(endpoint), data=BODY, headers=headers)
    assert answer.status_code == status, answer.json
    if status == 401:
        assert "timestamp" in answer.json["message"]


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_either_of_two_rotated_secrets_is_accepted(client, scheme):
    auth, sign, _ = SCHEMES[scheme]
    endpoint = _create(client, f"rot-{scheme}", auth)
    old = endpoint["secret"]
    rotated = client.post(
        f"/api/v1/endpoints/{endpoint['id']}/rotate-secret", json={"grace_seconds": 3600}
    )
    assert rotated.status_code == 200, rotated.json
    new = rotated.json["secret"]
    assert new != old
    path = _path(endpoint)
    for n, secret in enumerate((old, new, old)):
        body = json.dumps({"n": n, "scheme": scheme}).encode()
        answer = client.raw.post(path, data=body, headers=sign(secret, body))
        assert answer.status_code == 202, (n, answer.json)
    # Without a grace period the old secret stops at once.
    again = client.post(
        f"/api/v1/endpoints/{endpoint['id']}/rotate-secret", json={"grace_seconds": 0}
    )
    body = json.dumps({"n": "late"}).encode()
    assert client.raw.post(path, data=body, headers=sign(new, body)).status_code == 401
    newest = again.json["secret"]
    assert client.raw.post(path, data=body, headers=sign(newest, body)).status_code == 202
