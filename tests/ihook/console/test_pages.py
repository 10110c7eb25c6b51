"""The console's read-only pages render what was made through the API
(``ihook.console.dashboard``, ``ihook.console.pages``)."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask

from ihook import init_app
from tests.conftest import ADMIN_TOKEN
from tests.ihook.console.support import Console

pytestmark = [
    pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True),
    pytest.mark.usefixtures("public_dns"),
]

ECHO = {
    "name": "echo",
    "description": "copies what came in",
    "trigger": {"endpoint": "shop"},
    "steps": [{"id": "copy", "type": "transform", "expression": "data"}],
}


@pytest.fixture
def shop(client) -> dict:
    """Endpoint ``shop`` (auth none), ``guarded`` (bearer) and workflow ``echo`` on shop."""
    made = client.post("/api/v1/endpoints", json={"name": "shop", "auth": {"type": "none"}})
    assert made.status_code == 201, made.json
    guarded = client.post(
        "/api/v1/endpoints",
        json={"name": "guarded", "auth": {"type": "bearer"}},
    )
    assert guarded.status_code == 201, guarded.json
    wf = client.post("/api/v1/workflows", json=ECHO)
    assert wf.status_code == 201, wf.json
    return {"shop": made.json, "guarded": guarded.json, "echo": wf.json}


def key(endpoint: dict) -> str:
    return endpoint["ingest_url"].rsplit("/", 1)[1]


def send(client, endpoint: dict, body: dict, status: int = 202) -> dict:
    time.sleep(0.005)
    answer = client.raw.post(f"/hooks/{key(endpoint)}", json=body)
    assert answer.status_code == status, answer.json
    return answer.json


def test_the_dashboard_counts_the_last_day(ui, client, shop):
    for n in range(3):
        send(client, shop["shop"], {"order": n})
    send(client, shop["guarded"], {"order": 9}, status=401)
    html, page = ui.page("/")
    text = " ".join(" ".join(page.text).split())
    assert "Events in 3" in text
    assert "Runs 3 queued 3 running 0 succeeded 0 failed 0 skipped 0" in text
    assert "Deliveries 0" in text
    assert "redis ok" in text and "database ok" in text and "queued runs 3" in text
    assert "workers 0" in text  # no worker in this test, and the dashboard says so
    assert html.count('class="bar bar-events"') == 24
    assert "3 events received" in html  # the current hour's bar
    assert 'role="img"' in html and "<desc" in html


def test_the_dashboard_fragment_is_the_live_part_only(ui):
    answer = ui.get("/?fragment=1")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "<html" not in html and "Events in" in html
    full = ui.get("/").get_data(as_text=True)
    assert 'data-refresh="/ui/?fragment=1"' in full


def test_the_endpoints_page_hides_keys_and_counts_requests(ui, client, shop):
    send(client, shop["shop"], {"order": 1})
    send(client, shop["shop"], {"order": 2})
    for _ in range(2):
        send(client, shop["guarded"], {"order": 3}, status=401)
    html, _ = ui.page("/endpoints")
    for name in ("shop", "guarded"):
        full = shop[name]["ingest_url"]
        hint = shop[name]["key_hint"]
        assert full not in html and key(shop[name]) not in html
        assert f"{full.rsplit('/', 1)[0]}/{hint}…" in html
    assert shop["guarded"]["secret"] not in html
    rows = {
        re.sub(r"<[^>]+>", "", row.split("</th>")[0]).strip(): row for row in html.split("<tr>")[2:]
    }
    assert "<td>bearer</td>" in rows["guarded"] and "<td>none</td>" in rows["shop"]
    assert "<td>2</td>\n      <td>0</td>" in rows["shop"]
    assert '<td>0</td>\n      <td class="failing">2</td>' in rows["guarded"]


def test_the_workflows_page_shows_trigger_and_version(ui, client, shop):
    wf = shop["echo"]
    updated = client.put(f"/api/v1/workflows/{wf['id']}", json={**ECHO, "description": "v2"})
    assert updated.status_code == 200, updated.json
    client.post("/api/v1/workflows", json={**ECHO, "name": "nightly", "trigger": {"manual": True}})
    html, _ = ui.page("/workflows")
    assert "echo" in html and "endpoint: shop" in html and "<td>2</td>" in html
    assert "nightly" in html and "<td>manual</td>" in html
    assert f'href="/ui/runs?workflow_id={wf["id"]}"' in html


def test_the_subscriptions_page_hides_url_credentials(ui, client):
    made = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "crm",
            "url": "https://hooks.example.com/in?api_key=hidden-value",
            "event_types": ["record.*", "course.completed"],
        },
    )
    assert made.status_code == 201, made.json
    html, _ = ui.page("/subscriptions")
    assert "crm" in html and "record.*, course.completed" in html
    assert "https://hooks.example.com/in?…" in html and "hidden-value" not in html


def test_the_pollers_page_shows_request_and_schedule(ui, client):
    made = client.post(
        "/api/v1/pollers",
        json={
            "name": "lms-completions",
            "request": {"url": "https://lms.example.com/api/completions?since={{ state.cursor }}"},
            "interval_seconds": 60,
            "id": "id",
        },
    )
    assert made.status_code == 201, made.json
    html, _ = ui.page("/pollers")
    assert "lms-completions" in html and "every 60 s" in html
    assert "https://lms.example.com/api/completions?…" in html and "state.cursor" not in html


def test_empty_lists_say_so(ui):
    for path, text in [
        ("/endpoints", "No endpoints yet"),
        ("/workflows", "No workflows yet"),
        ("/subscriptions", "No subscriptions yet"),
        ("/pollers", "No pollers yet"),
        ("/runs", "No runs match."),
    ]:
        html, _ = ui.page(path)
        assert text in html, path


def test_the_console_mounts_under_a_host_prefix(platform):
    host = Flask("members")
    host.config["TESTING"] = True
    init_app(host, url_prefix="/integrations", platform=platform)
    console = Console(host.test_client(), prefix="/integrations")
    assert console.get("/").location.startswith("/integrations/ui/sign-in")
    assert console.sign_in(ADMIN_TOKEN).location == "/integrations/ui/"
    html, _ = console.page("/")
    assert 'href="/integrations/ui/runs"' in html
    assert "/integrations/ui/static/console/console.css" in html
    assert console.http.get("/ui/").status_code == 404
