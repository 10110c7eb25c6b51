"""Polls against a real local source: new items become events once, failures store nothing."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select
from werkzeug import Request, Response

from ihook.errors import NotFound
from ihook.ids import new_id
from ihook.models import Event, Poll, Poller, PollerItem, Run, utcnow
from ihook.platform import Platform
from ihook.polling import backoff, poll, poll_job
from ihook.services.polls import get_poll, list_polls
from tests.support import completion, wait_for

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

PAGED = {
    "items": "data",
    "id": "id",
    "pagination": {"page_param": "page", "page_size": 100, "size_param": "per_page"},
}
"""A poller of ``Source`` reading pages of 100."""


class Source:
    """A paged JSON API: ``?page=&per_page=&updated_since=`` over ``items``, which tests edit."""

    def __init__(self, server: HTTPServer, path: str = "/items"):
        self.items: list[dict] = []
        self.requests: list[dict] = []
        self.fail: tuple[int, int] | None = None
        """``(page, status)``: that page answers with that status."""
        self.barrier: threading.Barrier | None = None
        """Holds each request for the first page until as many have come."""
        self.url = server.url_for(path)
        server.expect_request(path).respond_with_handler(self.handle)

    def add(self, count: int) -> None:
        for n in range(len(self.items) + 1, len(self.items) + count + 1):
            stamp = f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
            self.items.append({"id": n, "name": f"item {n}", "updated_at": stamp})

    def handle(self, request: Request) -> Response:
        self.requests.append(request.args.to_dict())
        page = int(request.args.get("page", 1))
        if self.barrier is not None and page == 1:
            self.barrier.wait(timeout=10)
        size = int(request.args.get("per_page", 100))
        if self.fail is not None and self.fail[0] == page:
            return Response("upstream down for maintenance", status=self.fail[1])
        since = request.args.get("updated_since") or ""
        chosen = [item for item in self.items if item["updated_at"] > since]
        body = {"data": chosen[(page - 1) * size : page * size], "total": len(chosen)}
        return Response(json.dumps(body), content_type="application/json")


def make_poller(p: Platform, name: str = "source", event_type: str = "item.found", **config):
    with p.db.session() as session:
        row = Poller(id=new_id("pol"), name=name, config=config, event_type=event_type)
        session.add(row)
    return row.id


def poller(p: Platform, poller_id: str) -> Poller:
    with p.db.session() as session:
        return session.get(Poller, poller_id)


def event_data(p: Platform, name: str = "source") -> list:
    with p.db.session() as session:
        query = select(Event).where(Event.source == f"poller:{name}").order_by(Event.id)
        return [event.data for event in session.scalars(query)]


def count(p: Platform, model) -> int:
    with p.db.session() as session:
        return session.scalar(select(func.count()).select_from(model))


def workflow(client, poller_name: str = "source", name: str = "on-item") -> dict:
    steps = [{"id": "keep", "type": "transform", "expression": "data"}]
    answer = client.post(
        "/api/v1/workflows",
        json={"name": name, "trigger": {"poller": poller_name}, "steps": steps},
    )
    assert answer.status_code == 201, answer.json
    return answer.json


@both_backends
def test_new_items_become_events_once_across_polls_and_restarts(
    client, platform, settings, httpserver
):
    source = Source(httpserver)
    source.add(300)
    bound = workflow(client)
    pid = make_poller(platform, request={"url": source.url}, **PAGED)

    first = poll(platform, pid, slot=None)
    assert (first.status, first.error) == ("succeeded", None)
    assert (first.pages, first.items_seen, first.items_new) == (4, 300, 300)  # 3 full + 1 empty
    assert first.http_status == 200 and len(first.events) == 300
    assert [r["page"] for r in source.requests] == ["1", "2", "3", "4"]
    assert all(r["per_page"] == "100" for r in source.requests)
    assert sorted(d["id"] for d in event_data(platform)) == list(range(1, 301))
    with platform.db.session() as session:
        runs = list(session.scalars(select(Run)))
    assert len(runs) == 300 and {r.workflow_id for r in runs} == {bound["id"]}
    assert platform.queue.depth() == 1  # a worker woken after the commit

    source.add(5)
    second = poll(platform, pid, slot=None)
    assert (second.items_seen, second.items_new, len(second.events)) == (305, 5, 5)
    assert poll(platform, pid, slot=None).items_new == 0

    restarted = Platform(settings)
    try:
        again = poll(restarted, pid, slot=None)
    finally:
        restarted.close()
    assert (again.status, again.items_new) == ("succeeded", 0)
    assert sorted(d["id"] for d in event_data(platform)) == list(range(1, 306))
    assert (count(platform, Run), count(platform, PollerItem), count(platform, Poll)) == (
        305,
        305,
        4,
    )


def test_next_links_are_followed_relative_or_absolute(platform, httpserver):
    def feed(request: Request) -> Response:
        after = int(request.args.get("after", 0))
        links = {0: "/feed?after=2", 2: httpserver.url_for("/feed?after=4"), 4: None}
        items = [{"key": f"k{n}"} for n in range(after + 1, min(after + 2, 5) + 1)]
        body = {"results": items, "links": {"next": links[after]}}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/feed").respond_with_handler(feed)
    pid = make_poller(
        platform,
        request={"url": httpserver.url_for("/feed?src=lms"), "params": {"limit": "2"}},
        items="results",
        id="key",
        pagination={"next": "links.next"},
    )
    done = poll(platform, pid, slot=None)
    assert (done.status, done.pages, done.items_new) == ("succeeded", 3, 5)
    assert sorted(d["key"] for d in event_data(platform)) == ["k1", "k2", "k3", "k4", "k5"]
    # The params join the URL's own query on the first page; a next link carries its own.
    sent = [(r.path, r.args.to_dict()) for r, _ in httpserver.log]
    assert sent == [
        ("/feed", {"src": "lms", "limit": "2"}),
        ("/feed", {"after": "2"}),
        ("/feed", {"after": "4"}),
    ]


def test_a_next_link_to_another_origin_fails_the_poll(platform, httpserver):
    elsewhere = httpserver.url_for("/steal").replace("127.0.0.1", "localhost")
    body = {"results": [{"key": 1}], "next": elsewhere}
    httpserver.expect_request("/feed").respond_with_json(body)
    pid = make_poller(
        platform,
        request={"url": httpserver.url_for("/feed")},
        items="results",
        id="key",
        pagination={"next": "next"},
    )
    done = poll(platform, pid, slot=None)
    assert done.status == "failed"
    assert "page 1: next link http://localhost:" in done.error
    assert "leaves the first request's origin" in done.error
    assert event_data(platform) == [] and count(platform, PollerItem) == 0


def test_ndjson_and_csv_bodies(platform, httpserver):
    lines = '{"id": "a", "n": 1}\n\n{"id": "b", "n": 2}\r\n{"id": "a", "n": 3}\n'
    httpserver.expect_request("/events.ndjson").respond_with_data(
        lines, content_type="application/x-ndjson"
    )
    csv_text = '\ufeffsku,name,price\r\nA-1,Pen,1.50\r\nB-2,"Ink, blue",3\r\n'
    httpserver.expect_request("/export.csv").respond_with_data(
        csv_text.encode("utf-8"), content_type="text/csv; charset=utf-8"
    )
    latin = "sku,name\nC-3,Crème\n".encode("latin-1")
    httpserver.expect_request("/legacy").respond_with_data(
        latin, content_type="text/plain; charset=iso-8859-1"
    )
    ndjson = make_poller(
        platform, "ndjson", request={"url": httpserver.url_for("/events.ndjson")}, id="id"
    )
    csv_ = make_poller(
        platform, "csv", request={"url": httpserver.url_for("/export.csv")}, id="sku"
    )
    legacy = make_poller(
        platform, "legacy", request={"url": httpserver.url_for("/legacy")}, id="sku", format="csv"
    )

    done = poll(platform, ndjson, slot=None)
    assert (done.status, done.items_seen, done.items_new) == ("succeeded", 3, 2)
    # An id repeated within a poll: its first item is the one kept.
    assert sorted(event_data(platform, "ndjson"), key=lambda d: d["id"]) == [
        {"id": "a", "n": 1},
        {"id": "b", "n": 2},
    ]
    done = poll(platform, csv_, slot=None)
    assert (done.status, done.items_new) == ("succeeded", 2)
    assert sorted(event_data(platform, "csv"), key=lambda d: d["sku"]) == [
        {"sku": "A-1", "name": "Pen", "price": "1.50"},  # the BOM is not part of "sku"
        {"sku": "B-2", "name": "Ink, blue", "price": "3"},
    ]
    done = poll(platform, legacy, slot=None)  # format: csv whatever the type; its charset
    assert (done.status, event_data(platform, "legacy")) == (
        "succeeded",
        [{"sku": "C-3", "name": "Crème"}],
    )


def test_batch_mode_is_one_event_per_poll_with_new_items(platform, httpserver):
    source = Source(httpserver)
    source.add(3)
    pid = make_poller(platform, request={"url": source.url}, mode="batch", **PAGED)
    assert poll(platform, pid, slot=None).items_new == 3
    assert poll(platform, pid, slot=None).events == []  # nothing new: no event
    source.add(2)
    done = poll(platform, pid, slot=None)
    assert (done.items_new, len(done.events)) == (2, 1)
    batches = event_data(platform)
    assert [(b["count"], [i["id"] for i in b["items"]]) for b in batches] == [
        (3, [1, 2, 3]),
        (2, [4, 5]),
    ]


def test_the_cursor_is_a_watermark_that_moves_only_on_success(platform, httpserver):
    source = Source(httpserver)
    source.add(3)
    pid = make_poller(
        platform,
        request={"url": source.url, "params": {"updated_since": "{{ state.cursor or '' }}"}},
        cursor="max_by(items, &updated_at).updated_at",
        **PAGED,
    )
    first = poll(platform, pid, slot=None)
    assert (first.cursor_before, first.cursor_after) == (None, "2026-01-01T00:00:03Z")
    assert source.requests[0]["updated_since"] == ""

    source.add(2)
    source.fail = (1, 503)
    failed = poll(platform, pid, slot=None)
    assert failed.status == "failed" and failed.cursor_after == "2026-01-01T00:00:03Z"
    assert poller(platform, pid).cursor == "2026-01-01T00:00:03Z"

    source.fail = None
    source.requests.clear()
    caught_up = poll(platform, pid, slot=None)
    assert source.requests[0]["updated_since"] == "2026-01-01T00:00:03Z"
    assert (caught_up.items_seen, caught_up.items_new) == (2, 2)
    assert caught_up.cursor_after == poller(platform, pid).cursor == "2026-01-01T00:00:05Z"
    empty = poll(platform, pid, slot=None)  # no items: max_by is null, the cursor stays
    assert (empty.items_seen, empty.cursor_after) == (0, "2026-01-01T00:00:05Z")


@both_backends
def test_a_failed_poll_stores_nothing_backs_off_and_the_next_catches_up(platform, httpserver):
    source = Source(httpserver)
    source.add(150)
    pid = make_poller(platform, request={"url": source.url}, **PAGED)
    source.fail = (2, 500)  # page 1 is read, page 2 fails: page 1's items are not kept

    before = utcnow()
    failed = poll(platform, pid, slot=None)
    assert failed.status == "failed"
    assert failed.error.startswith("page 2: HTTP 500 from ")
    assert failed.error.endswith("/items: upstream down for maintenance")
    assert (failed.http_status, failed.pages, failed.items_new, failed.events) == (500, 1, 0, [])
    assert event_data(platform) == [] and count(platform, PollerItem) == 0
    row = poller(platform, pid)
    assert row.failures == 1
    assert before + timedelta(seconds=5) <= row.retry_after <= utcnow() + timedelta(seconds=5)

    assert poll(platform, pid, slot=None, trigger="manual").status == "failed"
    assert poller(platform, pid).failures == 2  # a manual poll backs off too

    source.fail = None
    source.add(10)
    done = poll(platform, pid, slot=None)
    assert (done.status, done.items_new) == ("succeeded", 160)
    assert sorted(d["id"] for d in event_data(platform)) == list(range(1, 161))
    row = poller(platform, pid)
    assert (row.failures, row.retry_after) == (0, None)


def test_backoff_doubles_from_5_seconds_to_an_hour():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 10, 11, 500)] == [
        5,
        10,
        20,
        2560,
        3600,
        3600,
    ]


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({**PAGED, "max_pages": 2}, "more than 2 pages (max_pages)"),
        ({**PAGED, "items": "total"}, "page 1: items ('total') is int, not a list"),
        ({**PAGED, "items": "nothing"}, "page 1: items ('nothing') is null, not a list"),
        ({**PAGED, "id": "uid"}, "page 1, item 1: id ('uid') is missing"),
        ({**PAGED, "id": "@"}, "page 1, item 1: id ('@') is {"),
        ({**PAGED, "id": "abs(name)"}, "page 1, item 1: id: jmespath 'abs(name)' failed"),
        ({**PAGED, "cursor": "abs(page)"}, "cursor: jmespath 'abs(page)' failed"),
        (
            {**PAGED, "request": {"params": {"q": "{{ state.nope.deeper }}"}}},
            "page 1: request: template failed",
        ),
        (
            {**PAGED, "request": {"connector": "nope", "path": "/items"}},
            "connector 'nope' not found",
        ),
    ],
    ids=[
        "too-many-pages",
        "items-not-a-list",
        "items-null",
        "no-id",
        "id-an-object",
        "jmespath-error",
        "cursor-error",
        "template-error",
        "no-connector",
    ],
)
def test_each_kind_of_failure_logs_a_clear_error_and_stores_nothing(
    platform, httpserver, config, error
):
    source = Source(httpserver)
    source.add(250)
    config = dict(config)
    request = {"url": source.url, **config.pop("request", {})}
    pid = make_poller(platform, request=request, **config)
    done = poll(platform, pid, slot=None)
    assert done.status == "failed"
    assert error in done.error, done.error
    assert (count(platform, Event), count(platform, PollerItem), count(platform, Run)) == (0, 0, 0)
    assert poller(platform, pid).failures == 1 and poller(platform, pid).cursor is None


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (
            "<html>maintenance</html>",
            "text/html",
            "page 1: body is not JSON (content-type text/html): ",
        ),
        ('{"id": 1}\n{"id": 2', "application/x-ndjson", "page 1: line 2 is not JSON: "),
        (
            "id,name\n1,a\n2,b,extra\n",
            "text/csv",
            "page 1: CSV line 3 has more fields than the header",
        ),
        (b"id\n\xff\n", "text/csv", "page 1: body is not utf-8 text: "),
        (
            '{"n": NaN}',
            "application/json",
            "page 1: body is not JSON (content-type application/json): NaN",
        ),
    ],
    ids=["html", "ndjson", "csv", "not-utf8", "nan"],
)
def test_a_body_that_does_not_parse_fails_the_poll(platform, httpserver, body, content_type, error):
    httpserver.expect_request("/page").respond_with_data(body, content_type=content_type)
    pid = make_poller(platform, request={"url": httpserver.url_for("/page")}, id="id")
    done = poll(platform, pid, slot=None)
    assert (done.status, done.http_status, done.pages) == ("failed", 200, 1)
    assert done.error.startswith(error), done.error
    assert count(platform, Event) == 0


def test_the_outbound_guard_refuses_private_sources(settings, platform, httpserver):
    source = Source(httpserver)
    source.add(3)
    pid = make_poller(platform, request={"url": source.url}, **PAGED)
    guarded = Platform(dataclasses.replace(settings, allow_private_networks=False))
    try:
        done = poll(guarded, pid, slot=None)
    finally:
        guarded.close()
    assert (done.status, done.http_status, done.pages) == ("failed", None, 0)
    assert done.error.startswith("page 1: refused by the outbound guard: 127.0.0.1 resolves")
    assert source.requests == [] and count(platform, Event) == 0


def test_a_source_that_cannot_be_reached_fails_the_poll(platform):
    from tests.support import free_port

    url = f"http://127.0.0.1:{free_port()}/items"
    pid = make_poller(platform, request={"url": url}, id="id")
    done = poll(platform, pid, slot=None)
    assert done.status == "failed" and done.error.startswith(f"page 1: cannot reach {url}: ")


@pytest.fixture
def threaded_server():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@both_backends
def test_two_polls_at_once_store_each_item_once(platform, threaded_server):
    source = Source(threaded_server)
    source.add(120)
    source.barrier = threading.Barrier(2)  # both polls are reading the first page together
    pid = make_poller(platform, request={"url": source.url}, **PAGED)
    results: list = []

    def run() -> None:
        results.append(poll(platform, pid, slot=None))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.items_new for r in results) == [0, 120]
    assert all(r.status == "succeeded" for r in results)
    assert sorted(d["id"] for d in event_data(platform)) == list(range(1, 121))


def test_disabled_and_deleted_pollers(platform, httpserver):
    source = Source(httpserver)
    source.add(2)
    pid = make_poller(platform, request={"url": source.url}, **PAGED)
    with platform.db.session() as session:
        session.get(Poller, pid).enabled = False
    assert poll(platform, pid, slot=utcnow()) is None  # a scheduled poll skips it
    assert poll_job(platform, pid, "2026-01-01T00:00:00Z") == (
        "skipped: the poller is disabled or gone"
    )
    assert source.requests == [] and count(platform, Poll) == 0
    assert poll_job(platform, pid, None) == "succeeded: 1 page(s), 2 item(s), 2 new"  # manual
    with platform.db.session() as session:
        (logged,) = list_polls(session, pid)
    assert (logged.trigger, logged.slot) == ("manual", None)
    assert poll_job(platform, "pol_missing", None) == "skipped: the poller is disabled or gone"


def test_the_job_reports_failures_and_never_raises(platform, httpserver, monkeypatch):
    source = Source(httpserver)
    source.add(1)
    source.fail = (1, 404)
    pid = make_poller(platform, request={"url": source.url}, **PAGED)
    assert poll_job(platform, pid, "2026-01-01T00:01:00Z").startswith("failed: page 1: HTTP 404")
    with platform.db.session() as session:
        logged = session.scalars(select(Poll)).one()
    assert logged.slot.isoformat() == "2026-01-01T00:01:00+00:00"
    assert logged.trigger == "schedule"

    def crash(*args, **kwargs):
        raise RuntimeError("disk on fire")

    source.fail = None
    monkeypatch.setattr("ihook.polling.add_event", crash)
    result = poll_job(platform, pid, None)
    assert result == "failed: internal: RuntimeError: disk on fire"
    assert count(platform, Event) == 0 and poller(platform, pid).failures == 2


def test_polls_are_listed_newest_first(platform, httpserver):
    source = Source(httpserver)
    source.add(1)
    pid = make_poller(platform, request={"url": source.url}, **PAGED)
    made = [poll(platform, pid, slot=None).id for _ in range(3)]
    with platform.db.session() as session:
        assert [p.id for p in list_polls(session, pid)] == made[::-1]
        assert [p.id for p in list_polls(session, pid, limit=2)] == made[:0:-1]
        assert [p.id for p in list_polls(session, pid, after=made[1])] == made[:1]
        assert get_poll(session, made[0], poller_id=pid).items_new == 1
        with pytest.raises(NotFound):
            get_poll(session, made[0], poller_id="pol_other")
        with pytest.raises(NotFound):
            list_polls(session, "pol_missing")


LMS_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lms-course-completion.yaml"
CRM_TOKEN = "crm-example-token"
LMS_TOKEN = "lms-api-token"


def test_an_lms_without_webhooks_drives_the_lms_example_workflow(
    client, platform, httpserver, worker
):
    completions: list[dict] = []

    def lms(request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {LMS_TOKEN}":
            return Response("unauthorized", status=401)
        since = request.args.get("updated_since", "")
        chosen = [c for c in completions if c["updated_at"] > since]
        return Response(json.dumps({"completions": chosen}), content_type="application/json")

    crm: list[tuple[str | None, str, dict]] = []

    def receive(request: Request) -> Response:
        crm.append((request.headers.get("Authorization"), request.path, request.get_json()))
        return Response("{}", status=201, content_type="application/json")

    httpserver.expect_request("/api/completions").respond_with_handler(lms)
    httpserver.expect_request("/crm/members/m-1/activities").respond_with_handler(receive)
    httpserver.expect_request("/crm/members/m-3/activities").respond_with_handler(receive)

    # The example's connector and steps; the trigger binds its workflow to the poller.
    text = LMS_EXAMPLE.read_text().replace("${CRM_URL}", httpserver.url_for("/crm"))
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(text.replace("${CRM_TOKEN}", CRM_TOKEN))}
    crm_doc = docs["Connector"]
    made = client.post(
        "/api/v1/connectors",
        json={"name": crm_doc["name"], "kind": crm_doc["type"], "config": crm_doc["config"]},
    )
    assert made.status_code == 201, made.json
    lms_connector = {
        "base_url": httpserver.url_for("/api"),
        "auth": {"type": "bearer", "token": LMS_TOKEN},
    }
    made = client.post(
        "/api/v1/connectors", json={"name": "lms", "kind": "http", "config": lms_connector}
    )
    assert made.status_code == 201, made.json
    flow = docs["Workflow"]
    made = client.post(
        "/api/v1/workflows",
        json={
            "name": flow["name"],
            "trigger": {"poller": "lms-completions"},
            "steps": flow["steps"],
        },
    )
    assert made.status_code == 201, made.json
    pid = make_poller(
        platform,
        "lms-completions",
        event_type="lms.course.completed",
        request={
            "connector": "lms",
            "path": "/completions",
            "params": {"updated_since": "{{ state.cursor or '' }}"},
        },
        items="completions",
        id="id",
        cursor="max_by(items, &updated_at).updated_at",
    )

    def add(n: int, member: str, status: str = "completed") -> None:
        stamp = f"2026-11-20T10:0{n}:00Z"
        completions.append(
            {"id": f"c-{n}", "updated_at": stamp, **completion(member, "CS101", status)}
        )

    def runs_finished(expected: int):
        with platform.db.session() as session:
            runs = list(session.scalars(select(Run)))
        done = [r for r in runs if r.status not in ("queued", "running")]
        return runs if len(runs) == expected and len(done) == expected else None

    add(1, "m-1")
    add(2, "m-2", status="in_progress")
    first = poll(platform, pid, slot=None)
    assert (first.status, first.items_new, first.cursor_after) == (
        "succeeded",
        2,
        "2026-11-20T10:02:00Z",
    ), first.error
    runs = wait_for(lambda: runs_finished(2))
    assert sorted(r.status for r in runs) == ["skipped", "succeeded"], [r.error for r in runs]

    add(3, "m-3")  # this time the worker polls: the job the scheduler queues
    assert platform.polls.enqueue_jobs([(f"poll-{pid}-test", (pid, "2026-11-20T11:00:00Z"))])
    wait_for(lambda: runs_finished(3))
    with platform.db.session() as session:
        second = list_polls(session, pid)[0]
    assert (second.trigger, second.items_seen, second.items_new) == ("schedule", 1, 1)
    assert poll(platform, pid, slot=None).items_new == 0

    activity = {"course": "CS101", "completed_at": "2026-11-20T10:00:00Z"}
    for member in ("m-1", "m-3"):
        record = client.get(f"/api/v1/records/activities/{member}:CS101")
        assert record.json["data"] == {"member_id": member, **activity}
    assert client.get("/api/v1/records/activities/m-2:CS101").status_code == 404
    assert sorted((auth, path) for auth, path, _ in crm) == [
        (f"Bearer {CRM_TOKEN}", "/crm/members/m-1/activities"),
        (f"Bearer {CRM_TOKEN}", "/crm/members/m-3/activities"),
    ]
