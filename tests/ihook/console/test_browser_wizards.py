"""Each of the console's wizards completed end to end in a real headless Chromium against
the app served over HTTP, as a person does it (by labels and button texts), every page
screenshotted at 1280x800 and 375 px wide (none scrolling sideways at 375 px, none logging
an error), each outcome then checked through the API: the endpoint wizard and its curl
command, the workflow editor (live validation, palette, versions, a run), the subscription
wizard against a real receiver, a poller polled now, and signing in with a password
(harness: ``tests/ihook/console/browser.py``)."""

from __future__ import annotations

import json
import re
import shlex
from urllib.parse import urlsplit

import httpx
import pytest
from pytest_httpserver import HTTPServer
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from standardwebhooks import Webhook
from werkzeug import Request, Response

from ihook import jobs
from ihook.polling import poll_job
from tests.conftest import SWEEP
from tests.ihook.console import browser
from tests.ihook.console.browser import Browser
from tests.ihook.console.support import parse_curl

# The harness's fixtures, made this module's (pytest finds fixtures by module attribute).
chromium, live_url, web = browser.chromium, browser.live_url, browser.web

pytestmark = pytest.mark.browser

PASSWORD = "quartz-meadow-lantern-58"
"""A console user's password; the log sweep checks no log holds it."""
TOKEN = "bearer-token-for-the-crm-0451"
"""The subscription's bearer token; the log sweep checks no log holds it."""
SWEEP.constants += (PASSWORD, TOKEN)
CHECKED = 5.0
"""Seconds the editor's live validation may take to show its answer."""


@pytest.fixture
def settings(settings):
    # Receivers are plain-http servers on 127.0.0.1 (private networks are allowed in tests).
    return settings.replace(allow_http=True, delivery_timeout=5)


def wait_for(web: Browser, what, seconds: float = browser.WAIT):
    """Wait until ``what(driver)`` is true (a script's answer on the page)."""
    return WebDriverWait(web.driver, seconds).until(what)


def content(web: Browser, element_id: str) -> str:
    """The whole text of an element, wrapped lines or not."""
    return web.driver.find_element(By.ID, element_id).get_attribute("textContent").strip()


def send_curl(command: str, base_url: str) -> httpx.Response:
    """Send the request a curl command describes, to ``base_url``'s server instead of the
    one its URL names."""
    url, headers, body = parse_curl(command)
    target = urlsplit(url)
    url = base_url + target.path + (f"?{target.query}" if target.query else "")
    return httpx.post(url, content=body, headers=headers, timeout=10)


def test_the_endpoint_wizard_makes_an_endpoint_its_curl_command_reaches(
    web: Browser, client, live_url
):
    made = client.post(
        "/api/v1/workflows",
        json={"name": "enrol", "steps": [{"id": "c", "type": "transform", "expression": "data"}]},
    )
    assert made.status_code == 201, made.json
    web.sign_in().open("/endpoints/new")
    web.look("general")
    web.fill("Name", "lms").fill("Description", "course completions")
    web.fill("Event type (jmespath)", "data.type").click("Next: Authentication")
    assert "Authentication" in web.text
    web.fill("Authentication", "hmac").fill("HMAC scheme", "standard-webhooks")
    assert web.shows("HMAC scheme") and web.shows("Secret")
    for other in ("User name", "Header name", "Digest (generic)", "Prefix (generic)"):
        assert not web.shows(other), other
    web.fill("Authentication", "basic")
    assert web.shows("User name") and not web.shows("HMAC scheme")
    web.fill("Authentication", "hmac")
    assert web.shows("HMAC scheme") and not web.shows("User name")
    web.look("auth")
    web.click("Next: Schema & dedupe")
    web.look("checks")
    web.click("Next: Workflows")
    web.fill("enrol", True)
    web.look("workflows")
    web.click("Create endpoint")
    assert "Endpoint lms is ready" in web.text
    web.look("created")
    url, secret = content(web, "ingest-url"), content(web, "endpoint-secret")
    command = content(web, "curl-command")
    assert secret.startswith("whsec_") and shlex.quote(url) in command, command
    assert "webhook-signature" in command

    accepted = send_curl(command, live_url)
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    [endpoint] = client.get("/api/v1/endpoints").json
    assert endpoint["name"] == "lms" and endpoint["workflows"] == [made.json["id"]]
    assert endpoint["auth"]["type"] == "hmac"
    assert endpoint["auth"]["scheme"] == "standard-webhooks"
    assert [e["id"] for e in client.get(f"/api/v1/events?endpoint_id={endpoint['id']}").json] == [
        event_id
    ]

    web.follow("Go to the endpoint")
    assert web.path == f"/ui/endpoints/{endpoint['id']}"
    assert "accepted" in web.text and event_id in web.text and secret not in web.text
    web.look("endpoint")


BAD = """\
name: orders
description: shapes orders
trigger:
  manual: true
steps:
  - id: shape
    type: transform
    expression: data.order["""
"""A definition whose last character makes its expression bad (typed, then deleted)."""


def test_the_workflow_editor_validates_saves_versions_and_runs(web: Browser, client, platform):
    web.sign_in().open("/workflows/new")
    web.look("new")
    web.fill("Definition (YAML)", BAD)
    problems = web.driver.find_element(By.ID, "definition-problems")
    wait_for(web, lambda d: "expression" in problems.text and "Step 1" in problems.text, CHECKED)
    assert "line 8" in problems.text, problems.text
    web.look("problem")
    web.field("Definition (YAML)").send_keys(Keys.BACK_SPACE)  # the bad '[' deleted
    wait_for(web, lambda d: "No problems found." in problems.text, CHECKED)
    web.driver.find_element(By.XPATH, "//summary[code='transform']").click()
    web.tap("Insert transform step")
    text = web.field("Definition (YAML)").get_attribute("value")
    assert "  - id: transform\n    type: transform\n" in text, text
    wait_for(web, lambda d: "No problems found." in problems.text, CHECKED)
    web.look("inserted")
    web.click("Create workflow")
    assert "Created: version 1." in web.text, web.text
    web.look("created")
    [workflow] = client.get("/api/v1/workflows").json
    assert [s["id"] for s in workflow["steps"]] == ["shape", "transform"]

    area = web.field("Definition (YAML)")
    changed = area.get_attribute("value").replace("shapes orders", "shapes paid orders")
    web.fill("Definition (YAML)", changed).click("Save")
    assert "Saved: version 2." in web.text, web.text
    web.look("saved")
    got = client.get(f"/api/v1/workflows/{workflow['id']}").json
    assert got["version"] == 2 and got["description"] == "shapes paid orders"

    web.follow("Version history")
    assert "Changes from version 1 to version 2" in web.text
    web.look("versions")
    web.fill("Compare version", "version 1").fill("with version", "version 2").click("Compare")
    diff = web.driver.find_element(By.CSS_SELECTOR, "pre.diff").text
    assert "-description: shapes orders" in diff and "+description: shapes paid orders" in diff
    web.look("diff")

    web.follow("Workflow orders")
    web.fill("Event type", "order.paid")
    web.fill("Data (JSON)", '{"order": {"n": 7}, "id": 7, "email": "A@Example.com"}')
    web.click("Run")
    assert web.path.startswith("/ui/runs/run_"), web.path
    run_id = web.path.rsplit("/", 1)[1]
    web.look("run-queued")
    jobs.use_platform(platform)
    try:
        assert jobs.drain_runs() == "1 run(s)"
    finally:
        jobs.use_platform(None)
    web.driver.refresh()
    assert "succeeded" in web.text and "shape" in web.text and "transform" in web.text
    for summary in web.driver.find_elements(By.XPATH, "//summary[.='Input' or .='Output']"):
        summary.click()
    assert '"email": "a@example.com"' in web.text, web.text
    assert re.search(r"· \d+(\.\d+)? ?(ms|s)\b", web.text), web.text  # each step's duration
    web.look("run-done")
    run = client.get(f"/api/v1/runs/{run_id}").json
    assert run["status"] == "succeeded" and run["workflow_version"] == 2


class Receiver:
    """Records each request and answers 200."""

    def __init__(self, server: HTTPServer, path: str):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.url = server.url_for(path)
        server.expect_request(path, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), request.get_data()))
        return Response(json.dumps({"seen": len(self.requests)}), status=200)


def test_the_subscription_wizard_tests_and_saves_a_subscription(web: Browser, client, httpserver):
    receiver = Receiver(httpserver, "/hooks/crm")
    web.sign_in().open("/subscriptions/new")
    web.look("general")
    web.fill("Name", "crm").fill("URL", receiver.url).fill("record.created", True)
    web.click("Next")
    web.fill("Method", "bearer")
    assert web.shows("Token (bearer)") and not web.shows("User name (basic)")
    web.fill("Token (bearer)", TOKEN)
    web.look("auth")
    web.click("Next")

    web.fill("Webhook variable 1", "member_id").fill("Expression 1", "data.key")
    web.tap("Add row").fill("Webhook variable 2", "junk").fill("Expression 2", "data.junk")
    web.tap("Add row").fill("Webhook variable 3", "collection")
    web.fill("Expression 3", "data.collection")
    web.tap("Remove row 2")
    # The rows after it are numbered again, as the server numbers them.
    assert web.field("Webhook variable 2").get_attribute("value") == "collection"
    assert web.button("Remove row 2").get_attribute("value") == "remove-row-1"
    assert "junk" not in [
        field.get_attribute("value") for field in web.driver.find_elements(By.NAME, "map_var")
    ]
    web.fill("Fixed data (a JSON object, optional)", '{"source": "ihook"}')
    web.look("mapping")
    web.click("Update preview")
    preview = web.driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=preview-title]")
    assert '"member_id": "key"' in preview.text and '"source": "ihook"' in preview.text
    web.look("preview")
    web.click("Create (disabled) and test")
    assert "Signing secret: shown this once" in web.text
    secret = web.driver.find_element(By.CSS_SELECTOR, "code.secret").text
    web.look("test")
    [sub] = client.get("/api/v1/subscriptions").json
    assert sub["enabled"] is False and sub["auth"] == {"type": "bearer"}
    assert sub["mapping"] == {"member_id": "data.key", "collection": "data.collection"}

    web.click("Send test event")
    assert "The receiver answered 2xx" in web.text and "Status code 200" in web.text
    assert secret not in web.text
    web.look("tested")
    headers, body = receiver.requests[-1]
    payload = Webhook(secret).verify(body, headers)
    assert payload["data"] == {"member_id": "key", "collection": "collection", "source": "ihook"}
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    web.follow("Next: Save")
    web.look("save")
    web.click("Save and enable")
    assert "Saved: the subscription is enabled" in web.text
    assert client.get(f"/api/v1/subscriptions/{sub['id']}").json["enabled"] is True
    [delivery] = client.get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json
    assert delivery["status"] == "succeeded", delivery
    assert delivery["id"] in web.text
    web.look("subscription")
    web.follow(delivery["id"])
    assert web.path == f"/ui/deliveries/{delivery['id']}" and "200" in web.text
    assert TOKEN not in web.text
    web.look("delivery")


class Source:
    """A JSON list of items updated since ``?updated_since=``."""

    def __init__(self, server: HTTPServer):
        self.items = [
            {"id": 1, "updated_at": "2026-01-02T00:00:00Z"},
            {"id": 2, "updated_at": "2026-01-03T00:00:00Z"},
        ]
        self.url = server.url_for("/items")
        server.expect_request("/items").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        since = request.args.get("updated_since") or ""
        chosen = [item for item in self.items if item["updated_at"] > since]
        return Response(json.dumps({"data": chosen}), content_type="application/json")


def test_a_poller_is_made_polled_now_and_its_poll_shown(web: Browser, client, platform, httpserver):
    source = Source(httpserver)
    web.sign_in().open("/pollers/new")
    web.look("new")
    assert web.shows("URL") and not web.shows("Connector") and not web.shows("Next link")
    web.fill("Name", "lms").fill("URL", source.url)
    web.fill("Query parameters", "updated_since: {{ state.cursor }}")
    web.fill("Every (seconds)", "300").fill("Items", "data").fill("Item id", "id")
    web.fill("Cursor", "max_by(items, &updated_at).updated_at")
    web.fill("Set the cursor to", '"2026-01-01T00:00:00Z"')
    web.click("Create poller")
    assert web.path.startswith("/ui/pollers/pol_"), web.path
    poller_id = web.path.split("?")[0].rsplit("/", 1)[1]
    assert "No polls yet." in web.text
    web.look("poller")
    web.click("Poll now")
    job_id = re.search(r"queued as job (\S+):", web.text).group(1)
    web.look("queued")
    job = platform.polls.queue.fetch_job(job_id)
    assert poll_job(platform, *job.args).startswith("succeeded")  # as the worker runs it
    [poll] = client.get(f"/api/v1/pollers/{poller_id}/polls").json
    assert poll["items_new"] == 2 and poll["cursor_after"] == "2026-01-03T00:00:00Z"

    web.driver.refresh()
    assert '"2026-01-01T00:00:00Z" → "2026-01-03T00:00:00Z"' in web.text, web.text
    web.look("polled")
    link = web.driver.find_element(By.CSS_SELECTOR, f"a[href$='/polls/{poll['id']}']")
    web._navigate(link.click)
    assert web.path == f"/ui/pollers/{poller_id}/polls/{poll['id']}"
    assert "2026-01-03T00:00:00Z" in web.text
    web.look("poll")


def test_a_user_signs_in_with_a_password_and_out(web: Browser, client):
    made = client.post(
        "/api/v1/users",
        json={"username": "alice", "password": PASSWORD, "scopes": ["read", "write"]},
    )
    assert made.status_code == 201, made.json
    web.open("/sign-in")
    web.look("sign-in")
    web.fill("User name", "Alice").fill("Password", PASSWORD).click("Sign in")
    assert web.path == "/ui/", web.path
    assert "user alice (read, write)" in web.text and PASSWORD not in web.driver.page_source
    web.look("signed-in")
    web.click("Sign out")
    assert "You signed out." in web.text
    web.look("signed-out")
    web.open("/")
    assert web.path.startswith("/ui/sign-in"), web.path
