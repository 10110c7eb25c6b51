"""Signing in and out of the console, the session cookie, and CSRF (``ihook.console.auth``)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import update

from ihook import init_app
from ihook.app import create_app
from ihook.models import ApiToken
from ihook.platform import Platform
from tests.conftest import ADMIN_TOKEN, SECRET_KEY
from tests.ihook.console.support import Console, Page

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def cookie(console: Console) -> str:
    found = console.http.get_cookie("session")
    assert found is not None
    return found.value


def session_data(app, console: Console) -> dict:
    """The decoded session cookie (the app's own signing serializer)."""
    return app.session_interface.get_signing_serializer(app).loads(cookie(console))


def refused(answer, message: str) -> None:
    assert answer.status_code == 401
    html = answer.get_data(as_text=True)
    Page(html).check()
    assert message in html


def test_pages_need_a_sign_in_and_come_back_after_it(browser):
    answer = browser.get("/runs?status=failed")
    assert answer.status_code == 302
    assert "/ui/sign-in" in answer.location and "reason=required" in answer.location
    page = browser.http.get(answer.location)
    assert "Sign in to use the console." in page.get_data(as_text=True)
    signed = browser.post(
        "/sign-in", {"token": ADMIN_TOKEN, "next": "/ui/runs?status=failed"}, csrf=browser.csrf()
    )
    assert signed.status_code == 303 and signed.location == "/ui/runs?status=failed"
    assert browser.get("/runs?status=failed").status_code == 200


def test_the_admin_token_signs_in(ui):
    html, _ = ui.page("/")
    assert "admin token (admin)" in html and "Sign out" in html


def test_a_stored_read_token_signs_in_and_sees_every_page(browser, token):
    made = token("read")
    answer = browser.sign_in(made["token"])
    assert answer.status_code == 303 and answer.location == "/ui/"
    for path in ("/", "/endpoints", "/workflows", "/subscriptions", "/pollers", "/runs"):
        html, _ = browser.page(path)
        assert f"token {made['id']} (read)" in html


def test_wrong_revoked_expired_and_publish_only_tokens_are_refused(
    browser, client, platform, token
):
    refused(browser.sign_in("ihk_not-a-token"), "That token is not valid.")
    refused(browser.sign_in(""), "That token is not valid.")
    revoked = token("read")
    assert client.delete(f"/api/v1/tokens/{revoked['id']}").status_code == 200
    refused(browser.sign_in(revoked["token"]), "That token was revoked")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    expired = token("write", expires_at=soon)
    with platform.db.session() as session:
        past = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(
            update(ApiToken).where(ApiToken.id == expired["id"]).values(expires_at=past)
        )
    refused(browser.sign_in(expired["token"]), "That token has expired")
    refused(browser.sign_in(token("publish")["token"]), "lacks the read scope")
    assert not browser.signed_in()


def test_a_token_revoked_after_sign_in_is_signed_out_at_its_next_page(browser, client, token):
    made = token("write")
    assert browser.sign_in(made["token"]).status_code == 303
    assert browser.get("/runs").status_code == 200
    assert client.delete(f"/api/v1/tokens/{made['id']}").status_code == 200
    answer = browser.get("/runs")
    assert answer.status_code == 302 and "reason=token+revoked" in answer.location
    assert "That token was revoked" in browser.http.get(answer.location).get_data(as_text=True)
    assert not browser.signed_in()  # the session was cleared, not just this page refused


def test_a_changed_admin_token_signs_out_sessions_of_the_old_one(ui, settings):
    other = Platform(settings.replace(admin_token="another-admin-token"))
    try:
        app = create_app(platform=other)
        moved = Console(app.test_client())
        moved.http.set_cookie("session", cookie(ui))
        answer = moved.get("/")
        assert answer.status_code == 302 and "admin+token+changed" in answer.location
    finally:
        other.close()


def test_the_session_cookie_holds_no_token(app, browser, token):
    made = token("read")
    browser.sign_in(made["token"])
    data = session_data(app, browser)["ihook_console"]
    assert set(data) == {"token_id", "csrf_token"} and data["token_id"] == made["id"]
    assert made["token"] not in cookie(browser) and made["token"] not in str(data)
    browser.post("/sign-out")
    browser.sign_in(ADMIN_TOKEN)
    data = session_data(app, browser)["ihook_console"]
    assert set(data) == {"admin", "csrf_token"}
    assert ADMIN_TOKEN not in cookie(browser) and ADMIN_TOKEN not in str(data)


def test_the_cookie_is_httponly_lax_and_secure_on_https(app, browser):
    plain = browser.get("/sign-in").headers["Set-Cookie"]
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    https = Console(app.test_client())
    secure = https.http.get("/ui/sign-in", base_url="https://localhost").headers["Set-Cookie"]
    assert "Secure" in secure and "HttpOnly" in secure


def test_the_session_key_is_derived_from_the_secret_key(app):
    expected = hmac.new(
        SECRET_KEY.encode(), b"ihook console session v1", hashlib.sha256
    ).hexdigest()
    assert app.secret_key == expected != SECRET_KEY


def test_a_host_app_keeps_its_own_secret_key(platform):
    host = Flask("members")
    host.config.update(TESTING=True, SECRET_KEY="the-host-key")
    init_app(host, url_prefix="/integrations", platform=platform)
    assert host.secret_key == "the-host-key"
    console = Console(host.test_client(), prefix="/integrations")
    assert console.sign_in(ADMIN_TOKEN).status_code == 303
    assert console.signed_in()


def test_sign_out_is_a_post_with_csrf(ui, client):
    wrong = ui.get("/sign-out")
    assert wrong.status_code == 405 and wrong.mimetype == "text/html"
    Page(wrong.get_data(as_text=True)).check()
    assert "405" in wrong.get_data(as_text=True)
    missing = ui.get("/no-such-page")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    # The API keeps its JSON errors.
    assert client.get("/api/v1/no-such").mimetype == "application/json"
    assert client.delete("/api/v1/endpoints").json["code"] == 405
    assert ui.post("/sign-out", csrf=None).status_code == 400
    assert ui.post("/sign-out", csrf="wrong").status_code == 400
    assert ui.signed_in()
    out = ui.post("/sign-out")
    assert out.status_code == 303 and "reason=signed-out" in out.location
    assert not ui.signed_in()


def test_sign_in_needs_the_csrf_token_of_its_page(browser):
    for csrf in (None, "", "forged"):
        answer = browser.post("/sign-in", {"token": ADMIN_TOKEN}, csrf=csrf)
        assert answer.status_code == 400
        Page(answer.get_data(as_text=True)).check()
    assert not browser.signed_in()


def test_sign_in_sends_nowhere_but_the_console(browser):
    for target in ("https://evil.example/ui/", "//evil.example/ui/", "/api/v1/runs", "/ui\\x"):
        answer = browser.post(
            "/sign-in", {"token": ADMIN_TOKEN, "next": target}, csrf=browser.csrf()
        )
        assert answer.status_code == 303 and answer.location == "/ui/", target
