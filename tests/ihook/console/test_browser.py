"""The console in a real headless Chromium against the app served over HTTP: signing in,
every list page, the run filter, a failed run's page and Retry, signing out; each page
screenshotted at 1280x800 and 375 px wide, none scrolling sideways at 375 px, none logging
a script error or CSP refusal; and reading with JavaScript disabled
(harness: ``tests/ihook/console/browser.py``)."""

from __future__ import annotations

import time

import pytest

from ihook import jobs
from tests.ihook.console import browser
from tests.ihook.console.browser import Browser

# The harness's fixtures, made this module's (pytest finds fixtures by module attribute).
chromium, chromium_no_js, live_url = browser.chromium, browser.chromium_no_js, browser.live_url
web, web_no_js = browser.web, browser.web_no_js

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("public_dns")]

BROKEN = {
    "name": "totals",
    "description": "adds up an order's lines",
    "trigger": {"endpoint": "shop"},
    "steps": [
        {"id": "copy", "type": "transform", "expression": "data"},
        {"id": "total", "type": "transform", "mapping": {"n": "sum(data.lines)"}},
    ],
}
"""A workflow whose second step fails for good on an order with no lines: ``sum(null)``."""


@pytest.fixture
def shop(client) -> dict:
    """One of each thing the list pages show: endpoint ``shop``, the ``totals`` workflow
    on it, a subscription and a poller."""
    made = {
        "endpoint": client.post(
            "/api/v1/endpoints", json={"name": "shop", "auth": {"type": "none"}}
        ),
        "workflow": client.post("/api/v1/workflows", json=BROKEN),
        "subscription": client.post(
            "/api/v1/subscriptions",
            json={
                "name": "crm",
                "url": "https://hooks.example.com/in?api_key=hidden-value",
                "event_types": ["record.*", "run.failed"],
            },
        ),
        "poller": client.post(
            "/api/v1/pollers",
            json={
                "name": "lms-completions",
                "request": {"url": "https://lms.example.com/api/completions"},
                "interval_seconds": 60,
                "id": "id",
            },
        ),
    }
    for answer in made.values():
        assert answer.status_code == 201, answer.json
    return {name: answer.json for name, answer in made.items()}


def send(client, shop: dict, body: dict) -> str:
    """Post a webhook to ``shop``; the id of the run it queued."""
    time.sleep(0.005)
    key = shop["endpoint"]["ingest_url"].rsplit("/", 1)[1]
    answer = client.raw.post(f"/hooks/{key}", json=body)
    assert answer.status_code == 202, answer.json
    return answer.json["runs"][0]


@pytest.fixture
def runs(client, platform, shop) -> dict[str, str]:
    """A failed run and a succeeded one of ``totals``, executed by the worker's own drain
    job in this process."""
    failed = send(client, shop, {"order": 1})
    made = {"failed": failed, "succeeded": send(client, shop, {"order": 2, "lines": [3, 4]})}
    jobs.use_platform(platform)
    try:
        assert jobs.drain_runs() == "2 run(s)"
    finally:
        jobs.use_platform(None)
    for status, run_id in made.items():
        assert client.get(f"/api/v1/runs/{run_id}").json["status"] == status
    return made


def test_a_failed_run_is_found_and_retried(web: Browser, client, runs):
    web.open("/runs")
    assert web.path.startswith("/ui/sign-in?"), web.path
    web.look("sign-in")
    web.sign_in()
    assert web.path == "/ui/runs", web.path  # back where the sign-in began
    web.look("runs")
    web.fill("Status", "failed").click("Filter")
    assert web.path.startswith("/ui/runs?") and "status=failed" in web.path, web.path
    assert runs["failed"] in web.text and runs["succeeded"] not in web.text
    web.look("runs-failed")
    web.follow(runs["failed"])
    assert "step total" in web.text and "Retry" in web.text
    web.look("run-failed")
    web.click("Retry")
    assert web.path == f"/ui/runs/{runs['failed']}?retried=1"
    assert "Queued again" in web.text
    web.look("run-retried")
    assert client.get(f"/api/v1/runs/{runs['failed']}").json["status"] == "queued"
    web.click("Sign out")
    assert "You signed out." in web.text
    web.look("signed-out")


def test_every_page_of_the_menu_reads_at_both_widths(web: Browser, shop, runs):
    web.sign_in()
    assert web.path == "/ui/", web.path
    assert "Dashboard" in web.text and "database ok" in web.text
    web.look("dashboard")
    shows = {
        "Endpoints": "shop",
        "Workflows": "totals",
        "Subscriptions": "crm",
        "Pollers": "lms-completions",
        "Runs": runs["succeeded"],
    }
    menu = web.menu()
    assert set(shows) <= set(menu), menu
    for page in menu:  # pages added to the menu later are checked too
        web.follow(page)
        assert shows.get(page, page) in web.text, (page, web.text)
        web.look(page.lower().replace(" ", "-"))


def test_a_bad_token_is_refused_on_the_page(web: Browser):
    web.sign_in("not-a-token")
    assert web.path == "/ui/sign-in" and "That token is not valid." in web.text
    web.look("refused")


def test_pages_read_with_javascript_off(web_no_js: Browser, client, runs):
    web = web_no_js
    web.sign_in()
    assert "Events in" in web.text and "database ok" in web.text
    web.look("dashboard")
    web.follow("Runs")
    assert runs["failed"] in web.text and runs["succeeded"] in web.text
    web.look("runs")
    web.fill("Status", "failed").click("Filter")
    assert runs["failed"] in web.text and runs["succeeded"] not in web.text
    web.look("runs-failed")
    web.follow(runs["failed"])
    assert "step total" in web.text
    web.look("run-failed")
    # With no script the form posts as it is; had console.js run, its question would be
    # open and the click would not reach the next page.
    web.click("Retry")
    assert "Queued again" in web.text
    web.look("run-retried")
    assert client.get(f"/api/v1/runs/{runs['failed']}").json["status"] == "queued"
