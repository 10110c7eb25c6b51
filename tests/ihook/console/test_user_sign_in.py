"""Signing in to the console with a user name and password (``ihook.console.auth``): the
page, one answer for unknown names and wrong passwords, the throttle in a real Redis (and
503 without one), and sessions that end when the user is changed, disabled or deleted."""

from __future__ import annotations

import pytest

from ihook.app import create_app
from ihook.platform import Platform
from tests.conftest import SWEEP
from tests.ihook.console.support import Console, Page
from tests.support import free_port

PASSWORD = "velvet-orchard-signal-39"
"""A password good enough for the rules; the log sweep checks no log holds it."""
NEW_PASSWORD = "granite-bicycle-lunar-62"
SWEEP.constants += (PASSWORD, NEW_PASSWORD)
WRONG = "not-the-password-at-all"
NO_MATCH = "That user name and password do not match."


@pytest.fixture
def user(client):
    """Make a user through the API: ``user("alice", "read")``."""

    def make(username: str, *scopes: str, **fields) -> dict:
        body = {"username": username, "password": PASSWORD, "scopes": list(scopes), **fields}
        made = client.post("/api/v1/users", json=body)
        assert made.status_code == 201, made.json
        return made.json

    return make


def sign_in(console: Console, username: str, password: str = PASSWORD, address: str = ""):
    """Post the password form (from ``address``, when given)."""
    extra = {"environ_base": {"REMOTE_ADDR": address}} if address else {}
    form = {"username": username, "password": password}
    return console.post("/sign-in", form, csrf=console.csrf(), **extra)


def refused(answer, status: int, message: str) -> str:
    """The page of a refused sign-in: its status, its message, well formed."""
    html = answer.get_data(as_text=True)
    assert answer.status_code == status, (answer.status_code, html)
    Page(html).check()
    assert message in html, html
    assert PASSWORD not in html and WRONG not in html  # no password is echoed back
    return html


def test_the_page_offers_a_password_first_and_a_token_second(browser):
    html, page = browser.page("/sign-in")
    names = [attrs.get("name") for attrs in page.fields]
    assert names == ["username", "password", "token"]
    kinds = {attrs["name"]: attrs.get("autocomplete") for attrs in page.fields}
    assert kinds == {"username": "username", "password": "current-password", "token": "off"}
    assert "<details>" in html and "Sign in with an API token instead" in html
    answer = browser.post("/sign-in", {"token": "ihk_wrong"}, csrf=browser.csrf())
    html = refused(answer, 401, "That token is not valid.")
    assert "<details open>" in html  # a refused token is shown next to its own form


def test_a_user_signs_in_with_a_password(app, browser, client, user):
    made = user("Alice", "read", "write")
    old_csrf = browser.csrf()
    answer = sign_in(browser, "alice")  # names match whatever their case
    assert answer.status_code == 303 and answer.location == "/ui/"
    html, _ = browser.page("/")
    assert "user Alice (read, write)" in html
    cookie = browser.http.get_cookie("session").value
    kept = app.session_interface.get_signing_serializer(app).loads(cookie)["ihook_console"]
    assert set(kept) == {"user_id", "generation", "csrf_token"} and kept["user_id"] == made["id"]
    assert kept["csrf_token"] != old_csrf  # a new session
    assert PASSWORD not in str(kept) and "scrypt" not in str(kept)
    assert client.get(f"/api/v1/users/{made['id']}").json["last_sign_in_at"] is not None


def test_the_sign_in_goes_back_where_it_was_asked(browser, user):
    user("bob", "read")
    form = {"username": "bob", "password": PASSWORD, "next": "/ui/runs?status=failed"}
    answer = browser.post("/sign-in", form, csrf=browser.csrf())
    assert answer.status_code == 303 and answer.location == "/ui/runs?status=failed"


def test_unknown_names_and_wrong_passwords_get_one_answer(browser, user):
    user("carol", "read")
    wrong = refused(sign_in(browser, "carol", WRONG), 401, NO_MATCH)
    unknown = refused(sign_in(browser, "nobody", WRONG), 401, NO_MATCH)
    assert wrong.replace("carol", "nobody") == unknown  # the name typed is kept, nothing else
    assert 'value="carol"' in wrong
    refused(sign_in(browser, "", ""), 401, NO_MATCH)
    refused(sign_in(browser, "carol\0", PASSWORD), 401, NO_MATCH)
    assert not browser.signed_in()


def test_a_disabled_or_publish_only_user_is_refused(browser, client, user):
    off = user("dave", "read", enabled=False)
    refused(sign_in(browser, "dave"), 401, "That user is disabled")
    refused(sign_in(browser, "dave", WRONG), 401, NO_MATCH)  # disabled is told only to its owner
    user("erin", "publish")
    refused(sign_in(browser, "erin"), 401, "That user lacks the read scope")
    assert client.get(f"/api/v1/users/{off['id']}").json["last_sign_in_at"] is None
    assert not browser.signed_in()


def test_five_failures_for_a_name_throttle_it_from_anywhere(browser, user):
    user("frank", "read")
    for n in range(5):
        refused(sign_in(browser, "frank", WRONG, address=f"10.0.0.{n}"), 401, NO_MATCH)
    answer = sign_in(browser, "FRANK", PASSWORD, address="10.0.1.1")  # even the right one
    refused(answer, 429, "Too many failed sign-ins")
    assert "try again in 15 minutes" in answer.get_data(as_text=True)
    assert 890 < int(answer.headers["Retry-After"]) <= 900
    assert not browser.signed_in()
    user("grace", "read")
    assert sign_in(browser, "grace", address="10.0.1.1").status_code == 303


def test_five_failures_from_an_address_throttle_it_for_any_name(browser, user):
    user("heidi", "read")
    for name in ("a1", "a2", "a3", "a4", "a5"):
        refused(sign_in(browser, name, WRONG, address="10.9.9.9"), 401, NO_MATCH)
    refused(sign_in(browser, "heidi", address="10.9.9.9"), 429, "Too many failed sign-ins")
    assert sign_in(browser, "heidi", address="10.9.9.10").status_code == 303


def test_a_success_forgives_the_failures_of_its_name(browser, user):
    user("ivan", "read")
    for n in range(4):
        refused(sign_in(browser, "ivan", WRONG, address=f"10.1.0.{n}"), 401, NO_MATCH)
    assert sign_in(browser, "ivan", address="10.2.0.1").status_code == 303
    browser.post("/sign-out")
    for n in range(4):
        refused(sign_in(browser, "ivan", WRONG, address=f"10.3.0.{n}"), 401, NO_MATCH)
    assert sign_in(browser, "ivan", address="10.4.0.1").status_code == 303


def test_without_redis_a_password_sign_in_is_503_and_a_token_still_works(settings, user):
    user("judy", "read")
    down = Platform(settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    try:
        console = Console(create_app(platform=down).test_client())
        answer = sign_in(console, "judy")
        refused(answer, 503, "Sign-in by password is unavailable for now")
        assert not console.signed_in()
        assert console.sign_in().status_code == 303  # the admin token needs no Redis
    finally:
        down.close()


def test_a_new_password_signs_the_session_out(browser, client, user):
    made = user("kate", "read")
    assert sign_in(browser, "kate").status_code == 303
    changed = client.patch(f"/api/v1/users/{made['id']}", json={"password": NEW_PASSWORD})
    assert changed.status_code == 200
    answer = browser.get("/runs")
    assert answer.status_code == 302 and "reason=user+changed" in answer.location
    page = browser.http.get(answer.location).get_data(as_text=True)
    assert "Your password was changed" in page
    assert not browser.signed_in()
    refused(sign_in(browser, "kate"), 401, NO_MATCH)
    assert sign_in(browser, "kate", NEW_PASSWORD).status_code == 303


def test_disabling_signs_the_session_out_for_good(app, browser, client, user):
    made = user("leo", "read")
    assert sign_in(browser, "leo").status_code == 303
    kept = browser.http.get_cookie("session").value
    assert client.patch(f"/api/v1/users/{made['id']}", json={"enabled": False}).status_code == 200
    answer = browser.get("/")
    assert answer.status_code == 302 and "reason=user+disabled" in answer.location
    assert "That user is disabled" in browser.http.get(answer.location).get_data(as_text=True)
    assert client.patch(f"/api/v1/users/{made['id']}", json={"enabled": True}).status_code == 200
    replay = Console(app.test_client())
    replay.http.set_cookie("session", kept)  # the cookie of before the disabling
    answer = replay.get("/")
    assert answer.status_code == 302 and "reason=user+changed" in answer.location


def test_a_deleted_user_is_signed_out(browser, client, user):
    made = user("mia", "read")
    assert sign_in(browser, "mia").status_code == 303
    assert client.delete(f"/api/v1/users/{made['id']}").status_code == 204
    answer = browser.get("/")
    assert answer.status_code == 302 and "reason=user+gone" in answer.location
    assert "That user was deleted" in browser.http.get(answer.location).get_data(as_text=True)


def test_fewer_scopes_apply_at_the_next_page(browser, client, user):
    made = user("ned", "read", "write")
    assert sign_in(browser, "ned").status_code == 303
    assert client.patch(f"/api/v1/users/{made['id']}", json={"scopes": ["read"]}).status_code == 200
    assert "user ned (read)" in browser.page("/")[0]
    client.patch(f"/api/v1/users/{made['id']}", json={"scopes": ["publish"]})
    answer = browser.get("/")
    assert answer.status_code == 302 and "reason=user+lacks+read" in answer.location


def test_a_read_only_user_cannot_retry_a_run(app, browser, client, user):
    step = {"id": "copy", "type": "transform", "expression": "data"}
    workflow = {"name": "manual", "trigger": {"manual": True}, "steps": [step]}
    made = client.post("/api/v1/workflows", json=workflow)
    assert made.status_code == 201, made.json
    queued = client.post(f"/api/v1/workflows/{made.json['id']}/runs", json={"data": {}})
    run_id = queued.json["runs"][0]
    user("olga", "read")
    assert sign_in(browser, "olga").status_code == 303
    answer = browser.post(f"/runs/{run_id}/retry")
    assert answer.status_code == 403 and "Your user lacks the &#39;write&#39; scope" in answer.text
    Page(answer.text).check()
    user("pia", "write")
    writer = Console(app.test_client())
    assert sign_in(writer, "pia").status_code == 303
    again = writer.post(f"/runs/{run_id}/retry")  # past the scope check: the run is not finished
    assert again.status_code == 409
