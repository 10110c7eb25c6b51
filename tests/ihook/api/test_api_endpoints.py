"""``/api/v1/endpoints``: create, read, change, rotate, delete, bind (DESIGN.md §3–§5)."""

from __future__ import annotations

import hashlib
import json
from http import HTTPStatus

import pytest
from sqlalchemy import text

from tests.support import completion, signed_headers

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

HMAC = {"type": "hmac", "scheme": "standard-webhooks"}
STEPS = [{"id": "shape", "type": "transform", "mapping": {"member": "data.learner.external_id"}}]


def create(client, name: str = "lms", **fields):
    answer = client.post("/api/v1/endpoints", json={"name": name, **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def key_of(endpoint: dict) -> str:
    return endpoint["ingest_url"].rsplit("/", 1)[1]


def hook(endpoint: dict) -> str:
    return "/hooks/" + key_of(endpoint)


def post_signed(client, path: str, secret: str, msg_id: str):
    body = json.dumps(completion()).encode()
    return client.raw.post(path, data=body, headers=signed_headers(secret, body, msg_id))


def assert_error(answer, status: int) -> dict:
    """The answer is ``status`` in flask-smorest's error shape; returns its body."""
    assert answer.status_code == status, (answer.status_code, answer.get_data(as_text=True))
    body = answer.json
    assert set(body) <= {"code", "status", "message", "errors"}
    assert body["code"] == status
    assert body["status"] == HTTPStatus(status).phrase
    assert isinstance(body["message"], str) and body["message"]
    if status == 422:
        assert body["errors"]["json"]
    return body


def field_errors(answer) -> dict:
    """The ``errors["json"]`` of a 422."""
    body = assert_error(answer, 422)
    return body["errors"]["json"]


@both_backends
def test_create_answers_ingest_url_and_secret_once(client, platform):
    created = client.post(
        "/api/v1/endpoints", json={"name": "lms", "description": "LMS", "auth": HMAC}
    )
    assert created.status_code == 201
    body = created.json
    assert body["id"].startswith("ep_")
    assert body["name"] == "lms" and body["description"] == "LMS" and body["enabled"] is True
    assert body["auth"] == HMAC
    assert body["ingest_url"].startswith(platform.settings.public_url + "/hooks/")
    assert body["key_hint"] == key_of(body)[:6]
    assert body["secret"].startswith("whsec_")
    assert body["dedupe"] == 'headers."webhook-id" || headers."svix-id"'
    assert body["workflows"] == []
    assert post_signed(client, hook(body), body["secret"], "msg_1").status_code == 202

    again = client.get(f"/api/v1/endpoints/{body['id']}").json
    assert "secret" not in again and "ingest_url" not in again
    assert again["key_hint"] == body["key_hint"]


@both_backends
def test_user_supplied_secret_is_honoured(client):
    supplied = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    hmac = create(client, "signed", auth={**HMAC, "secret": supplied})
    assert hmac["secret"] == supplied
    assert "secret" not in hmac["auth"]
    assert post_signed(client, hook(hmac), supplied, "msg_s").status_code == 202

    header = create(
        client, "keyed", auth={"type": "header", "header": "X-Api-Key", "secret": "my-own-key-1"}
    )
    assert header["secret"] == "my-own-key-1"
    path = hook(header)
    assert client.raw.post(path, json={}, headers={"X-Api-Key": "my-own-key-1"}).status_code == 202
    assert client.raw.post(path, json={}, headers={"X-Api-Key": "my-own-key-2"}).status_code == 401


@both_backends
def test_list_get_patch_and_delete(client):
    first = create(client, "a-one", auth={"type": "none"})
    second = create(client, "b-two", auth={"type": "bearer"})

    listed = client.get("/api/v1/endpoints")
    assert listed.status_code == 200
    assert [e["name"] for e in listed.json] == ["a-one", "b-two"]
    assert [e["id"] for e in listed.json] == [first["id"], second["id"]]

    got = client.get(f"/api/v1/endpoints/{second['id']}")
    assert got.status_code == 200
    assert got.json["auth"] == {"type": "bearer"}

    patched = client.patch(
        f"/api/v1/endpoints/{first['id']}",
        json={
            "description": "changed",
            "enabled": False,
            "allow_ips": ["10.0.0.0/8"],
            "rate_limit": {"requests": 5, "per_seconds": 10},
        },
    )
    assert patched.status_code == 200, patched.json
    assert patched.json["description"] == "changed"
    assert patched.json["enabled"] is False
    assert patched.json["allow_ips"] == ["10.0.0.0/8"]
    assert patched.json["rate_limit"] == {"requests": 5, "per_seconds": 10}
    assert patched.json["name"] == "a-one"  # untouched fields keep their values
    reread = client.get(f"/api/v1/endpoints/{first['id']}").json
    assert reread["description"] == "changed" and reread["enabled"] is False
    assert client.raw.post(hook(first), json={}).status_code == 404

    deleted = client.delete(f"/api/v1/endpoints/{first['id']}")
    assert deleted.status_code == 204
    assert_error(client.get(f"/api/v1/endpoints/{first['id']}"), 404)
    assert [e["id"] for e in client.get("/api/v1/endpoints").json] == [second["id"]]


@both_backends
def test_no_answer_after_creation_carries_the_secret_or_the_key(client):
    auths = [
        HMAC,
        {"type": "hmac", "scheme": "github"},
        {"type": "basic", "username": "lms"},
        {"type": "bearer"},
        {"type": "header", "header": "X-Api-Key", "secret": "given-secret-123"},
    ]
    made = [create(client, f"ep-{i}", auth=auth) for i, auth in enumerate(auths)]
    leaks = [(e["secret"], key_of(e)) for e in made]
    assert all(secret and key for secret, key in leaks)

    answers = [client.get("/api/v1/endpoints")]
    for e in made:
        answers.append(client.get(f"/api/v1/endpoints/{e['id']}"))
        answers.append(client.patch(f"/api/v1/endpoints/{e['id']}", json={"description": "x"}))
    for answer in answers:
        assert answer.status_code == 200
        body = answer.get_data(as_text=True)
        for secret, key in leaks:
            assert secret not in body
            assert key not in body
        items = answer.json if isinstance(answer.json, list) else [answer.json]
        assert all("secret" not in e and "ingest_url" not in e for e in items)


@both_backends
def test_secret_and_key_are_not_stored_in_plain_text(client, platform):
    made = create(client, "lms", auth={"type": "basic", "username": "lms"})
    secret, key = made["secret"], key_of(made)
    rotated = client.post(
        f"/api/v1/endpoints/{made['id']}/rotate-secret", json={"grace_seconds": 60}
    ).json

    with platform.db.engine.connect() as conn:
        row = dict(conn.execute(text("SELECT * FROM endpoints")).one()._mapping)
    stored = json.dumps(row, default=str)
    for plain in (secret, key, rotated["secret"]):
        assert plain not in stored
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    # They are the secrets encrypted, not lost: the vault gives them back.
    assert platform.vault.decrypt(row["secret_enc"]) == rotated["secret"]
    assert platform.vault.decrypt(row["previous_secret_enc"]) == secret


@both_backends
def test_rotated_secret_keeps_the_old_one_during_grace_only(client):
    ep = create(client, "lms", auth=HMAC)
    path, old = hook(ep), ep["secret"]
    assert post_signed(client, path, old, "msg_0").status_code == 202

    rotated = client.post(f"/api/v1/endpoints/{ep['id']}/rotate-secret", json={})
    assert rotated.status_code == 200
    new = rotated.json["secret"]
    assert new.startswith("whsec_") and new != old
    assert "ingest_url" not in rotated.json  # the key did not change
    assert post_signed(client, path, old, "msg_1").status_code == 202
    assert post_signed(client, path, new, "msg_2").status_code == 202

    hard = client.post(f"/api/v1/endpoints/{ep['id']}/rotate-secret", json={"grace_seconds": 0})
    assert hard.status_code == 200
    newest = hard.json["secret"]
    assert newest not in (old, new)
    assert post_signed(client, path, new, "msg_3").status_code == 401
    assert post_signed(client, path, old, "msg_4").status_code == 401
    assert post_signed(client, path, newest, "msg_5").status_code == 202


@both_backends
def test_rotate_key_gives_a_new_url_and_the_old_one_is_404(client):
    ep = create(client, "open", auth={"type": "none"})
    assert client.raw.post(hook(ep), json={"n": 1}).status_code == 202

    rotated = client.post(f"/api/v1/endpoints/{ep['id']}/rotate-secret", json={"rotate_key": True})
    assert rotated.status_code == 200
    body = rotated.json
    assert body["ingest_url"] != ep["ingest_url"]
    assert "secret" not in body  # auth none has no secret to rotate
    assert body["key_hint"] == key_of(body)[:6]

    gone = client.raw.post(hook(ep), json={"n": 2})
    assert gone.status_code == 404
    assert gone.json["message"] == "no such endpoint"
    assert client.raw.post(hook(body), json={"n": 3}).status_code == 202


def test_rotate_with_a_given_secret_uses_it(client):
    ep = create(client, "t", auth={"type": "bearer"})
    rotated = client.post(
        f"/api/v1/endpoints/{ep['id']}/rotate-secret",
        json={"secret": "chosen-secret-1", "grace_seconds": 0},
    )
    assert rotated.json["secret"] == "chosen-secret-1"
    ok = {"Authorization": "Bearer chosen-secret-1"}
    old = {"Authorization": f"Bearer {ep['secret']}"}
    assert client.raw.post(hook(ep), json={}, headers=ok).status_code == 202
    assert client.raw.post(hook(ep), json={}, headers=old).status_code == 401


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"name": "has space"}, ["name"]),
        ({"name": "-dash-first"}, ["name"]),
        ({"name": "x" * 101}, ["name"]),
        ({"auth": {"type": "hmac"}}, ["auth", "scheme"]),
        ({"auth": {"type": "hmac", "scheme": "md5"}}, ["auth", "scheme"]),
        ({"auth": {"type": "basic"}}, ["auth", "username"]),
        ({"auth": {"type": "header"}}, ["auth", "header"]),
        ({"auth": {"type": "hmac", "scheme": "generic"}}, ["auth", "header"]),
        ({"auth": {"type": "magic"}}, ["auth", "type"]),
        ({"auth": {"type": "bearer", "secret": "short"}}, ["auth", "secret"]),
        ({"allow_ips": ["10.0.0.0/33"]}, ["allow_ips"]),
        ({"allow_ips": ["not-an-ip"]}, ["allow_ips"]),
        ({"schema": {"type": "nonsense"}}, ["schema"]),
        ({"dedupe": "data.[["}, ["dedupe"]),
        ({"event_type": "data.("}, ["event_type"]),
        ({"workflows": ["wf_nope"]}, ["workflows"]),
        ({"rate_limit": {"requests": 0, "per_seconds": 1}}, ["rate_limit", "requests"]),
        ({"response_mode": "later"}, ["response_mode"]),
        ({"surprise": 1}, ["surprise"]),
    ],
    ids=lambda v: json.dumps(v)[:40] if isinstance(v, dict) else None,
)
def test_invalid_endpoint_is_422_naming_the_field_and_nothing_is_saved(client, fields, path):
    body = {"name": "ok", **fields}
    errors = field_errors(client.post("/api/v1/endpoints", json=body))
    found = errors
    for part in path:
        assert part in found, errors
        found = found[part]
    assert found and all(isinstance(m, str) and m for m in found)
    assert client.get("/api/v1/endpoints").json == []


def test_error_messages_say_what_is_wrong(client):
    cidr = field_errors(client.post("/api/v1/endpoints", json={"name": "a", "allow_ips": ["x/1"]}))
    assert "'x/1' is not an address or CIDR" in cidr["allow_ips"][0]
    schema = field_errors(
        client.post("/api/v1/endpoints", json={"name": "a", "schema": {"type": 5}})
    )
    assert schema["schema"][0].startswith("invalid JSON Schema")
    dedupe = field_errors(client.post("/api/v1/endpoints", json={"name": "a", "dedupe": "a.["}))
    assert dedupe["dedupe"][0].startswith("invalid jmespath")
    unknown = field_errors(
        client.post("/api/v1/endpoints", json={"name": "a", "workflows": ["wf_missing"]})
    )
    assert unknown["workflows"] == ["no workflow wf_missing"]


def test_every_422_has_a_message(client):
    service_level = client.post("/api/v1/endpoints", json={"name": "a", "dedupe": "a.["})
    assert service_level.json["message"] == "invalid endpoint"
    schema_level = client.post("/api/v1/endpoints", json={"name": "has space"})
    assert schema_level.status_code == 422
    assert schema_level.json["message"]


def test_patch_is_validated_too(client):
    ep = create(client, "lms", auth=HMAC)
    url = f"/api/v1/endpoints/{ep['id']}"
    assert "allow_ips" in field_errors(client.patch(url, json={"allow_ips": ["1.2.3.4/99"]}))
    assert "dedupe" in field_errors(client.patch(url, json={"dedupe": "]["}))
    assert "workflows" in field_errors(client.patch(url, json={"workflows": ["wf_nope"]}))
    # auth type and secret change only through rotate-secret
    assert "auth" in field_errors(client.patch(url, json={"auth": {"type": "none"}}))
    assert "auth" in field_errors(
        client.patch(url, json={"auth": {**HMAC, "secret": "whsec_c2VjcmV0LXNlY3JldA=="}})
    )
    after = client.get(url).json
    assert after["auth"] == HMAC and after["allow_ips"] == [] and after["workflows"] == []
    assert after["dedupe"] == 'headers."webhook-id" || headers."svix-id"'


@both_backends
def test_duplicate_endpoint_name_is_409(client):
    create(client, "lms")
    body = assert_error(client.post("/api/v1/endpoints", json={"name": "lms"}), 409)
    assert body["errors"]["json"] == {"name": ["already taken"]}
    assert "lms" in body["message"]
    other = create(client, "other")
    renamed = client.patch(f"/api/v1/endpoints/{other['id']}", json={"name": "lms"})
    assert_error(renamed, 409)
    assert client.get(f"/api/v1/endpoints/{other['id']}").json["name"] == "other"
    assert len(client.get("/api/v1/endpoints").json) == 2


def test_unknown_endpoint_id_is_404(client):
    url = "/api/v1/endpoints/ep_missing"
    for answer in (
        client.get(url),
        client.patch(url, json={"description": "x"}),
        client.delete(url),
        client.post(f"{url}/rotate-secret", json={}),
    ):
        body = assert_error(answer, 404)
        assert body["message"] == "endpoint ep_missing not found"


@both_backends
def test_binding_from_the_endpoint_shows_on_the_workflow(client):
    wf = client.post("/api/v1/workflows", json={"name": "shape", "steps": STEPS}).json
    assert wf["trigger"] == {"manual": True}

    ep = create(client, "crm-in", auth={"type": "none"}, workflows=[wf["id"]])
    assert ep["workflows"] == [wf["id"]]
    seen = client.get(f"/api/v1/workflows/{wf['id']}").json
    assert seen["trigger"] == {"endpoint": "crm-in"}
    assert seen["endpoints"] == ["crm-in"]
    accepted = client.raw.post(hook(ep), json=completion())
    assert accepted.status_code == 202
    assert len(accepted.json["runs"]) == 1

    unbound = client.patch(f"/api/v1/endpoints/{ep['id']}", json={"workflows": []})
    assert unbound.json["workflows"] == []
    assert client.get(f"/api/v1/workflows/{wf['id']}").json["trigger"] == {"manual": True}
    assert client.raw.post(hook(ep), json=completion()).json["runs"] == []


@both_backends
def test_binding_from_the_workflow_shows_on_the_endpoint(client):
    ep = create(client, "lms", auth={"type": "none"})
    other = create(client, "shop", auth={"type": "none"})
    wf = client.post(
        "/api/v1/workflows", json={"name": "shape", "trigger": {"endpoint": "lms"}, "steps": STEPS}
    )
    assert wf.status_code == 201, wf.json
    assert wf.json["trigger"] == {"endpoint": "lms"}
    assert client.get(f"/api/v1/endpoints/{ep['id']}").json["workflows"] == [wf.json["id"]]
    assert client.get(f"/api/v1/endpoints/{other['id']}").json["workflows"] == []
    listed = {e["name"]: e["workflows"] for e in client.get("/api/v1/endpoints").json}
    assert listed == {"lms": [wf.json["id"]], "shop": []}

    # Deleting the endpoint drops the binding from the workflow's side.
    assert client.delete(f"/api/v1/endpoints/{ep['id']}").status_code == 204
    after = client.get(f"/api/v1/workflows/{wf.json['id']}").json
    assert after["endpoints"] == []
    assert after["trigger"] == {"manual": True}


def test_patch_auth_without_a_type_is_422(client):
    ep = create(client, "lms", auth=HMAC)
    answer = client.patch(f"/api/v1/endpoints/{ep['id']}", json={"auth": {"scheme": "github"}})
    assert "auth" in field_errors(answer)


def test_patch_half_a_rate_limit_is_422_and_the_endpoint_keeps_working(client):
    ep = create(client, "open", auth={"type": "none"})
    answer = client.patch(f"/api/v1/endpoints/{ep['id']}", json={"rate_limit": {"requests": 5}})
    assert field_errors(answer)["rate_limit"]["per_seconds"]
    assert client.raw.post(hook(ep), json={}).status_code == 202


def test_standard_webhooks_secret_must_be_base64(client):
    answer = client.post(
        "/api/v1/endpoints",
        json={"name": "lms", "auth": {**HMAC, "secret": "plain-password-1"}},
    )
    assert "secret" in field_errors(answer)["auth"]
