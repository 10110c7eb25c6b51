"""Subscriptions without the app: validation, the target check, secrets, matching."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from connectors.outbound import OutboundPolicy
from ihook.errors import Conflict, Invalid, NotFound
from ihook.models import Subscription, utcnow
from ihook.services import subscriptions as service

pytestmark = pytest.mark.usefixtures("public_dns")

STRICT = OutboundPolicy(allow_private=False)
BASE = {"name": "crm", "url": "https://hooks.example.com/in", "event_types": ["record.*"]}


@pytest.fixture
def session(platform):
    with platform.db.session() as session:
        yield session


def create(session, vault, allow_http=False, policy=STRICT, **fields):
    body = {**BASE, **fields}
    return service.create_subscription(session, vault, body, allow_http=allow_http, policy=policy)


def update(session, vault, sub_id, allow_http=False, policy=STRICT, **fields):
    return service.update_subscription(
        session, vault, sub_id, fields, allow_http=allow_http, policy=policy
    )


def refusal(call, *args, **kwargs) -> dict:
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)
    return caught.value.errors


def test_create_sets_defaults_and_a_signing_secret(session, platform):
    created = create(session, platform.vault)
    sub = created.subscription
    assert sub.id.startswith("sub_") and created.secret.startswith("whsec_")
    assert sub.enabled is True and sub.environment == "live" and sub.description == ""
    assert sub.auth == {"type": "none"} and sub.header_names == [] and sub.secrets_enc is None
    assert sub.retry_schedule == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    assert sub.filter is None and sub.mapping is None and sub.fixed_data is None
    assert created.secret not in sub.secret_enc
    assert service.signing_secrets(sub, platform.vault) == [created.secret]
    assert service.get_subscription(session, sub.id) is sub
    assert service.list_subscriptions(session) == [sub]


def test_names_are_unique_and_unknown_ids_not_found(platform):
    with platform.db.session() as session:
        create(session, platform.vault)
    with pytest.raises(Conflict), platform.db.session() as session:
        create(session, platform.vault)
    with pytest.raises(NotFound), platform.db.session() as session:
        service.get_subscription(session, "sub_missing")


def test_every_refused_field_is_named_at_once(session, platform):
    errors = refusal(
        create,
        session,
        platform.vault,
        name="no spaces allowed",
        description=5,
        enabled="yes",
        environment="staging",
        event_types=["record.created", "bad type!"],
        filter="data.[",
        mapping={"ok": "data.id", "broken": "data.[", "typo": "lowr(data.x)"},
        fixed_data=[1],
        error_emails=["ops@example.com", "not-an-address"],
        retry_schedule=[0, -1],
        auth={"type": "basic", "username": "u"},
        headers={"X-Ok": "1", "Webhook-Signature": "forged", "bad name": "x"},
        colour="blue",
    )
    assert set(errors) == {
        "name",
        "description",
        "enabled",
        "environment",
        "event_types",
        "filter",
        "mapping",
        "fixed_data",
        "error_emails",
        "retry_schedule",
        "auth",
        "headers",
        "colour",
    }
    assert errors["event_types"] == [
        "'bad type!': 1-200 letters, digits, '.', '_', ':', '-' or '*' wildcards"
    ]
    assert [r.split(":")[0] for r in errors["mapping"]] == ["broken", "typo"]
    assert "unknown function" in errors["mapping"][1]
    assert errors["error_emails"] == ["'not-an-address' is not an email address"]
    assert len(errors["headers"]) == 2 and "ihook sets this header" in errors["headers"][0]
    assert errors["colour"] == ["unknown field"]


def test_required_fields_on_create(session, platform):
    errors = refusal(
        service.create_subscription, session, platform.vault, {}, allow_http=False, policy=STRICT
    )
    assert errors == {"name": ["required"], "url": ["required"], "event_types": ["required"]}


@pytest.mark.parametrize(
    "field, value",
    [
        ("event_types", []),
        ("event_types", "record.*"),
        ("event_types", ["x" * 201]),
        ("retry_schedule", []),
        ("retry_schedule", [0] * 21),
        ("retry_schedule", [2 * 86_400 + 1]),
        ("retry_schedule", [True]),
        ("retry_schedule", [1.5]),
        ("name", ""),
        ("name", "x" * 101),
        ("auth", {"type": "digest"}),
        ("auth", {"type": "none", "token": "t"}),
        ("auth", {"type": "basic", "username": "a:b", "password": "p"}),
        ("auth", {"type": "bearer"}),
        ("auth", {"type": "bearer", "token": "two\nlines"}),
        ("headers", {"Authorization": "Bearer x"}),
        ("headers", {"Content-Type": "text/plain"}),
        ("headers", {"X-A": "1", "x-a": "2"}),
        ("headers", {"X-A": "line\r\nInjected: yes"}),
        ("headers", {"X-A": "***"}),
        ("error_emails", "ops@example.com"),
    ],
)
def test_each_rule(session, platform, field, value):
    assert set(refusal(create, session, platform.vault, **{field: value})) == {field}


def test_patterns_and_retry_limits_accepted(session, platform):
    sub = create(
        session,
        platform.vault,
        event_types=["record.*", "*", "course:completed", "record.*"],
        retry_schedule=[0, 2 * 86_400],
        filter="",
        mapping={},
    ).subscription
    assert sub.event_types == ["record.*", "*", "course:completed"]
    assert sub.retry_schedule == [0, 172_800]
    assert sub.filter is None and sub.mapping is None


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/hook",
        "https://localhost/hook",
        "https://192.168.1.20/hook",
    ],
)
def test_ssrf_guard_refuses_private_targets(session, platform, url):
    errors = refusal(create, session, platform.vault, url=url)
    assert list(errors) == ["url"]
    assert "private or reserved address" in errors["url"][0]
    with pytest.raises(Invalid):
        service.check_target(url, "sandbox", allow_http=True, policy=STRICT)
    # An install that allows private networks may reach them.
    allowed = OutboundPolicy(allow_private=True)
    service.check_target(url, "live", allow_http=False, policy=allowed)


def test_unresolvable_host_is_refused_saying_so(session, platform):
    errors = refusal(create, session, platform.vault, url="https://nowhere.invalid/hook")
    assert "nowhere.invalid does not resolve" in errors["url"][0]


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://hooks.example.com/x", "must be an https:// URL"),
        ("hooks.example.com/x", "must be an https:// URL"),
        ("https:///path", "the URL has no host"),
        ("https://user:pw@hooks.example.com/x", "credentials in the URL are not allowed"),
        ("https://hooks.example.com/a b", "spaces and control characters"),
        ("https://hooks.example.com:99999/", "invalid URL"),
    ],
)
def test_url_shape(url, reason):
    with pytest.raises(Invalid) as caught:
        service.check_target(url, "live", allow_http=True, policy=STRICT)
    assert reason in caught.value.errors["url"][0]


def test_http_only_for_sandbox_or_when_allowed(session, platform):
    url = "http://hooks.example.com/in"
    errors = refusal(create, session, platform.vault, url=url)
    assert "must be https" in errors["url"][0]
    assert create(session, platform.vault, name="sbx", url=url, environment="sandbox")
    assert create(session, platform.vault, name="allowed", url=url, allow_http=True)


def test_url_kept_exactly_and_rechecked_on_change(session, platform):
    url = "https://hooks.example.com:8443/in/path?token=abc&x=1#frag"
    sub = create(session, platform.vault, url=url).subscription
    assert sub.url == url
    errors = refusal(update, session, platform.vault, sub.id, url="https://10.1.2.3/")
    assert list(errors) == ["url"] and sub.url == url
    # Moving a plain-http sandbox subscription to live rechecks its URL.
    sbx = create(
        session, platform.vault, name="sbx", url="http://hooks.example.com/", environment="sandbox"
    ).subscription
    assert (
        "must be https"
        in refusal(update, session, platform.vault, sbx.id, environment="live")["url"][0]
    )


def test_partial_update_keeps_the_rest(session, platform):
    sub = create(
        session,
        platform.vault,
        description="first",
        auth={"type": "bearer", "token": "tok-1"},
        headers={"X-Tenant": "acme"},
    ).subscription
    update(session, platform.vault, sub.id, description="second", retry_schedule=[0, 60])
    assert sub.description == "second" and sub.retry_schedule == [0, 60]
    assert sub.url == BASE["url"] and sub.event_types == ["record.*"]
    assert service.request_auth(sub, platform.vault) == {
        "X-Tenant": "acme",
        "Authorization": "Bearer tok-1",
    }


def test_auth_and_headers_secrets_replace_or_keep(session, platform):
    vault = platform.vault
    sub = create(
        session,
        vault,
        auth={"type": "basic", "username": "crm", "password": "pw-1"},
        headers={"X-Tenant": "acme", "X-Key": "k-1"},
    ).subscription
    assert sub.auth == {"type": "basic", "username": "crm"}
    assert sub.header_names == ["X-Tenant", "X-Key"]
    stored = json.loads(vault.decrypt(sub.secrets_enc))
    assert stored == {"auth": {"password": "pw-1"}, "headers": {"X-Tenant": "acme", "X-Key": "k-1"}}
    basic = "Basic " + base64.b64encode(b"crm:pw-1").decode()
    assert service.request_auth(sub, vault)["Authorization"] == basic

    # Same type without the password keeps it; `***` keeps a header's value.
    update(session, vault, sub.id, auth={"type": "basic", "username": "crm2"})
    update(session, vault, sub.id, headers={"X-Key": "***", "X-New": "n"})
    assert service.request_auth(sub, vault) == {
        "X-Key": "k-1",
        "X-New": "n",
        "Authorization": "Basic " + base64.b64encode(b"crm2:pw-1").decode(),
    }
    # Another type needs its own secret; none drops every auth secret.
    assert "auth" in refusal(update, session, vault, sub.id, auth={"type": "bearer"})
    update(session, vault, sub.id, auth={"type": "none"}, headers={})
    assert sub.secrets_enc is None and service.request_auth(sub, vault) == {}


def test_rotation_keeps_old_and_new_for_a_day(session, platform):
    vault = platform.vault
    created = create(session, vault)
    sub, new = service.rotate_secret(session, vault, created.subscription.id)
    assert new.startswith("whsec_") and new != created.secret
    assert service.signing_secrets(sub, vault) == [new, created.secret]
    expires = sub.previous_secret_expires_at
    assert timedelta(hours=23) < expires - utcnow() <= timedelta(hours=24)
    assert service.signing_secrets(sub, vault, now=expires + timedelta(seconds=1)) == [new]
    _, newest = service.rotate_secret(session, vault, sub.id, grace_seconds=0)
    assert service.signing_secrets(sub, vault) == [newest]


def test_set_enabled_clears_the_reason_it_was_off(session, platform):
    sub = create(session, platform.vault).subscription
    sub.failing_since = utcnow() - timedelta(days=5)
    service.set_enabled(session, sub.id, False, reason="failing for 5 days")
    assert sub.enabled is False and sub.disabled_reason == "failing for 5 days"
    assert service.list_subscriptions(session, enabled=True) == []
    service.set_enabled(session, sub.id, True)
    assert sub.enabled is True and sub.disabled_reason is None and sub.failing_since is None
    assert service.list_subscriptions(session, enabled=True, environment="live") == [sub]

    # Enabling through an update does the same.
    service.set_enabled(session, sub.id, False, reason="manual")
    update(session, platform.vault, sub.id, enabled=True)
    assert sub.disabled_reason is None


def test_delete(session, platform):
    sub = create(session, platform.vault).subscription
    service.delete_subscription(session, sub.id)
    session.flush()
    assert service.list_subscriptions(session) == []
    with pytest.raises(NotFound):
        service.delete_subscription(session, sub.id)


@pytest.mark.parametrize(
    "patterns, event_type, expected",
    [
        (["record.*"], "record.created", True),
        (["record.*"], "record.a.b", True),
        (["record.*"], "records.created", False),
        (["record.*"], "record", False),
        (["*"], "anything.at:all", True),
        (["course.completed"], "course.completed", True),
        (["course.completed"], "course.completed.v2", False),
        (["course"], "course.completed", False),
        (["*.completed"], "course.completed", True),
        (["a", "b.*"], "b.x", True),
        (["record.?"], "record.x", False),
        (["record.[ab]"], "record.a", False),
        (["record.[ab]"], "record.[ab]", True),
    ],
)
def test_matches(patterns, event_type, expected):
    sub = Subscription(event_types=patterns)
    assert service.matches(sub, event_type) is expected
