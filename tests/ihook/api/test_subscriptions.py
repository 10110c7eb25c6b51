"""``/api/v1/subscriptions``: CRUD, URL rules, the SSRF guard, secrets shown once (§3, §6, §8)."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from sqlalchemy import text

from ihook.models import utcnow
from ihook.services import subscriptions as service
from tests.conftest import client_for

pytestmark = pytest.mark.usefixtures("public_dns")

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

URL = "https://hooks.example.com/in"
BASE = {"name": "crm", "url": URL, "event_types": ["record.*"]}
PATH = "/api/v1/subscriptions"


def create(client, **fields):
    answer = client.post(PATH, json={**BASE, **fields})
    assert answer.status_code == 201, answer.json
    return answer.json


def field_errors(answer) -> dict:
    """The ``errors["json"]`` of a 422 in flask-smorest's error shape."""
    assert answer.status_code == 422, (answer.status_code, answer.get_data(as_text=True))
    body = answer.json
    assert body["code"] == 422 and body["status"] == HTTPStatus(422).phrase
    assert isinstance(body["message"], str) and body["message"]
    return body["errors"]["json"]


@both_backends
def test_create_answers_the_signing_secret_once(client, platform):
    body = create(client, description="to the CRM")
    assert body["id"].startswith("sub_")
    assert body["secret"].startswith("whsec_")
    assert body["name"] == "crm" and body["description"] == "to the CRM"
    assert body["enabled"] is True and body["environment"] == "live"
    assert body["url"] == URL and body["event_types"] == ["record.*"]
    assert body["auth"] == {"type": "none"} and body["headers"] == {}
    assert body["retry_schedule"] == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert body["filter"] is None and body["mapping"] is None and body["fixed_data"] is None
    assert body["error_emails"] == []
    assert body["disabled_reason"] is None and body["failing_since"] is None
    assert body["created_at"] and body["updated_at"]

    got = client.get(f"{PATH}/{body['id']}")
    assert got.status_code == 200
    assert "secret" not in got.json
    assert {k: v for k, v in body.items() if k != "secret"} == got.json
    assert [s["id"] for s in client.get(PATH).json] == [body["id"]]

    with platform.db.engine.connect() as conn:
        row = dict(conn.execute(text("SELECT * FROM subscriptions")).one()._mapping)
    assert body["secret"] not in json.dumps(row, default=str)
    assert platform.vault.decrypt(row["secret_enc"]) == body["secret"]


@both_backends
def test_no_answer_carries_a_secret(client, platform):
    made = create(
        client,
        auth={"type": "basic", "username": "crm-user", "password": "pa55-w0rd-basic"},
        headers={"X-Api-Key": "header-value-secret", "X-Tenant": "tenant-value-secret"},
    )
    bearer = create(client, name="bearer", auth={"type": "bearer", "token": "bearer-token-secret"})
    assert made["auth"] == {"type": "basic", "username": "crm-user"}
    assert made["headers"] == {"X-Api-Key": "***", "X-Tenant": "***"}
    assert bearer["auth"] == {"type": "bearer"}
    signing = [made["secret"], bearer["secret"]]

    answers = [client.get(PATH)]
    for sub in (made, bearer):
        sub_path = f"{PATH}/{sub['id']}"
        answers.append(client.get(sub_path))
        answers.append(client.patch(sub_path, json={"description": "x"}))
        answers.append(client.put(sub_path, json={**BASE, "name": sub["name"]}))
    rotated = client.post(f"{PATH}/{made['id']}/rotate-secret", json={})
    answers.append(rotated)
    plain = ["pa55-w0rd-basic", "header-value-secret", "tenant-value-secret", "bearer-token-secret"]
    for answer in answers:
        assert answer.status_code == 200, answer.json
        text_ = answer.get_data(as_text=True)
        assert not [p for p in plain if p in text_]
        if answer is not rotated:
            assert not [s for s in signing if s in text_]
            items = answer.json if isinstance(answer.json, list) else [answer.json]
            assert all("secret" not in item for item in items)

    with platform.db.engine.connect() as conn:
        rows = json.dumps(
            [dict(r._mapping) for r in conn.execute(text("SELECT * FROM subscriptions"))],
            default=str,
        )
    assert not [p for p in plain + signing if p in rows]
    # PUT without auth/headers kept them: the delivery still carries them.
    with platform.db.session() as session:
        sub = service.get_subscription(session, made["id"])
        sent = service.request_auth(sub, platform.vault)
    assert sent["X-Api-Key"] == "header-value-secret" and sent["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"name": "has spaces"}, "name"),
        ({"name": None}, "name"),
        ({"description": 3}, "description"),
        ({"enabled": "maybe"}, "enabled"),
        ({"environment": "staging"}, "environment"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["record created"]}, "event_types"),
        ({"filter": "data.["}, "filter"),
        ({"mapping": {"id": "data.["}}, "mapping"),
        ({"mapping": {"id": "nope(data)"}}, "mapping"),
        ({"fixed_data": [1, 2]}, "fixed_data"),
        ({"error_emails": ["not-an-address"]}, "error_emails"),
        ({"retry_schedule": [0, 200_000]}, "retry_schedule"),
        ({"retry_schedule": ["5"]}, "retry_schedule"),
        ({"retry_schedule": []}, "retry_schedule"),
        ({"auth": {"type": "basic", "username": "u"}}, "auth"),
        ({"auth": {"type": "bearer"}}, "auth"),
        ({"auth": {"type": "oauth"}}, "auth"),
        ({"headers": {"Webhook-Signature": "v1,forged"}}, "headers"),
        ({"headers": {"authorization": "Bearer x"}}, "headers"),
        ({"headers": {"bad name": "x"}}, "headers"),
        ({"url": "ftp://hooks.example.com/"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/"}, "url"),
        ({"url": "https://nowhere.invalid/"}, "url"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_each_refusal_names_its_field(client, fields, field):
    assert field in field_errors(client.post(PATH, json={**BASE, **fields}))


def test_all_refused_fields_are_named_together(client):
    errors = field_errors(
        client.post(
            PATH,
            json={
                **BASE,
                "event_types": ["ok", "no spaces"],
                "filter": "data.[",
                "retry_schedule": [-1],
                "headers": {"Host": "evil"},
            },
        )
    )
    assert set(errors) == {"event_types", "filter", "retry_schedule", "headers"}
    assert field_errors(client.post(PATH, json={})).keys() == {"name", "url", "event_types"}


def test_names_are_unique(client):
    create(client)
    answer = client.post(PATH, json=BASE)
    assert answer.status_code == 409 and answer.json["errors"]["json"] == {
        "name": ["already taken"]
    }
    other = create(client, name="other")
    assert client.patch(f"{PATH}/{other['id']}", json={"name": "crm"}).status_code == 409


def test_plain_http_only_for_sandbox_unless_the_install_allows_it(client, settings):
    http = {"url": "http://hooks.example.com/in"}
    assert "must be https" in field_errors(client.post(PATH, json={**BASE, **http}))["url"][0]
    sandbox = create(client, name="sbx", environment="sandbox", **http)
    assert sandbox["url"] == http["url"]
    # A sandbox subscription on http cannot go live without https.
    moved = client.patch(f"{PATH}/{sandbox['id']}", json={"environment": "live"})
    assert "url" in field_errors(moved)

    allowing, p = client_for(settings, allow_http=True)
    try:
        assert allowing.post(PATH, json={**BASE, **http, "name": "live-http"}).status_code == 201
    finally:
        p.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost:8443/hook",
    ],
)
def test_ssrf_guard_refuses_private_targets(strict_client, client, url):
    errors = field_errors(strict_client.post(PATH, json={**BASE, "url": url}))
    assert list(errors) == ["url"]
    assert "private or reserved address" in errors["url"][0]
    made = strict_client.post(PATH, json={**BASE, "name": "public"}).json
    changed = strict_client.patch(f"{PATH}/{made['id']}", json={"url": url})
    assert list(field_errors(changed)) == ["url"]
    # The test install allows private networks (its receivers run on 127.0.0.1).
    assert client.post(PATH, json={**BASE, "url": url}).status_code == 201


def test_url_with_port_and_query_is_kept_exactly(strict_client):
    url = "https://hooks.example.com:8443/in/v1?tenant=acme&sig=a%2Fb&empty="
    made = strict_client.post(PATH, json={**BASE, "url": url})
    assert made.status_code == 201, made.json
    assert made.json["url"] == url
    assert strict_client.get(f"{PATH}/{made.json['id']}").json["url"] == url


@both_backends
def test_rotate_secret_signs_with_old_and_new(client, platform):
    made = create(client)
    rotated = client.post(f"{PATH}/{made['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.json
    new = rotated.json["secret"]
    assert new.startswith("whsec_") and new != made["secret"]
    assert "secret" not in client.get(f"{PATH}/{made['id']}").json
    with platform.db.session() as session:
        sub = service.get_subscription(session, made["id"])
        assert service.signing_secrets(sub, platform.vault) == [new, made["secret"]]
        later = sub.previous_secret_expires_at
        assert service.signing_secrets(sub, platform.vault, now=later) == [new]

    hard = client.post(f"{PATH}/{made['id']}/rotate-secret", json={"grace_seconds": 0})
    with platform.db.session() as session:
        sub = service.get_subscription(session, made["id"])
        assert service.signing_secrets(sub, platform.vault) == [hard.json["secret"]]
    assert "grace_seconds" in field_errors(
        client.post(f"{PATH}/{made['id']}/rotate-secret", json={"grace_seconds": -1})
    )


def test_patch_changes_only_what_it_names(client):
    made = create(
        client,
        description="first",
        filter="data.group == 'members'",
        mapping={"member": "data.id"},
        fixed_data={"source": "ihook"},
        error_emails=["ops@example.com"],
        retry_schedule=[0, 60],
        headers={"X-Tenant": "acme"},
    )
    patched = client.patch(f"{PATH}/{made['id']}", json={"description": "second", "enabled": False})
    assert patched.status_code == 200, patched.json
    expected = {**made, "description": "second", "enabled": False}
    for body in (patched.json, client.get(f"{PATH}/{made['id']}").json):
        assert {k: v for k, v in body.items() if k != "updated_at"} == {
            k: v for k, v in expected.items() if k not in ("secret", "updated_at")
        }


def test_put_replaces_settings_but_keeps_secrets(client, platform):
    made = create(
        client,
        description="first",
        environment="sandbox",
        retry_schedule=[0, 60],
        auth={"type": "bearer", "token": "tok-1"},
        headers={"X-Tenant": "acme"},
    )
    # What GET shows can be sent back as is: `***` keeps the stored header value.
    shown = client.get(f"{PATH}/{made['id']}").json
    writable = {k: v for k, v in shown.items() if k not in service_dump_only()}
    again = client.put(f"{PATH}/{made['id']}", json={**writable, "description": "edited"})
    assert again.status_code == 200, again.json
    assert again.json["description"] == "edited" and again.json["headers"] == {"X-Tenant": "***"}

    replaced = client.put(f"{PATH}/{made['id']}", json={**BASE, "event_types": ["course.*"]})
    assert replaced.status_code == 200, replaced.json
    body = replaced.json
    assert body["event_types"] == ["course.*"] and body["description"] == ""
    assert (
        body["environment"] == "live" and body["retry_schedule"] == service.DEFAULT_RETRY_SCHEDULE
    )
    assert body["auth"] == {"type": "bearer"} and body["headers"] == {"X-Tenant": "***"}
    with platform.db.session() as session:
        sub = service.get_subscription(session, made["id"])
        assert service.request_auth(sub, platform.vault) == {
            "X-Tenant": "acme",
            "Authorization": "Bearer tok-1",
        }
    assert "url" in field_errors(client.put(f"{PATH}/{made['id']}", json={"name": "crm"}))


def service_dump_only() -> set[str]:
    return {"id", "disabled_reason", "failing_since", "created_at", "updated_at"}


def test_enabling_clears_why_it_was_disabled(client, platform):
    made = create(client)
    with platform.db.session() as session:
        sub = service.set_enabled(session, made["id"], False, reason="failing for 5 days")
        sub.failing_since = utcnow()
    off = client.get(f"{PATH}/{made['id']}").json
    assert off["enabled"] is False and off["disabled_reason"] == "failing for 5 days"
    assert off["failing_since"]
    on = client.patch(f"{PATH}/{made['id']}", json={"enabled": True})
    assert on.status_code == 200
    assert on.json["enabled"] is True
    assert on.json["disabled_reason"] is None and on.json["failing_since"] is None


def test_delete_and_unknown_ids(client):
    made = create(client)
    assert client.delete(f"{PATH}/{made['id']}").status_code == 204
    for answer in (
        client.get(f"{PATH}/{made['id']}"),
        client.patch(f"{PATH}/{made['id']}", json={"description": "x"}),
        client.put(f"{PATH}/{made['id']}", json=BASE),
        client.delete(f"{PATH}/{made['id']}"),
        client.post(f"{PATH}/{made['id']}/rotate-secret", json={}),
    ):
        assert answer.status_code == 404
        assert answer.json["message"] == f"subscription {made['id']} not found"
    assert client.get(PATH).json == []


def test_routes_need_a_token_and_are_documented(client):
    assert client.raw.get(PATH).status_code == 401
    assert client.raw.post(PATH, json=BASE).status_code == 401
    spec = client.raw.get("/api/openapi.json").json
    paths = spec["paths"]
    assert set(paths[PATH]) >= {"get", "post"}
    assert set(paths[PATH + "/{sub_id}"]) >= {"get", "put", "patch", "delete"}
    assert "post" in paths[PATH + "/{sub_id}/rotate-secret"]
    for route in (PATH, PATH + "/{sub_id}", PATH + "/{sub_id}/rotate-secret"):
        for method, operation in paths[route].items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert operation.get("summary"), (route, method)
