"""The endpoint wizard, the ready curl command it shows, and an endpoint's page
(``ihook.console.endpoint_pages``, ``ihook.console.sample_request``)."""

from __future__ import annotations

import re
import shlex
from html import unescape
from urllib.parse import urlsplit

import pytest

from ihook.console.sample_request import curl_command
from tests.ihook.console.support import Console, Page, parse_curl

GENERAL = {"name": "lms", "description": "course completions", "response_mode": "async"}
NO_CHECKS: dict[str, str] = {}


def step(ui: Console, page: str, fields: dict, action: str = "next"):
    """POST one wizard step with the hidden draft and step of ``page``."""
    hidden = Page(page).hidden
    form = {"draft": hidden["draft"], "step": hidden["step"], "action": action, **fields}
    return ui.post("/endpoints/new", form, csrf=hidden["csrf_token"])


def walk(ui: Console, auth: dict, checks: dict | None = None, workflows=(), general=None):
    """Go through the four steps; answer the last POST (the created page, or a refusal)."""
    page = ui.get("/endpoints/new").get_data(as_text=True)
    for fields in (general or GENERAL, auth, checks or NO_CHECKS):
        answer = step(ui, page, fields)
        page = answer.get_data(as_text=True)
        if answer.status_code != 200:
            return answer
    return ui.http.post(
        ui.url("/endpoints/new"),
        data={**Page(page).hidden, "action": "next", "workflows": list(workflows)},
    )


def shown(answer, element_id: str) -> str:
    """The text of the element with ``element_id`` on a page."""
    html = answer.get_data(as_text=True)
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</(code|pre)>', html, re.S)
    assert found, (element_id, html)
    return unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def run_curl(http, command: str, url: str | None = None):
    """Send the request a curl command describes, through the real ingress."""
    target, headers, body = parse_curl(command)
    return http.post(urlsplit(url or target).path, data=body, headers=headers)


AUTHS = {
    "none": {"auth_type": "none"},
    "basic": {"auth_type": "basic", "auth_username": "lms-bot"},
    "bearer": {"auth_type": "bearer"},
    "header": {"auth_type": "header", "auth_header": "X-Api-Key"},
    "standard-webhooks": {"auth_type": "hmac", "auth_scheme": "standard-webhooks"},
    "github": {"auth_type": "hmac", "auth_scheme": "github"},
    "generic": {
        "auth_type": "hmac",
        "auth_scheme": "generic",
        "auth_header": "X-Signature",
        "auth_algorithm": "sha512",
        "auth_encoding": "base64",
        "auth_prefix": "sha512=",
    },
}


@pytest.mark.parametrize("kind", sorted(AUTHS))
def test_the_wizard_ends_with_a_curl_command_that_the_endpoint_accepts(ui, client, kind):
    made = walk(ui, AUTHS[kind])
    assert made.status_code == 201, made.get_data(as_text=True)
    Page(made.get_data(as_text=True)).check()
    url = shown(made, "ingest-url")
    assert url.startswith("http://127.0.0.1:8000/hooks/")
    command = shown(made, "curl-command")
    if kind in ("basic", "bearer", "header"):
        assert shown(made, "endpoint-secret") in command
    accepted = run_curl(ui.http, command)
    assert accepted.status_code == 202, accepted.json
    [endpoint] = client.get("/api/v1/endpoints").json
    assert endpoint["auth"]["type"] == AUTHS[kind]["auth_type"]
    events = client.get(f"/api/v1/events?endpoint_id={endpoint['id']}").json
    assert [e["id"] for e in events] == [accepted.json["event_id"]]
    if kind == "standard-webhooks":
        # The default dedupe rule is the webhook-id: the same command again is a duplicate.
        again = run_curl(ui.http, command)
        assert again.status_code == 200 and again.json["duplicate"] is True


def test_the_wizard_sets_every_field_as_the_api_would(ui, client):
    wf = client.post(
        "/api/v1/workflows",
        json={"name": "enrol", "steps": [{"id": "c", "type": "transform", "expression": "data"}]},
    ).json
    made = walk(
        ui,
        {"auth_type": "bearer", "auth_secret": "s3cret-bearer-token"},
        {
            "schema": '{"type": "object", "required": ["type"]}',
            "dedupe": "data.id",
            "allow_ips": "127.0.0.1\n10.0.0.0/8",
            "rate_requests": "5",
            "rate_per": "60",
        },
        workflows=[wf["id"]],
        general={**GENERAL, "event_type": "data.kind", "response_mode": "sync"},
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    assert shown(made, "endpoint-secret") == "s3cret-bearer-token"
    [ep] = client.get("/api/v1/endpoints").json
    assert ep["name"] == "lms" and ep["description"] == "course completions"
    assert ep["auth"] == {"type": "bearer"}
    assert ep["schema"] == {"type": "object", "required": ["type"]}
    assert ep["dedupe"] == "data.id" and ep["event_type"] == "data.kind"
    assert ep["allow_ips"] == ["127.0.0.1", "10.0.0.0/8"]
    assert ep["rate_limit"] == {"requests": 5, "per_seconds": 60}
    assert ep["response_mode"] == "sync"
    assert ep["workflows"] == [wf["id"]]


def test_a_typed_secret_never_reaches_a_later_page(ui):
    page = ui.get("/endpoints/new").get_data(as_text=True)
    page = step(ui, page, GENERAL).get_data(as_text=True)
    secret = "my-own-bearer-secret-1234"
    later = step(ui, page, {"auth_type": "bearer", "auth_secret": secret})
    assert later.status_code == 200
    assert secret not in later.get_data(as_text=True)
    back = step(ui, later.get_data(as_text=True), {}, action="back")
    html = back.get_data(as_text=True)
    assert secret not in html and "A secret is kept from before" in html
    # Going on without typing it again keeps it.
    checks = step(ui, html, {"auth_type": "bearer"})
    for _ in range(2):
        hidden = Page(checks.get_data(as_text=True)).hidden
        checks = ui.http.post(ui.url("/endpoints/new"), data=hidden)
    made = checks
    assert made.status_code == 201 and shown(made, "endpoint-secret") == secret


@pytest.mark.parametrize(
    ("at", "fields", "field_id", "reason"),
    [
        (0, {"name": "no spaces"}, "name", "letters, digits"),
        (0, {"event_type": "data.["}, "event_type", "invalid jmespath"),
        (1, {"auth_type": "basic"}, "auth_username", "basic needs a username"),
        (1, {"auth_type": "header"}, "auth_header", "needs a header name"),
        (1, {"auth_type": "bearer", "auth_secret": "short"}, "auth_secret", "Length must be"),
        (
            1,
            {"auth_type": "hmac", "auth_scheme": "standard-webhooks", "auth_secret": "no base64!"},
            "auth_secret",
            "not valid base64",
        ),
        (2, {"schema": "{nope"}, "schema", "not JSON"),
        (2, {"schema": '{"type": "nope"}'}, "schema", "invalid JSON Schema"),
        (2, {"dedupe": "headers.["}, "dedupe", "invalid jmespath"),
        (2, {"allow_ips": "not-an-ip"}, "allow_ips", "is not an address or CIDR"),
        (2, {"rate_requests": "lots"}, "rate_requests", "whole numbers"),
        (2, {"rate_requests": "0"}, "rate_requests", "greater than or equal to 1"),
    ],
)
def test_each_step_pins_its_errors_to_the_field(ui, at, fields, field_id, reason):
    page = ui.get("/endpoints/new").get_data(as_text=True)
    defaults = [GENERAL, {"auth_type": "none"}, NO_CHECKS]
    for index in range(at):
        page = step(ui, page, defaults[index]).get_data(as_text=True)
    refused = step(ui, page, {**defaults[at], **fields})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    parsed = Page(html).check()
    assert parsed.hidden["step"] == str(at)
    error = re.search(rf'<p class="error" id="{field_id}-error">(.*?)</p>', html, re.S)
    assert error and reason in unescape(error.group(1)), html
    assert f'aria-describedby="{field_id}-help {field_id}-error"' in html or (
        f'{field_id}-error"' in html
    )


def test_a_taken_name_is_refused_on_the_first_step(ui, client):
    client.post("/api/v1/endpoints", json={"name": "lms"})
    refused = step(ui, ui.get("/endpoints/new").get_data(as_text=True), GENERAL)
    assert refused.status_code == 422
    assert "an endpoint named &#39;lms&#39; exists" in refused.get_data(as_text=True)


def test_back_keeps_what_was_typed(ui):
    page = ui.get("/endpoints/new").get_data(as_text=True)
    page = step(ui, page, {**GENERAL, "description": "kept"}).get_data(as_text=True)
    back = step(ui, page, {"auth_type": "basic", "auth_username": "bot"}, action="back")
    html = back.get_data(as_text=True)
    assert Page(html).hidden["step"] == "0" and 'value="kept"' in html
    forward = step(ui, html, {**GENERAL, "description": "kept"}).get_data(as_text=True)
    assert 'value="bot"' in forward


def test_a_tampered_draft_is_refused(ui):
    csrf = Page(ui.get("/endpoints/new").get_data(as_text=True)).hidden["csrf_token"]
    forged = ui.post("/endpoints/new", {"draft": "gAAAAAforged", "step": "0"}, csrf=csrf)
    assert forged.status_code == 400
    assert "draft was damaged" in forged.get_data(as_text=True)
    assert ui.post("/endpoints/new", {"step": "9"}, csrf=csrf).status_code == 400


def test_a_read_only_token_cannot_open_the_wizard(browser, token):
    browser.sign_in(token("read")["token"])
    assert browser.get("/endpoints/new").status_code == 403
    html = browser.get("/endpoints").get_data(as_text=True)
    assert "/ui/endpoints/new" not in html


def test_the_endpoint_page_shows_accepted_and_rejected_requests(ui, client):
    made = client.post("/api/v1/endpoints", json={"name": "lms", "auth": {"type": "bearer"}}).json
    path = urlsplit(made["ingest_url"]).path
    good = ui.http.post(path, json={"n": 1}, headers={"Authorization": f"Bearer {made['secret']}"})
    assert good.status_code == 202
    bad = ui.http.post(path, json={"n": 2}, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    html, page = ui.page(f"/endpoints/{made['id']}")
    assert good.json["event_id"] in html
    assert "wrong bearer token" in html and "rejected" in html and "accepted" in html
    assert made["secret"] not in html
    runs_html, _ = ui.page(f"/runs?event_id={good.json['event_id']}")
    assert good.json["event_id"] in runs_html


def test_enable_disable_rotate_and_delete(ui, client):
    made = client.post("/api/v1/endpoints", json={"name": "lms", "auth": {"type": "bearer"}}).json
    ep = made["id"]
    off = ui.post(f"/endpoints/{ep}/enabled", {"enabled": "false"})
    assert off.status_code == 303
    assert client.get(f"/api/v1/endpoints/{ep}").json["enabled"] is False
    ui.post(f"/endpoints/{ep}/enabled", {"enabled": "true"})
    assert client.get(f"/api/v1/endpoints/{ep}").json["enabled"] is True

    rotated = ui.post(f"/endpoints/{ep}/rotate-secret", {"grace_seconds": "0"})
    assert rotated.status_code == 200
    Page(rotated.get_data(as_text=True)).check()
    secret = shown(rotated, "endpoint-secret")
    assert secret != made["secret"]
    assert "$INGEST_URL" in shown(rotated, "curl-command")
    # The command works once the URL is put in; the old secret stopped at once (grace 0).
    assert run_curl(ui.http, shown(rotated, "curl-command"), made["ingest_url"]).status_code == 202
    path = urlsplit(made["ingest_url"]).path
    old = ui.http.post(path, json={}, headers={"Authorization": f"Bearer {made['secret']}"})
    assert old.status_code == 401

    new_url = ui.post(f"/endpoints/{ep}/rotate-secret", {"rotate_key": "1"})
    url = shown(new_url, "ingest-url")
    assert url != made["ingest_url"]
    assert run_curl(ui.http, shown(new_url, "curl-command")).status_code == 202

    gone = ui.post(f"/endpoints/{ep}/delete")
    assert gone.status_code == 303
    assert client.get(f"/api/v1/endpoints/{ep}").status_code == 404
    assert ui.get(f"/endpoints/{ep}").status_code == 404


def test_actions_need_the_write_scope(browser, client, token):
    ep = client.post("/api/v1/endpoints", json={"name": "lms"}).json["id"]
    browser.sign_in(token("read")["token"])
    html, _ = browser.page(f"/endpoints/{ep}")
    assert "Rotate" not in html and "Disable" not in html
    for path, form in [
        (f"/endpoints/{ep}/enabled", {"enabled": "false"}),
        (f"/endpoints/{ep}/rotate-secret", {}),
        (f"/endpoints/{ep}/delete", {}),
    ]:
        assert browser.post(path, form).status_code == 403
    assert browser.post(f"/endpoints/{ep}/delete", {}, csrf=None).status_code == 400
    assert client.get(f"/api/v1/endpoints/{ep}").json["enabled"] is True


def test_the_curl_command_quotes_for_the_shell():
    command = curl_command(
        "http://example.test/hooks/k", {"type": "basic", "username": "it's me"}, "pa ss'word"
    )
    words = shlex.split(command.replace("\\\n", " "))
    assert words[words.index("-u") + 1] == "it's me:pa ss'word"
    assert curl_command(None, {"type": "none"}, None).startswith('curl -i -X POST "$INGEST_URL"')


def test_the_edit_page_changes_settings_as_patch_would(ui, client):
    wf = client.post(
        "/api/v1/workflows",
        json={"name": "enrol", "steps": [{"id": "c", "type": "transform", "expression": "data"}]},
    ).json
    client.post("/api/v1/endpoints", json={"name": "other"})
    ep = client.post(
        "/api/v1/endpoints",
        json={"name": "lms", "auth": {"type": "bearer"}, "event_type": "data.kind"},
    ).json
    html, _ = ui.page(f"/endpoints/{ep['id']}/edit")
    assert 'value="data.kind"' in html
    form = {
        "name": "lms2",
        "description": "renamed",
        "event_type": "",
        "response_mode": "async",
        "schema": '{"type": "object"}',
        "dedupe": "data.id",
        "allow_ips": "",
        "rate_requests": "10",
        "rate_per": "1",
        "workflows": [wf["id"]],
    }
    refused = ui.post(f"/endpoints/{ep['id']}/edit", {**form, "dedupe": "data.["})
    assert refused.status_code == 422
    assert 'id="dedupe-error"' in refused.get_data(as_text=True)
    taken = ui.post(f"/endpoints/{ep['id']}/edit", {**form, "name": "other"})
    assert taken.status_code == 422 and 'id="name-error"' in taken.get_data(as_text=True)
    saved = ui.post(f"/endpoints/{ep['id']}/edit", form)
    assert saved.status_code == 303, saved.get_data(as_text=True)
    after = client.get(f"/api/v1/endpoints/{ep['id']}").json
    assert after["name"] == "lms2" and after["description"] == "renamed"
    assert after["event_type"] is None and after["dedupe"] == "data.id"
    assert after["schema"] == {"type": "object"} and after["workflows"] == [wf["id"]]
    assert after["rate_limit"] == {"requests": 10, "per_seconds": 1}
    assert after["auth"] == {"type": "bearer"}
    page, _ = ui.page(f"/endpoints/{ep['id']}?changed=saved")
    assert "Saved." in page
    other, _ = ui.page(f"/endpoints/{ep['id']}?changed=<b>hi</b>")
    assert "<b>hi</b>" not in other and "&lt;b&gt;hi" not in other
    assert 'class="notice"' not in other


def test_fields_of_other_auth_types_are_dropped(ui, client):
    # A browser sends the hidden fields too: only the chosen type's are kept.
    every = {
        "auth_username": "bot",
        "auth_header": "X-Sig",
        "auth_algorithm": "sha512",
        "auth_encoding": "base64",
        "auth_prefix": "p=",
    }
    made = walk(ui, {"auth_type": "hmac", "auth_scheme": "standard-webhooks", **every})
    assert made.status_code == 201
    [endpoint] = client.get("/api/v1/endpoints").json
    assert endpoint["auth"] == {"type": "hmac", "scheme": "standard-webhooks"}
