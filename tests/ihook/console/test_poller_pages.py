"""Pollers in the console: the create and edit form, the poller's page with its actions and
poll log, and one poll's page (``ihook.console.poller_pages``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ihook.console.poller_pages import keep_hidden, next_due, parse_pairs
from ihook.ids import new_id
from ihook.models import Poll, Poller
from ihook.polling import poll_job
from tests.ihook.console.support import Page

FORM = {
    "name": "lms",
    "description": "course completions",
    "enabled": "1",
    "request.via": "url",
    "request.method": "GET",
    "request.params": "updated_since: {{ state.cursor }}\nper_page: 100",
    "request.headers": "Accept: application/json\nX-Api-Key: key-in-clear-123",
    "request.json": "",
    "interval_seconds": "300",
    "cron": "",
    "timezone": "",
    "items": "data",
    "id": "id",
    "cursor": "max_by(items, &updated_at).updated_at",
    "initial_cursor": "2026-01-01T00:00:00Z",
    "pagination.kind": "none",
    "max_pages": "",
    "format": "auto",
    "mode": "item",
    "event_type": "",
}
"""A complete form of a poller of a URL (``request.url`` added by each test)."""
SAME = (
    "request interval_seconds items id_expression cursor_expression pagination max_pages "
    "format mode cursor enabled description"
).split()
"""Fields a poller made by the console and one made by the API with the same body share."""


class Source:
    """A JSON list of items updated since ``?updated_since=``, which tests add to."""

    def __init__(self, server: HTTPServer):
        self.items: list[dict] = []
        self.url = server.url_for("/items")
        server.expect_request("/items").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        since = request.args.get("updated_since") or ""
        chosen = [item for item in self.items if item["updated_at"] > since]
        return Response(json.dumps({"data": chosen}), content_type="application/json")


@pytest.fixture
def source(httpserver: HTTPServer) -> Source:
    made = Source(httpserver)
    made.items = [
        {"id": 1, "updated_at": "2026-01-02T00:00:00Z"},
        {"id": 2, "updated_at": "2026-01-03T00:00:00Z"},
    ]
    return made


def create(ui, source: Source, **changes: str) -> str:
    """Create a poller through the console's form; its id."""
    answer = ui.post("/pollers/new", {**FORM, "request.url": source.url, **changes})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert answer.location.startswith("/ui/pollers/pol_")
    return answer.location.removeprefix("/ui/pollers/").split("?")[0]


def field_error(html: str, field_id: str) -> str:
    """The message pinned under a field (its ``<p id=…-error>``)."""
    return html.split(f'id="{field_id}-error">', 1)[1].split("</p>", 1)[0]


def test_a_poller_created_in_the_console_is_the_one_the_api_makes(ui, client, source):
    html, page = ui.page("/pollers/new")
    legends = [t for t in page.text if t in ("Request", "Schedule", "Items & cursor", "Events")]
    assert legends == ["Request", "Schedule", "Items & cursor", "Events"]
    assert "jmespath" in html and "cron" in html and "state.cursor" in html
    poller_id = create(ui, source)
    made = client.get(f"/api/v1/pollers/{poller_id}").json
    assert made["request"] == {
        "url": source.url,
        "method": "GET",
        "params": {"updated_since": "{{ state.cursor }}", "per_page": "100"},
        "headers": {"Accept": "application/json", "X-Api-Key": "key-in-clear-123"},
    }
    assert made["event_type"] == "lms.item" and made["cursor"] == "2026-01-01T00:00:00Z"
    twin = client.post(
        "/api/v1/pollers",
        json={
            "name": "lms-twin",
            "description": "course completions",
            "request": made["request"],
            "interval_seconds": 300,
            "items": "data",
            "id": "id",
            "cursor": "max_by(items, &updated_at).updated_at",
            "initial_cursor": "2026-01-01T00:00:00Z",
        },
    )
    assert twin.status_code == 201, twin.json
    assert {k: made[k] for k in SAME} == {k: twin.json[k] for k in SAME}
    assert [p["id"] for p in client.get("/api/v1/pollers").json] == [poller_id, twin.json["id"]]
    html, _ = ui.page("/pollers")
    assert f'href="/ui/pollers/{poller_id}">lms</a>' in html and ">New poller</a>" in html


def test_a_poller_with_a_connector_cron_and_pages(ui, client, source):
    made = client.post(
        "/api/v1/connectors",
        json={"name": "lms-api", "kind": "http", "config": {"base_url": "https://lms.example.com"}},
    )
    assert made.status_code == 201, made.json
    html, _ = ui.page("/pollers/new")
    assert '<option value="lms-api">lms-api</option>' in html
    form = {
        "request.via": "connector",
        "request.connector": "lms-api",
        "request.path": "/completions",
        "request.method": "POST",
        "request.json": '{"since": "{{ state.cursor }}"}',
        "request.params": "",
        "interval_seconds": "",
        "cron": "*/15 * * * *",
        "timezone": "Europe/Paris",
        "pagination.kind": "page",
        "pagination.page_param": "page",
        "pagination.first_page": "0",
        "pagination.page_size": "50",
        "pagination.size_param": "per_page",
        "mode": "batch",
        "event_type": "lms.completions",
        "max_pages": "20",
        "enabled": "",
    }
    poller_id = create(ui, source, **form)
    got = client.get(f"/api/v1/pollers/{poller_id}").json
    assert got["request"]["connector"] == "lms-api" and "url" not in got["request"]
    assert got["request"]["json"] == {"since": "{{ state.cursor }}"}
    assert (got["cron"], got["timezone"], got["enabled"]) == ("*/15 * * * *", "Europe/Paris", False)
    assert got["pagination"] == {
        "page_param": "page",
        "first_page": 0,
        "page_size": 50,
        "size_param": "per_page",
    }
    assert (got["mode"], got["event_type"], got["max_pages"]) == ("batch", "lms.completions", 20)
    html, _ = ui.page(f"/pollers/{poller_id}")
    assert "cron <code>*/15 * * * *</code> (Europe/Paris)" in html and "not scheduled" in html


def test_edit_keeps_hidden_secrets_and_replaces_the_definition(ui, client, source):
    poller_id = create(ui, source)
    html, page = ui.page(f"/pollers/{poller_id}/edit")
    assert "key-in-clear-123" not in html and "X-Api-Key: ***" in html
    assert "Accept: application/json" in html and f'value="{source.url}"' in html
    html, _ = ui.page(f"/pollers/{poller_id}")
    assert "key-in-clear-123" not in html and "&#34;X-Api-Key&#34;: &#34;***&#34;" in html
    form = {
        **FORM,
        "request.url": source.url,
        "name": "lms-renamed",
        "request.headers": "Accept: application/json\nX-Api-Key: ***",
        "interval_seconds": "",
        "cron": "@hourly",
        "initial_cursor": "",
    }
    answer = ui.post(f"/pollers/{poller_id}/edit", form)
    assert answer.status_code == 303 and answer.location.endswith("?done=saved")
    got = client.get(f"/api/v1/pollers/{poller_id}").json
    assert got["request"]["headers"]["X-Api-Key"] == "key-in-clear-123"
    assert got["cron"] == "@hourly" and "interval_seconds" not in got
    assert got["cursor"] == "2026-01-01T00:00:00Z"  # an empty "set the cursor" keeps it
    assert got["event_type"] == "lms-renamed.item"  # the default follows the name
    html, _ = ui.page(f"/pollers/{poller_id}?done=saved")
    assert "definition was saved" in html
    answer = ui.post(
        f"/pollers/{poller_id}/edit",
        {**form, "request.headers": "X-Other-Token: ***", "initial_cursor": "null"},
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    Page(html).check()
    assert "X-Other-Token: *** keeps a stored value" in field_error(html, "f-request-headers")
    assert client.get(f"/api/v1/pollers/{poller_id}").json["cursor"] == "2026-01-01T00:00:00Z"


def test_refusals_are_pinned_to_their_fields(ui, client, source):
    form = {
        **FORM,
        "request.url": "ftp://files.example.com/x",
        "cron": "every day",
        "interval_seconds": "",
        "id": "items[",
        "pagination.kind": "page",
        "pagination.size_param": "per_page",
    }
    answer = ui.post("/pollers/new", form)
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    Page(html).check()
    assert "absolute http:// or https://" in field_error(html, "f-request-url")
    assert "cron" in field_error(html, "f-cron").lower()
    assert field_error(html, "f-id")
    assert "needs page_size" in field_error(html, "f-pagination-size_param")
    assert 'id="f-cron" name="cron" type="text" value="every day" aria-invalid="true"' in html
    assert "Some fields are not valid" in html
    answer = ui.post("/pollers/new", {**FORM, "request.url": source.url, "interval_seconds": "x"})
    assert answer.status_code == 422
    assert "whole number" in field_error(answer.get_data(as_text=True), "f-interval_seconds")
    answer = ui.post("/pollers/new", {**FORM, "request.url": source.url, "request.json": "{"})
    assert "not JSON" in field_error(answer.get_data(as_text=True), "f-request-json")
    assert client.get("/api/v1/pollers").json == []
    create(ui, source)
    taken = ui.post("/pollers/new", {**FORM, "request.url": source.url})
    assert taken.status_code == 409 and "lms" in field_error(taken.text, "f-name")


def test_poll_now_queues_a_poll_and_its_log_shows_the_cursor(ui, client, platform, source):
    poller_id = create(ui, source)
    answer = ui.post(f"/pollers/{poller_id}/poll-now")
    assert answer.status_code == 303 and "queued=" in answer.location
    job_id = answer.location.split("queued=", 1)[1]
    assert job_id in platform.polls.queue.job_ids
    html, _ = ui.page(answer.location.removeprefix("/ui"))
    assert f"queued as job <code>{job_id}</code>" in html and "No polls yet." in html
    job = platform.polls.queue.fetch_job(job_id)
    assert poll_job(platform, *job.args).startswith("succeeded")  # as the worker runs it
    polls = client.get(f"/api/v1/pollers/{poller_id}/polls").json
    assert len(polls) == 1 and polls[0]["items_new"] == 2
    html, _ = ui.page(f"/pollers/{poller_id}")
    log = html.split('id="polls-title"')[1]
    assert f'href="/ui/pollers/{poller_id}/polls/{polls[0]["id"]}"' in log
    assert '<code>"2026-01-01T00:00:00Z"</code> → <code>"2026-01-03T00:00:00Z"</code>' in log
    assert 'class="status status-succeeded"' in log and "<td>200</td>" in log
    html, _ = ui.page(f"/pollers/{poller_id}/polls/{polls[0]['id']}")
    cursors = html.split('class="poll-cursors"')[1]
    before, after = "&#34;2026-01-01T00:00:00Z&#34;", "&#34;2026-01-03T00:00:00Z&#34;"
    assert before in cursors and cursors.index(before) < cursors.index(after)
    assert "Poll now" in html and "200" in html and "key-in-clear-123" not in html
    events = client.get(f"/api/v1/pollers/{poller_id}/polls/{polls[0]['id']}").json["events"]
    assert len(events) == 2 and all(f"<code>{e}</code>" in html for e in events)
    source.items.append({"id": None, "updated_at": "2026-02-01T00:00:00Z"})
    assert poll_job(platform, poller_id, None).startswith("failed")
    html, _ = ui.page(f"/pollers/{poller_id}")
    assert 'class="status status-failed"' in html and "Failures in a row" in html


def test_the_poll_log_pages_newest_first(ui, platform, source):
    poller_id = create(ui, source)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = sorted(new_id("poll") for _ in range(21))  # the log is in id order, as the API's
    with platform.db.session() as session:
        session.add_all(
            Poll(
                id=poll_id,
                poller_id=poller_id,
                trigger="manual",
                status="succeeded",
                started_at=start + timedelta(minutes=n),
                cursor_before=n,
                cursor_after=n + 1,
            )
            for n, poll_id in enumerate(ids)
        )
    html, _ = ui.page(f"/pollers/{poller_id}")
    assert ids[-1] in html and ids[1] in html and ids[0] not in html
    older = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    html, _ = ui.page(older.removeprefix("/ui"))
    assert ids[0] in html and ids[1] not in html and ">Newest<" in html


def test_disable_enable_and_delete(ui, client, source):
    poller_id = create(ui, source)
    html, _ = ui.page(f"/pollers/{poller_id}")
    assert "Next poll" in html and ">Disable</button>" in html
    assert 'data-confirm="Delete poller lms with its poll log?' in html
    answer = ui.post(f"/pollers/{poller_id}/disable")
    assert answer.status_code == 303 and answer.location.endswith("done=disabled")
    got = client.get(f"/api/v1/pollers/{poller_id}").json
    assert got["enabled"] is False and got["schedule_from"] is None
    html, _ = ui.page(f"/pollers/{poller_id}?done=disabled")
    assert ">Enable</button>" in html and "not scheduled: disabled" in html
    assert ui.post(f"/pollers/{poller_id}/enable").status_code == 303
    assert client.get(f"/api/v1/pollers/{poller_id}").json["enabled"] is True
    answer = ui.post(f"/pollers/{poller_id}/delete")
    assert answer.status_code == 303 and answer.location == "/ui/pollers?deleted=1"
    assert client.get(f"/api/v1/pollers/{poller_id}").status_code == 404
    html, _ = ui.page("/pollers?deleted=1")
    assert "The poller was deleted" in html
    ui.page(f"/pollers/{poller_id}", status=404)


def test_a_read_token_sees_but_cannot_change(browser, ui, client, source, token):
    poller_id = create(ui, source)
    browser.sign_in(token("read")["token"])
    html, _ = browser.page(f"/pollers/{poller_id}")
    assert "Poll now" not in html and ">Delete</button>" not in html
    html, _ = browser.page("/pollers")
    assert "New poller" not in html
    assert browser.get("/pollers/new").status_code == 403
    assert browser.get(f"/pollers/{poller_id}/edit").status_code == 403
    for path, form in [
        ("/pollers/new", {**FORM, "request.url": source.url, "name": "other"}),
        (f"/pollers/{poller_id}/edit", {**FORM, "request.url": source.url}),
        (f"/pollers/{poller_id}/poll-now", {}),
        (f"/pollers/{poller_id}/disable", {}),
        (f"/pollers/{poller_id}/delete", {}),
    ]:
        answer = browser.post(path, form)
        assert answer.status_code == 403, path
    got = client.get(f"/api/v1/pollers/{poller_id}").json
    assert got["enabled"] is True and len(client.get("/api/v1/pollers").json) == 1


def test_forms_without_the_csrf_token_change_nothing(ui, client, platform, source):
    poller_id = create(ui, source)
    for path in ("/pollers/new", "edit", "poll-now", "disable", "delete"):
        target = path if path.startswith("/") else f"/pollers/{poller_id}/{path}"
        answer = ui.post(target, {**FORM, "request.url": source.url, "name": "x"}, csrf=None)
        assert answer.status_code == 400 and "form was out of date" in answer.text
    got = client.get(f"/api/v1/pollers/{poller_id}").json
    assert got["name"] == "lms" and got["enabled"] is True
    assert platform.polls.queue.count == 0 and len(client.get("/api/v1/pollers").json) == 1


def test_unknown_pollers_and_polls_are_404_pages(ui, source):
    poller_id = create(ui, source)
    for path in ("/pollers/pol_missing", "/pollers/pol_missing/edit", "/pollers/pol_\x00"):
        ui.page(path, status=404)
    ui.page(f"/pollers/{poller_id}/polls/poll_missing", status=404)
    assert ui.post("/pollers/pol_missing/poll-now").status_code == 404
    assert ui.post("/pollers/pol_missing/delete").status_code == 404


def test_a_queued_notice_shows_only_a_job_of_this_poller(ui, source):
    poller_id = create(ui, source)
    html, _ = ui.page(f"/pollers/{poller_id}?queued=Your+account+is+locked")
    assert "account is locked" not in html and "queued as job" not in html


def test_name_value_lines_and_hidden_values():
    assert parse_pairs("a: 1\n\n b :x: y ") == ({"a": "1", "b": "x: y"}, None)
    assert parse_pairs("no colon")[1] == "line 1: write name: value"
    assert parse_pairs("a: 1\na: 2")[1] == "line 2: a is given twice"
    given = {"authorization": "***", "Accept": "x"}
    assert keep_hidden(given, {"Authorization": "Bearer t"}, header=True) is None
    assert given == {"authorization": "Bearer t", "Accept": "x"}
    assert "keeps a stored value" in keep_hidden({"token": "***"}, {}, header=False)


def test_next_due_follows_the_schedule_and_the_back_off():
    now = datetime(2026, 1, 1, 10, 2, tzinfo=UTC)
    row = Poller(
        config={"schedule": {"interval_seconds": 300}},
        enabled=True,
        schedule_from=now - timedelta(hours=1),
        last_slot=datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
        retry_after=None,
    )
    assert next_due(row, now) == datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    row.last_slot = datetime(2026, 1, 1, 9, 55, tzinfo=UTC)
    assert next_due(row, now) == now  # the 10:00 slot has come and is not queued yet
    row.retry_after = datetime(2026, 1, 1, 10, 7, tzinfo=UTC)
    assert next_due(row, now) == row.retry_after
    row.enabled = False
    assert next_due(row, now) is None


def test_user_text_is_escaped_on_every_poller_page(ui, client, platform, public_dns):
    xss = "<script>alert(1)</script>"
    made = client.post(
        "/api/v1/pollers",
        json={
            "name": "hostile",
            "description": xss,
            "request": {
                "url": "https://lms.example.com/x",
                "params": {"q": xss},
                "headers": {"X-Note": xss},
            },
            "interval_seconds": 60,
            "id": "id",
            "initial_cursor": xss,
        },
    )
    assert made.status_code == 201, made.json
    poller_id = made.json["id"]
    poll_id = new_id("poll")
    with platform.db.session() as session:
        session.add(
            Poll(
                id=poll_id,
                poller_id=poller_id,
                status="failed",
                error=xss,
                cursor_before=xss,
                cursor_after=xss,
            )
        )
    for path in (
        f"/pollers/{poller_id}",
        f"/pollers/{poller_id}/edit",
        f"/pollers/{poller_id}/polls/{poll_id}",
        "/pollers/new",
        "/pollers",
    ):
        html, _ = ui.page(path)
        assert xss not in html, path
        assert "<script>" not in html.replace("<script src=", ""), path
