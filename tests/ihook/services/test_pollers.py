"""Pollers without the app: every field checked and named, defaults, schedule tracking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job

from connectors.outbound import OutboundPolicy
from ihook.errors import Conflict, Invalid, NotFound
from ihook.ids import new_id
from ihook.models import Poll, Poller
from ihook.services import connectors, workflows
from ihook.services import pollers as service

pytestmark = pytest.mark.usefixtures("public_dns")

STRICT = OutboundPolicy(allow_private=False)
OPEN = OutboundPolicy(allow_private=True)
URL = "https://lms.example.com/api/completions"
BASE = {"name": "lms", "request": {"url": URL}, "interval_seconds": 60, "id": "id"}
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


class Clock:
    """``utcnow`` of the service, moved by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 60) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(service, "utcnow", clock)
    return clock


@pytest.fixture
def session(platform):
    with platform.db.session() as session:
        yield session


def create(session, policy=STRICT, **fields) -> Poller:
    return service.create_poller(session, {**BASE, **fields}, policy=policy)


def update(session, poller, policy=STRICT, partial=True, **fields) -> Poller:
    return service.update_poller(session, poller.id, fields, policy=policy, partial=partial)


def refusal(call, *args, **kwargs) -> dict:
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)
    return caught.value.errors


def refused(session, policy=STRICT, **fields) -> dict:
    return refusal(service.create_poller, session, {**BASE, **fields}, policy=policy)


@both_backends
def test_create_fills_in_the_defaults(session, clock):
    poller = create(session)
    assert poller.id.startswith("pol_") and poller.name == "lms"
    assert poller.enabled is True and poller.description == ""
    assert poller.config == {
        "request": {"url": URL, "method": "GET", "params": {}, "headers": {}},
        "schedule": {"interval_seconds": 60},
        "items": "@",
        "id": "id",
        "cursor": None,
        "pagination": None,
        "max_pages": 10,
        "format": "auto",
        "mode": "item",
        "event_type": "lms.item",
    }
    assert poller.event_type == "lms.item"
    assert poller.cursor is None and poller.failures == 0 and poller.retry_after is None
    assert poller.schedule_from == T0 and poller.last_slot is None


def test_a_full_definition_is_kept_normalized(session, platform):
    connectors.create_connector(
        session,
        platform.vault,
        {"name": "lms-api", "kind": "http", "config": {"base_url": "https://lms.example.com"}},
    )
    poller = create(
        session,
        request={
            "connector": "lms-api",
            "path": "/api/completions",
            "method": "post",
            "params": {"updated_since": "{{ state.cursor }}", "limit": 100},
            "headers": {"Accept": "application/json"},
            "json": {"filter": {"since": "{{ state.cursor or now }}"}, "n": [1, "{{ page }}"]},
        },
        interval_seconds=None,
        cron="*/5 * * * *",
        timezone="Europe/Paris",
        items="data.completions",
        cursor="max_by(items, &updated_at).updated_at",
        pagination={"page_param": "page", "page_size": 100, "size_param": "per_page"},
        max_pages=50,
        format="json",
        mode="batch",
        initial_cursor="2026-01-01T00:00:00Z",
        description="completions, every five minutes",
        enabled=False,
    )
    assert poller.config["request"] == {
        "connector": "lms-api",
        "path": "/api/completions",
        "method": "POST",
        "params": {"updated_since": "{{ state.cursor }}", "limit": "100"},
        "headers": {"Accept": "application/json"},
        "json": {"filter": {"since": "{{ state.cursor or now }}"}, "n": [1, "{{ page }}"]},
    }
    assert poller.config["schedule"] == {"cron": "*/5 * * * *", "timezone": "Europe/Paris"}
    assert poller.config["pagination"] == {
        "page_param": "page",
        "first_page": 1,
        "page_size": 100,
        "size_param": "per_page",
    }
    assert poller.event_type == "lms.batch" and poller.config["max_pages"] == 50
    assert poller.cursor == "2026-01-01T00:00:00Z"
    assert poller.enabled is False and poller.schedule_from is None
    body = service.definition(poller)
    assert body["cron"] == "*/5 * * * *" and body["timezone"] == "Europe/Paris"
    assert "interval_seconds" not in body and body["id"] == "id"


def test_every_refused_field_is_named_at_once(session):
    errors = refused(
        session,
        name="no spaces",
        request={"url": "ftp://files.example.com/x", "method": "PUT", "bogus": 1},
        interval_seconds=4,
        items="foo[",
        id="",
        cursor="nope(",
        pagination={"page_param": "", "page_size": 0, "extra": True},
        max_pages=1001,
        format="xml",
        mode="stream",
        event_type="has*star",
        description=7,
        enabled="yes",
        initial_cursor={1, 2},
        unknown=True,
    )
    assert set(errors) == {
        "name",
        "request.url",
        "request.method",
        "request.bogus",
        "interval_seconds",
        "items",
        "id",
        "cursor",
        "pagination.page_param",
        "pagination.page_size",
        "pagination.extra",
        "max_pages",
        "format",
        "mode",
        "event_type",
        "description",
        "enabled",
        "initial_cursor",
        "unknown",
    }
    assert errors["request.url"] == ["must be an absolute http:// or https:// URL"]
    assert "5" in errors["interval_seconds"][0]


def test_name_id_request_and_a_schedule_are_required(session):
    errors = refusal(service.create_poller, session, {}, policy=STRICT)
    assert set(errors) == {"name", "request", "id", "interval_seconds", "cron"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"interval_seconds": 60, "cron": "* * * * *"}, "cron"),
        ({"interval_seconds": 60, "timezone": "Europe/Paris"}, "timezone"),
        ({"interval_seconds": None, "cron": "61 * * * *"}, "cron"),
        ({"interval_seconds": None, "cron": "@often"}, "cron"),
        ({"interval_seconds": None, "cron": "@daily", "timezone": "Mars/Olympus"}, "timezone"),
        ({"interval_seconds": 4}, "interval_seconds"),
        ({"interval_seconds": 5.5}, "interval_seconds"),
    ],
)
def test_schedule_refusals_name_their_field(session, fields, field):
    assert field in refused(session, **fields)


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        ({"url": URL, "connector": "lms"}, "request", "not both"),
        ({"method": "GET"}, "request", "needs a connector"),
        ({"url": "/relative"}, "request.url", "absolute"),
        ({"url": "https://user:pw@lms.example.com/x"}, "request.url", "credentials"),
        ({"url": "lms.example.com/{{ state.cursor }}"}, "request.url", "absolute"),
        ({"url": "https://lms.example.com/{{ state.cursor "}, "request.url", "bad template"),
        ({"url": "https://nowhere.invalid/x"}, "request.url", "does not resolve"),
        ({"url": URL, "path": "/x"}, "request.path", "only with a connector"),
        ({"url": URL, "json": {"a": 1}}, "request.json", "POST only"),
        ({"url": URL, "method": "POST", "json": {"a": ["{{ x"]}}, "request.json", "$.a[0]"),
        ({"url": URL, "params": {"q": "{% if %}"}}, "request.params", "q: bad template"),
        ({"url": URL, "params": {"q": ["a"]}}, "request.params", "q: must be a string"),
        ({"url": URL, "headers": {"Host": "x"}}, "request.headers", "Host"),
        ({"url": URL, "headers": {"bad name": "x"}}, "request.headers", "header name"),
        ({"url": URL, "headers": {"A": "1", "a": "2"}}, "request.headers", "twice"),
        ("https://lms.example.com", "request", "must be an object"),
    ],
)
def test_request_refusals_name_their_field(session, request_, field, reason):
    errors = refused(session, request=request_)
    assert field in errors, errors
    assert reason in " ".join(errors[field])


@both_backends
def test_the_connector_must_exist_and_be_http(session, platform):
    vault = platform.vault
    connectors.create_connector(
        session,
        vault,
        {
            "name": "mail",
            "kind": "smtp",
            "config": {"host": "smtp.example.com", "from_address": "a@example.com"},
        },
    )
    errors = refused(session, request={"connector": "mail"})
    assert errors == {"request.connector": ["'mail' is a smtp connector, not http"]}
    errors = refused(session, request={"connector": "nope"})
    assert errors == {"request.connector": ["no connector named 'nope'"]}
    connectors.create_connector(
        session,
        vault,
        {"name": "api", "kind": "http", "config": {"base_url": "https://lms.example.com"}},
    )
    errors = refused(session, request={"connector": "api", "path": "https://evil.example.com/x"})
    assert errors == {"request.path": ["must be relative to the connector's base URL"]}
    poller = create(session, request={"connector": "api"})
    assert poller.config["request"]["path"] == ""


def test_a_literal_private_url_is_refused_unless_the_install_allows_it(session):
    errors = refused(session, request={"url": "http://127.0.0.1:9000/items"})
    assert errors["request.url"][0].startswith("refused by the outbound guard")
    assert create(session, OPEN, request={"url": "http://127.0.0.1:9000/items"})
    # A templated URL is checked by each poll instead: its host may depend on the template.
    poller = create(session, name="t", request={"url": "http://10.0.0.1/{{ state.cursor }}"})
    assert poller.config["request"]["url"] == "http://10.0.0.1/{{ state.cursor }}"


@pytest.mark.parametrize(
    ("pagination", "field", "reason"),
    [
        ({"next": "links.next", "page_param": "page"}, "pagination", "not both"),
        ({"next": "links.next", "page_size": 10}, "pagination.page_size", "only with page_param"),
        ({"next": "links[."}, "pagination.next", "bad jmespath"),
        ({}, "pagination", "needs next"),
        ({"page_param": "page", "size_param": "n"}, "pagination.size_param", "needs page_size"),
        (
            {"page_param": "page", "page_size": 10, "size_param": "page"},
            "pagination.size_param",
            "differ",
        ),
        ({"page_param": "page", "page_size": 10_001}, "pagination.page_size", "10000"),
        ({"page_param": "page", "first_page": -1}, "pagination.first_page", "at least 0"),
        ({"page_param": "q"}, "pagination.page_param", "also in request.params"),
        ("page", "pagination", "must be null"),
    ],
)
def test_pagination_refusals_name_their_field(session, pagination, field, reason):
    request = {"url": URL, "params": {"q": "x"}}
    errors = refused(session, request=request, pagination=pagination)
    assert field in errors, errors
    assert reason in " ".join(errors[field])


def test_next_link_pagination_is_stored_alone(session):
    poller = create(session, pagination={"next": "links.next"})
    assert poller.config["pagination"] == {"next": "links.next"}


def test_event_types_of_your_own_but_not_built_in(session):
    assert create(session, event_type="lms.completion").event_type == "lms.completion"
    assert refused(session, name="b", event_type="record.created") == {
        "event_type": ["'record.created' is a built-in event type"]
    }
    assert "event_type" in refused(session, name="c", event_type="x" * 201)


def test_a_taken_name_is_a_conflict(session):
    create(session)
    with pytest.raises(Conflict):
        create(session)


def test_patch_keeps_what_is_not_given(session, clock):
    poller = create(session, cron="0 * * * *", interval_seconds=None, timezone="Europe/Paris")
    update(session, poller, items="data", description="hourly")
    assert poller.config["items"] == "data" and poller.description == "hourly"
    assert poller.config["schedule"] == {"cron": "0 * * * *", "timezone": "Europe/Paris"}
    update(session, poller, cron="30 * * * *")  # a new cron keeps its time zone
    assert poller.config["schedule"] == {"cron": "30 * * * *", "timezone": "Europe/Paris"}
    update(session, poller, timezone="UTC")
    assert poller.config["schedule"] == {"cron": "30 * * * *", "timezone": "UTC"}
    update(session, poller, interval_seconds=300)
    assert poller.config["schedule"] == {"interval_seconds": 300}
    assert refusal(update, session, poller, timezone="UTC") == {"timezone": ["only with cron"]}
    update(session, poller, cursor="max(items[].n)", pagination={"next": "next"})
    update(session, poller, cursor=None, pagination=None)
    assert poller.config["cursor"] is None and poller.config["pagination"] is None


def test_put_gives_left_out_fields_their_defaults(session):
    poller = create(session, items="data", mode="batch", description="d", max_pages=3)
    update(session, poller, partial=False, **{**BASE, "cron": "@hourly", "interval_seconds": None})
    assert poller.config["items"] == "@" and poller.config["mode"] == "item"
    assert poller.config["max_pages"] == 10 and poller.description == ""
    assert poller.config["schedule"] == {"cron": "@hourly"}
    assert poller.event_type == "lms.item"
    assert refusal(update, session, poller, partial=False, name="lms") == {
        "request": ["required"],
        "id": ["required"],
        "interval_seconds": ["required unless cron is given (at least 5 seconds)"],
        "cron": ["required unless interval_seconds is given"],
    }


@both_backends
def test_a_patch_checks_only_what_it_gives(session, platform):
    vault = platform.vault
    con = connectors.create_connector(
        session,
        vault,
        {"name": "api", "kind": "http", "config": {"base_url": "https://lms.example.com"}},
    )
    poller = create(session, request={"connector": "api"})
    connectors.delete_connector(session, con.id)
    session.flush()
    assert update(session, poller, enabled=False).enabled is False
    assert "request.connector" in refusal(update, session, poller, request={"connector": "api"})


def test_a_default_event_type_follows_name_and_mode(session):
    poller = create(session)
    update(session, poller, name="lms2")
    assert poller.event_type == "lms2.item"
    update(session, poller, mode="batch")
    assert poller.event_type == "lms2.batch" and poller.config["event_type"] == "lms2.batch"
    update(session, poller, event_type="custom.type")
    update(session, poller, name="lms3", mode="item")
    assert poller.event_type == "custom.type"


def test_initial_cursor_sets_and_resets_the_cursor(session):
    poller = create(session, initial_cursor={"since": 5})
    assert poller.cursor == {"since": 5}
    poller.cursor = {"since": 9}
    update(session, poller, items="data")
    assert poller.cursor == {"since": 9}
    update(session, poller, partial=False, **BASE)
    assert poller.cursor == {"since": 9}
    update(session, poller, initial_cursor=0)
    assert poller.cursor == 0
    update(session, poller, initial_cursor=None)
    assert poller.cursor is None
    assert "initial_cursor" not in poller.config


@both_backends
def test_schedule_from_restarts_with_the_schedule_and_on_re_enabling(session, clock):
    poller = create(session)
    assert poller.schedule_from == T0
    clock.tick()
    update(session, poller, items="data", interval_seconds=60)  # the same schedule
    assert poller.schedule_from == T0
    changed = clock.tick()
    update(session, poller, interval_seconds=120)
    assert poller.schedule_from == changed
    clock.tick()
    update(session, poller, enabled=False)
    assert poller.schedule_from is None
    clock.tick()
    update(session, poller, description="still off")
    assert poller.schedule_from is None
    back = clock.tick()
    update(session, poller, enabled=True)
    assert poller.schedule_from == back
    clock.tick()
    update(session, poller, enabled=True)
    assert poller.schedule_from == back
    cron = clock.tick()
    update(session, poller, cron="@hourly")
    assert poller.schedule_from == cron


def test_a_change_or_re_enabling_forgets_the_back_off(session, clock):
    poller = create(session)
    poller.failures, poller.retry_after = 3, T0 + timedelta(seconds=40)
    update(session, poller, enabled=True, description="no change to the definition")
    assert poller.failures == 3 and poller.retry_after is not None
    update(session, poller, items="data")
    assert poller.failures == 0 and poller.retry_after is None
    update(session, poller, enabled=False)
    poller.failures, poller.retry_after = 2, T0
    update(session, poller, enabled=True)
    assert poller.failures == 0 and poller.retry_after is None


def test_fed_workflows_are_those_whose_trigger_names_the_poller(session):
    create(session)
    steps = [{"id": "keep", "type": "filter", "if": "true"}]
    fed = workflows.create_workflow(
        session, {"name": "w1", "trigger": {"poller": "lms"}, "steps": steps}
    )
    workflows.create_workflow(
        session, {"name": "w2", "trigger": {"poller": "other"}, "steps": steps}
    )
    session.flush()
    assert service.fed_workflows(session, "lms") == [fed.id]


def test_poll_now_queues_a_job_of_its_own(platform, session):
    poller = create(session)
    first = service.poll_now(session, platform.polls, poller.id)
    second = service.poll_now(session, platform.polls, poller.id)
    assert first != second and first.startswith(f"poll-{poller.id}-now-job_")
    job = Job.fetch(first, connection=platform.redis)
    assert job.func_name == "ihook.jobs.run_poll" and job.args == (poller.id, None)
    assert platform.polls.queue.count == 2
    with pytest.raises(NotFound):
        service.poll_now(session, platform.polls, "pol_nope")


@both_backends
def test_delete_takes_the_poll_log_along(platform, session):
    poller = create(session)
    session.add(Poll(id=new_id("poll"), poller_id=poller.id, status="succeeded"))
    session.flush()
    service.delete_poller(session, poller.id)
    session.flush()
    session.expunge_all()
    assert session.query(Poll).count() == 0
    with pytest.raises(NotFound):
        service.get_poller(session, poller.id)
