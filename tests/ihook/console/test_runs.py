"""Runs in the console: the filtered list, a run's step timeline, and Retry
(``ihook.console.runs``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from ihook.models import Run
from tests.support import wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

ECHO = {
    "name": "echo",
    "trigger": {"endpoint": "shop"},
    "steps": [
        {"id": "copy", "type": "transform", "expression": "data"},
        {"id": "total", "type": "transform", "mapping": {"n": "data.order"}},
    ],
}
FAILED_STEPS = [
    {
        "id": "copy",
        "type": "transform",
        "status": "succeeded",
        "started_at": "2024-05-01T12:00:00+00:00",
        "finished_at": "2024-05-01T12:00:00.012000+00:00",
        "duration_ms": 12.0,
        "output": '{"order": 1}',
        "error": None,
    },
    {
        "id": "total",
        "type": "transform",
        "status": "failed",
        "started_at": "2024-05-01T12:00:00.012000+00:00",
        "finished_at": "2024-05-01T12:00:03.412000+00:00",
        "duration_ms": 3400.0,
        "error": "boom: no such field",
    },
]


@pytest.fixture
def shop(client) -> dict:
    made = client.post("/api/v1/endpoints", json={"name": "shop", "auth": {"type": "none"}})
    wf = client.post("/api/v1/workflows", json=ECHO)
    other = client.post(
        "/api/v1/workflows", json={**ECHO, "name": "other", "trigger": {"manual": True}}
    )
    assert made.status_code == wf.status_code == other.status_code == 201
    return {"key": made.json["ingest_url"].rsplit("/", 1)[1], "echo": wf.json, "other": other.json}


def send(client, shop: dict, body: dict) -> str:
    """Post to the shop endpoint; the id of its one run."""
    time.sleep(0.005)
    answer = client.raw.post(f"/hooks/{shop['key']}", json=body)
    assert answer.status_code == 202, answer.json
    return answer.json["runs"][0]


def fail(platform, run_id: str, **values) -> None:
    """Record a failed attempt of a run, as a worker would."""
    now = datetime.now(UTC)
    values = {
        "status": "failed",
        "attempt": 1,
        "started_at": now - timedelta(seconds=4),
        "finished_at": now,
        "error": "step total: boom: no such field",
        "failed_step": "total",
        "steps": FAILED_STEPS,
        **values,
    }
    with platform.db.session() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def run_ids(html: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split('href="/ui/runs/')[1:]]


def test_the_run_list_filters_by_workflow_status_and_date(ui, client, platform, shop):
    first = send(client, shop, {"order": 1})
    second = send(client, shop, {"order": 2})
    manual = client.post(f"/api/v1/workflows/{shop['other']['id']}/runs", json={"data": {}})
    assert manual.status_code == 202, manual.json
    fail(platform, first)
    html, page = ui.page("/runs")
    listed = run_ids(html)
    assert (
        listed[:2] == [manual.json["runs"][0], second] and listed[2] == first and len(listed) == 3
    )
    html, _ = ui.page(f"/runs?workflow_id={shop['echo']['id']}")
    assert run_ids(html) == [second, first]
    assert f'<option value="{shop["echo"]["id"]}" selected>echo</option>' in html
    html, _ = ui.page("/runs?status=failed")
    assert run_ids(html) == [first] and "step total: boom" in html
    today = datetime.now(UTC).date()
    html, _ = ui.page(f"/runs?since={today}&until={today}")
    assert len(run_ids(html)) == 3
    html, _ = ui.page(f"/runs?since={today + timedelta(days=1)}")
    assert run_ids(html) == [] and "No runs match." in html


def test_the_run_list_pages_like_the_api(ui, client, shop):
    made = [send(client, shop, {"order": n}) for n in range(3)]
    html, _ = ui.page("/runs?limit=2")
    assert run_ids(html) == made[:0:-1]
    older = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert f"after={made[1]}" in older and "limit=2" in older
    html, _ = ui.page(older.removeprefix("/ui"))
    assert run_ids(html) == [made[0]] and 'rel="next"' not in html and ">Newest<" in html


def test_bad_filters_are_named_on_the_page(ui):
    html, _ = ui.page("/runs?status=bogus&since=yesterday&limit=0", status=400)
    assert "one of queued, running, succeeded, failed, skipped" in html
    assert "a date (2024-05-01)" in html and "a whole number from 1 to 1000" in html
    assert 'aria-invalid="true" aria-describedby="e-status"' in html


def test_a_run_shows_its_step_timeline(ui, client, platform, shop):
    run_id = send(client, shop, {"order": 1})
    fail(platform, run_id)
    html, _ = ui.page(f"/runs/{run_id}")
    assert "echo (version 1)" in html and 'class="status status-failed"' in html
    timeline = html.split('class="timeline"')[1]
    assert timeline.index("<code>copy</code>") < timeline.index("<code>total</code>")
    assert "12 ms" in timeline and "3.4 s" in timeline and "boom: no such field" in timeline
    assert 'class="step step-failed"' in timeline and "2024-05-01 12:00:00 UTC" in timeline
    assert 'http-equiv="refresh"' not in html  # finished: no reloading


def test_a_run_of_a_real_worker_shows_its_steps(ui, client, shop, worker):
    run_id = send(client, shop, {"order": 7})
    done = wait_for(
        lambda: (r := client.get(f"/api/v1/runs/{run_id}").json)["status"] == "succeeded" and r
    )
    html, _ = ui.page(f"/runs/{run_id}")
    for step in done["steps"]:
        assert f"<code>{step['id']}</code>" in html
    assert html.count('class="step step-succeeded"') == 2


def test_retry_with_a_write_token_queues_the_run_again(browser, client, platform, shop, token):
    run_id = send(client, shop, {"order": 1})
    fail(platform, run_id)
    browser.sign_in(token("write")["token"])
    html, _ = browser.page(f"/runs/{run_id}")
    assert ">Retry</button>" in html
    answer = browser.post(f"/runs/{run_id}/retry", csrf=browser.csrf(f"/runs/{run_id}"))
    assert answer.status_code == 303 and answer.location == f"/ui/runs/{run_id}?retried=1"
    after = client.get(f"/api/v1/runs/{run_id}").json
    assert after["status"] == "queued" and after["error"] is None
    html, _ = browser.page(f"/runs/{run_id}?retried=1")
    assert "Queued again" in html and ">Retry</button>" not in html  # not finished now
    assert '<meta http-equiv="refresh" content="2">' in html  # it reloads until finished
    again = browser.post(f"/runs/{run_id}/retry")
    assert again.status_code == 409 and "only finished runs can be retried" in again.text


def test_retry_is_refused_to_a_read_token(browser, client, platform, shop, token):
    run_id = send(client, shop, {"order": 1})
    fail(platform, run_id)
    browser.sign_in(token("read")["token"])
    html, _ = browser.page(f"/runs/{run_id}")
    assert ">Retry</button>" not in html
    answer = browser.post(f"/runs/{run_id}/retry")
    assert answer.status_code == 403 and "lacks the &#39;write&#39; scope" in answer.text
    assert client.get(f"/api/v1/runs/{run_id}").json["status"] == "failed"


def test_retry_without_the_csrf_token_changes_nothing(ui, client, platform, shop):
    run_id = send(client, shop, {"order": 1})
    fail(platform, run_id)
    for csrf in (None, "", "forged"):
        answer = ui.post(f"/runs/{run_id}/retry", csrf=csrf)
        assert answer.status_code == 400 and "form was out of date" in answer.text
    assert client.get(f"/api/v1/runs/{run_id}").json["status"] == "failed"


def test_unknown_runs_are_404_pages(ui):
    for run_id in ("run_missing", "run_\x00nul"):
        html, _ = ui.page(f"/runs/{run_id}", status=404)
    assert ui.post("/runs/run_missing/retry").status_code == 404
