"""The console's outgoing-webhook pages: the wizard end to end against a real receiver on
127.0.0.1, the subscription page and its delivery log, a delivery's attempts, the
event-type catalogue."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from werkzeug import Request, Response

from ihook.sender import send_delivery
from tests.ihook.console.conftest import make_token
from tests.ihook.console.support import Console, Page


@pytest.fixture
def settings(settings):
    # Receivers are plain-http servers on 127.0.0.1 (private networks are allowed in tests).
    return settings.replace(allow_http=True, delivery_timeout=5)


class Receiver:
    """Records each request; answers with the statuses it is given, then 200."""

    def __init__(self, httpserver, path: str, statuses: tuple[int, ...] = ()):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses)
        self.url = httpserver.url_for(path)
        httpserver.expect_request(path, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), request.get_data()))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(json.dumps({"seen": len(self.requests)}), status=status)


def step_of(html: str) -> str:
    """The wizard step the page says is current."""
    found = re.search(r'<li aria-current="step">([^<]+)</li>', html)
    assert found, html
    return found.group(1)


def hidden(html: str) -> dict[str, str]:
    """The hidden fields of a page (the step and its sealed draft)."""
    page = Page(html).check()
    return {k: v for k, v in page.hidden.items() if k in ("step", "draft")}


def wizard(ui: Console, html: str, fields: dict, action: str = "next", status: int = 200):
    """Post a wizard step (the page's draft and step carried) and answer the next page."""
    answer = ui.post("/subscriptions/new", {**hidden(html), **fields, "action": action})
    page = answer.get_data(as_text=True)
    assert answer.status_code == status, page
    Page(page).check()
    return page


def general(url: str, **changes) -> dict:
    """The General step's fields, for a subscription named crm."""
    return {
        "name": "crm",
        "description": "Members to the CRM",
        "environment": "live",
        "url": url,
        "event_types": ["record.created"],
        "patterns": "member.*",
        "filter": "data.collection == 'members'",
        **changes,
    }


def sub_of(client, name: str = "crm") -> dict:
    (found,) = [s for s in client.get("/api/v1/subscriptions").json if s["name"] == name]
    return found


def test_the_wizard_creates_tests_and_saves_a_subscription(ui, client, httpserver):
    receiver = Receiver(httpserver, "/hooks/crm")
    html, _ = ui.page("/subscriptions/new")
    assert step_of(html) == "General" and 'value="record.created"' in html
    html = wizard(ui, html, general(receiver.url))
    assert step_of(html) == "Authentication"

    auth = {"auth_type": "basic", "username": "ihook", "password": "pa55-word"}
    html = wizard(
        ui, html, {**auth, "header_name": "X-Tenant", "header_value": "acme"}, "add-header"
    )
    assert step_of(html) == "Authentication" and 'id="header-name-1"' in html
    assert "pa55-word" not in html and 'value="acme"' not in html  # kept in the sealed draft
    assert "Leave empty to keep the one given." in html
    kept = {**auth, "password": "", "header_name": ["X-Tenant", ""], "header_value": ["***", ""]}
    html = wizard(ui, html, kept)
    assert step_of(html) == "Data mapping" and "pa55-word" not in html

    rows = {"map_var": ["member_id"], "map_expr": ["data.key"]}
    html = wizard(ui, html, rows, "add-row")
    html = wizard(ui, html, {"map_var": ["member_id", ""], "map_expr": ["data.key", ""]}, "preview")
    assert 'id="map-var-1"' in html and 'id="map-var-2"' not in html
    html = wizard(
        ui, html, {"map_var": ["member_id", "x"], "map_expr": ["data.key", "x"]}, "add-row"
    )
    assert 'id="map-var-2"' in html
    three = {
        "map_var": ["member_id", "x", "collection"],
        "map_expr": ["data.key", "x", "data.collection"],
    }
    html = wizard(ui, html, three, "remove-row-1")
    assert 'id="map-var-2"' not in html and 'value="collection"' in html
    mapped = {
        "map_var": ["member_id", "collection"],
        "map_expr": ["data.key", "data.collection"],
        "fixed_data": '{"source": "ihook"}',
    }
    html = wizard(ui, html, mapped, "preview")
    assert "record.created" in html and "&#34;member_id&#34;: &#34;key&#34;" in html
    assert "&#34;source&#34;: &#34;ihook&#34;" in html

    html = wizard(ui, html, mapped, status=201)
    assert step_of(html) == "Test"
    secret = re.search(r'<code class="secret">(whsec_[^<]+)</code>', html).group(1)
    assert "webhook-signature" in html and "disabled" in html
    sub = sub_of(client)
    assert sub["enabled"] is False and sub["auth"] == {"type": "basic", "username": "ihook"}
    assert sub["headers"] == {"X-Tenant": "***"} and sub["fixed_data"] == {"source": "ihook"}
    assert sub["mapping"] == {"member_id": "data.key", "collection": "data.collection"}
    assert sub["event_types"] == ["record.created", "member.*"]
    assert "disabled" in ui.get("/subscriptions").text  # an unsaved draft is listed as such

    tested = ui.post(f"/subscriptions/{sub['id']}/test")
    assert tested.status_code == 303, tested.text
    headers, body = receiver.requests[-1]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "record.created"
    assert payload["data"] == {"member_id": "key", "collection": "collection", "source": "ihook"}
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ihook:pa55-word").decode()
    assert headers["X-Tenant"] == "acme"

    html, _ = ui.page(tested.headers["Location"].removeprefix("/ui"))
    assert step_of(html) == "Test" and "The receiver answered 2xx" in html
    assert secret not in html
    delivery_id = re.search(r"tested=(dlv_\w+)", tested.headers["Location"]).group(1)
    html, _ = ui.page(f"/subscriptions/{sub['id']}/setup?step=save&tested={delivery_id}")
    assert step_of(html) == "Save" and "Save and enable" in html
    saved = ui.post(f"/subscriptions/{sub['id']}/save", {"tested": delivery_id})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("saved=1")
    assert sub_of(client)["enabled"] is True
    html, _ = ui.page(f"/subscriptions/{sub['id']}?saved=1")
    assert "Saved: the subscription is enabled" in html and "pa55-word" not in html


def test_save_is_refused_until_a_test_answers_2xx(ui, client, httpserver):
    receiver = Receiver(httpserver, "/down", statuses=(500,))
    made = client.post(
        "/api/v1/subscriptions",
        json={"name": "crm", "url": receiver.url, "event_types": ["*"], "enabled": False},
    )
    sub_id = made.json["id"]
    refused = ui.post(f"/subscriptions/{sub_id}/save", {"tested": ""})
    assert refused.status_code == 409 and "Send a test event first" in refused.text
    tested = ui.post(f"/subscriptions/{sub_id}/test")
    location = tested.headers["Location"].removeprefix("/ui")
    html, _ = ui.page(location)
    assert "The test failed" in html and "500" in html and "Next: Save" not in html
    assert "did not answer the test with 2xx" in html
    failed = location.rsplit("tested=", 1)[1]
    refused = ui.post(f"/subscriptions/{sub_id}/save", {"tested": failed})
    assert refused.status_code == 409 and "did not answer the test with 2xx" in refused.text
    assert client.get(f"/api/v1/subscriptions/{sub_id}").json["enabled"] is False

    # A passing test, then a change of settings: the test no longer counts.
    passed = ui.post(f"/subscriptions/{sub_id}/test").headers["Location"].rsplit("=", 1)[1]
    html, _ = ui.page(f"/subscriptions/{sub_id}/setup?step=mapping")
    assert step_of(html) == "Data mapping"
    changed = ui.post(
        f"/subscriptions/{sub_id}/setup?step=mapping",
        {"step": "mapping", "map_var": "kind", "map_expr": "type", "fixed_data": ""},
    )
    assert changed.status_code == 303 and "step=test" in changed.headers["Location"]
    assert client.get(f"/api/v1/subscriptions/{sub_id}").json["mapping"] == {"kind": "type"}
    refused = ui.post(f"/subscriptions/{sub_id}/save", {"tested": passed})
    assert refused.status_code == 409 and "settings changed after that test" in refused.text


def test_each_step_pins_its_errors_to_its_fields(ui, client, httpserver):
    receiver = Receiver(httpserver, "/ok")
    client.post(
        "/api/v1/subscriptions", json={"name": "taken", "url": receiver.url, "event_types": ["*"]}
    )
    html, _ = ui.page("/subscriptions/new")
    bad = general("ftp://nowhere", name="taken", filter="data.[", patterns="a b!", event_types=[])
    html = wizard(ui, html, bad, status=422)
    assert step_of(html) == "General"
    for field in ("url", "filter", "name", "patterns"):
        assert f'id="{field}-error"' in html, field
        assert re.search(f'id="{field}"[^>]*aria-describedby="[^"]*{field}-error"', html), field
    assert "already taken" in html and "must be an https:// URL" in html

    html = wizard(ui, html, general(receiver.url))
    no_password = {"auth_type": "basic", "username": "u", "password": ""}
    html = wizard(
        ui, html, {**no_password, "header_name": "Authorization", "header_value": "x"}, status=422
    )
    assert 'id="password-error"' in html and "needs a password" in html
    assert 'id="header-name-0-error"' in html and "use auth" in html
    html = wizard(
        ui, html, {"auth_type": "bearer", "token": "t0k3n", "header_name": "", "header_value": ""}
    )
    assert step_of(html) == "Data mapping"

    rows = {"map_var": ["ok", "broken"], "map_expr": ["data", "data.["], "fixed_data": "[1"}
    html = wizard(ui, html, rows, status=422)
    assert 'id="map-expr-1-error"' in html and 'id="map-expr-0-error"' not in html
    assert 'id="fixed_data-error"' in html and "not JSON" in html
    dup = {"map_var": ["ok", "ok"], "map_expr": ["data", "type"], "fixed_data": "[1]"}
    html = wizard(ui, html, dup, status=422)
    assert 'id="map-var-1-error"' in html and "given twice" in html
    assert 'id="fixed_data-error"' in html
    # Back keeps what each step holds
    html = wizard(ui, html, dup, "back")
    assert step_of(html) == "Authentication" and "t0k3n" not in html
    assert sub_of(client, "taken") and len(client.get("/api/v1/subscriptions").json) == 1


def test_the_event_types_page_downloads_schemas(ui, client):
    made = client.post(
        "/api/v1/event-types",
        json={
            "name": "invoice.paid",
            "description": "An invoice was paid",
            "schema": {"type": "object"},
        },
    )
    assert made.status_code == 201, made.json
    client.post("/api/v1/event-types", json={"name": "note.added"})
    html, _ = ui.page("/event-types")
    assert "record.created" in html and "invoice.paid" in html and "An invoice was paid" in html
    assert 'href="/ui/event-types/invoice.paid/schema"' in html
    assert 'href="/ui/event-types/note.added/schema"' not in html
    assert 'href="/ui/event-types"' in html  # in the main navigation
    for name in ("invoice.paid", "run.failed"):
        console = ui.get(f"/event-types/{name}/schema")
        api = client.get(f"/api/v1/event-types/{name}/schema")
        assert console.status_code == 200 and console.data == api.data
        assert console.headers["Content-Disposition"] == api.headers["Content-Disposition"]
        assert console.content_type == api.content_type == "application/schema+json"
    assert ui.get("/event-types/note.added/schema").status_code == 404


@pytest.fixture
def tested_sub(client, httpserver) -> dict:
    """A subscription with two test deliveries: one failed (500), one succeeded."""
    receiver = Receiver(httpserver, "/log", statuses=(500,))
    made = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "log",
            "url": receiver.url,
            "event_types": ["*"],
            "headers": {"X-Key": "k-secret"},
        },
    )
    sub = made.json
    for _ in range(2):
        client.post(f"/api/v1/subscriptions/{sub['id']}/test")
    deliveries = client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json
    sub["deliveries"] = {d["status"]: d["id"] for d in deliveries}
    return sub


def test_the_delivery_log_filters_by_status_and_date(ui, tested_sub):
    sub_id, ids = tested_sub["id"], tested_sub["deliveries"]
    html, _ = ui.page(f"/subscriptions/{sub_id}")
    assert ids["failed"] in html and ids["succeeded"] in html
    assert html.index(ids["succeeded"]) < html.index(ids["failed"])  # newest first
    assert f'href="/ui/deliveries/{ids["failed"]}"' in html and "k-secret" not in html
    html, _ = ui.page(f"/subscriptions/{sub_id}?status=failed")
    assert ids["failed"] in html and ids["succeeded"] not in html
    today = datetime.now(UTC).date()
    html, _ = ui.page(f"/subscriptions/{sub_id}?since={today}&until={today}")
    assert ids["failed"] in html and ids["succeeded"] in html
    html, _ = ui.page(f"/subscriptions/{sub_id}?until={today - timedelta(days=1)}")
    assert "No deliveries match." in html
    html, _ = ui.page(f"/subscriptions/{sub_id}?since={today + timedelta(days=1)}")
    assert "No deliveries match." in html
    html, _ = ui.page(f"/subscriptions/{sub_id}?limit=1")
    assert ids["succeeded"] in html and ids["failed"] not in html and "Older deliveries" in html
    html, _ = ui.page(f"/subscriptions/{sub_id}?limit=1&after={ids['succeeded']}")
    assert ids["failed"] in html and "Newest" in html
    html, _ = ui.page(f"/subscriptions/{sub_id}?since=yesterday&status=lost", status=400)
    assert 'id="e-since"' in html and 'id="e-status"' in html


def test_a_delivery_shows_its_attempts_and_resends(ui, tested_sub, platform):
    failed = tested_sub["deliveries"]["failed"]
    html, _ = ui.page(f"/deliveries/{failed}")
    assert "Attempt 1 · HTTP 500" in html and "{&#34;seen&#34;: 1}" in html
    assert "ihook.test" in html and "/log" in html and "k-secret" not in html
    assert "webhook-signature: [redacted]" in html.lower()
    resent = ui.post(f"/deliveries/{failed}/retry")
    assert resent.status_code == 303 and resent.headers["Location"].endswith("resent=1")
    assert send_delivery(platform, failed).startswith(
        "delivered"
    )  # the attempt a worker would make
    html, _ = ui.page(f"/deliveries/{failed}?resent=1")
    assert "Sent again" in html and "Attempt 2 · HTTP 200" in html
    assert ui.post(f"/deliveries/{failed}/retry").status_code == 303
    assert ui.post(f"/deliveries/{failed}/retry").status_code == 409  # already pending
    assert ui.get("/deliveries/dlv_missing").status_code == 404


def test_recover_reopens_failed_deliveries_and_enable_disable(ui, client, tested_sub):
    sub_id = tested_sub["id"]
    bad = ui.post(f"/subscriptions/{sub_id}/recover", {"since": "soon"})
    assert bad.status_code == 422 and 'id="recover-since-error"' in bad.text
    Page(bad.text).check()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    done = ui.post(f"/subscriptions/{sub_id}/recover", {"since": yesterday})
    assert done.status_code == 303 and done.headers["Location"].endswith("recovered=1")
    html, _ = ui.page(f"/subscriptions/{sub_id}?recovered=1")
    assert "Recover reopened 1 failed delivery" in html
    failed = tested_sub["deliveries"]["failed"]
    assert client.get(f"/api/v1/deliveries/{failed}").json["status"] == "pending"

    off = ui.post(f"/subscriptions/{sub_id}/enabled", {"enabled": "false"})
    assert (
        off.status_code == 303
        and client.get(f"/api/v1/subscriptions/{sub_id}").json["enabled"] is False
    )
    assert ">Enable</button>" in ui.get(f"/subscriptions/{sub_id}").text
    ui.post(f"/subscriptions/{sub_id}/enabled", {"enabled": "true"})
    assert client.get(f"/api/v1/subscriptions/{sub_id}").json["enabled"] is True


def test_a_read_only_token_sees_the_pages_but_changes_nothing(app, client, tested_sub):
    reader = Console(app.test_client())
    assert reader.sign_in(make_token(client, "read")["token"]).status_code == 303
    sub_id, failed = tested_sub["id"], tested_sub["deliveries"]["failed"]
    for path in (
        f"/subscriptions/{sub_id}",
        f"/deliveries/{failed}",
        "/event-types",
        "/subscriptions",
    ):
        html, _ = reader.page(path)
        assert (
            "New subscription" not in html
            and "Resend" not in html
            and "Recover</button>" not in html
        )
    assert reader.get("/subscriptions/new").status_code == 403
    assert reader.get(f"/subscriptions/{sub_id}/setup").status_code == 403
    for path, form in [
        ("/subscriptions/new", {"step": "general"}),
        (f"/subscriptions/{sub_id}/test", {}),
        (f"/subscriptions/{sub_id}/save", {"tested": failed}),
        (f"/subscriptions/{sub_id}/enabled", {"enabled": "false"}),
        (f"/subscriptions/{sub_id}/recover", {"since": "2024-01-01"}),
        (f"/deliveries/{failed}/retry", {}),
    ]:
        assert reader.post(path, form).status_code == 403, path
    assert client.get(f"/api/v1/subscriptions/{sub_id}").json["enabled"] is True


def test_a_tampered_draft_is_refused(ui):
    html, _ = ui.page("/subscriptions/new")
    answer = ui.post(
        "/subscriptions/new", {"step": "auth", "draft": "not-a-draft", "auth_type": "none"}
    )
    assert answer.status_code == 400 and "out of date" in answer.text


def test_rotate_shows_the_new_secret_once_and_delete_removes_the_subscription(
    ui, client, httpserver
):
    receiver = Receiver(httpserver, "/rotated")
    made = client.post(
        "/api/v1/subscriptions",
        json={"name": "crm", "url": receiver.url, "event_types": ["record.created"]},
    ).json
    refused = ui.post(f"/subscriptions/{made['id']}/rotate-secret", {"grace_seconds": "-1"})
    assert refused.status_code == 422 and 'id="rotate-grace-error"' in refused.text
    rotated = ui.post(f"/subscriptions/{made['id']}/rotate-secret", {"grace_seconds": "0"})
    assert rotated.status_code == 200
    html = rotated.get_data(as_text=True)
    Page(html).check()
    secret = re.search(r'id="subscription-secret">([^<]+)<', html).group(1)
    assert secret.startswith("whsec_") and secret != made["secret"]
    assert secret not in ui.get(f"/subscriptions/{made['id']}").get_data(as_text=True)
    # The receiver verifies the next request with the new secret alone (no grace).
    assert client.post(f"/api/v1/subscriptions/{made['id']}/test").json["succeeded"]
    headers, body = receiver.requests[-1]
    Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})
    assert len(headers["Webhook-Signature"].split()) == 1

    gone = ui.post(f"/subscriptions/{made['id']}/delete")
    assert gone.status_code == 303 and gone.location.endswith("/ui/subscriptions?deleted=1")
    assert client.get(f"/api/v1/subscriptions/{made['id']}").status_code == 404
    html, _ = ui.page("/subscriptions?deleted=1")
    assert "The subscription is deleted." in html


def test_rotate_and_delete_need_the_write_scope(browser, client, token, httpserver):
    made = client.post(
        "/api/v1/subscriptions",
        json={"name": "crm", "url": httpserver.url_for("/in"), "event_types": ["x.y"]},
    ).json
    browser.sign_in(token("read")["token"])
    for path in ("rotate-secret", "delete"):
        assert browser.post(f"/subscriptions/{made['id']}/{path}", {}).status_code == 403
    assert client.get(f"/api/v1/subscriptions/{made['id']}").status_code == 200
