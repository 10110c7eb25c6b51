"""Signing in to the console with a user name and password or with an API token, the
session that remembers the caller, and the CSRF check of every form.

The session cookie holds who signed in, never a password or a token: a user's id and the
generation of its password, a stored token's id, or for ``IHOOK_ADMIN_TOKEN`` a keyed
digest of it. The caller is checked again on every request, so a user deleted, disabled
or given a new password, a token revoked or expired, or a changed admin token signs its
session out. Failed sign-ins by password are throttled in Redis
(``ihook.services.users.SignInThrottle``); without Redis, sign-in by password is refused.
"""

from __future__ import annotations

import hmac
import math
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ihook.api.context import platform
from ihook.console.blueprint import bp
from ihook.console.security import fingerprint
from ihook.errors import Unavailable
from ihook.models import utcnow
from ihook.services.tokens import ADMIN, Caller, TokenRefused, caller_by_id, check_token
from ihook.services.users import (
    UNAVAILABLE,
    SignInRefused,
    SignInThrottle,
    caller_by_user,
    caller_of,
    note_sign_in,
    verify_password,
)
from ihook.settings import SettingsError

SESSION = "ihook_console"
"""The key of the console's data in the (possibly shared with a host app) session."""
CSRF_FIELD = "csrf_token"
"""The hidden field every console form carries."""
NEEDED = "read"
"""The scope a token needs to see the console."""
REASONS = {
    "signed-out": "You signed out.",
    "required": "Sign in to use the console.",
    "invalid token": "That token is not valid.",
    "token revoked": "That token was revoked: sign in with another one.",
    "token expired": "That token has expired: sign in with another one.",
    "admin token changed": "The admin token changed: sign in again.",
    "no read scope": "That token lacks the read scope the console needs.",
    "wrong password": "That user name and password do not match.",
    "user disabled": "That user is disabled: ask an admin to enable it.",
    "user gone": "That user was deleted: sign in as another one.",
    "user changed": "Your password was changed, or your user disabled, since you signed in: "
    "sign in again.",
    "user lacks read": "That user lacks the read scope the console needs.",
}
"""Messages of the sign-in page, by reason: a query parameter never becomes page text."""
PUBLIC = {"console.sign_in", "console.static"}
"""Console views that need no caller."""


class SignedOut(Exception):
    """Raised when the session's caller is no longer allowed in; ``reason`` is a REASONS key."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def identify(token: str) -> tuple[Caller, dict[str, str]]:
    """The caller of a token typed at sign-in, and what the session keeps of it."""
    p = platform()
    admin = p.settings.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return ADMIN, {"admin": fingerprint(p.settings.secret_keys[0], admin)}
    with p.db.session() as db:
        caller = check_token(db, token)
    assert caller.token_id is not None
    return caller, {"token_id": caller.token_id}


def current_caller(kept: dict[str, Any]) -> Caller:
    """The caller the session names, checked again now; SignedOut when refused."""
    p = platform()
    if "user_id" in kept:
        return _session_user(kept)
    if "admin" in kept:
        admin = p.settings.admin_token
        expected = admin and fingerprint(p.settings.secret_keys[0], admin)
        if not expected or not hmac.compare_digest(str(kept["admin"]), expected):
            raise SignedOut("admin token changed")
        return ADMIN
    token_id = kept.get("token_id")
    if not isinstance(token_id, str):
        raise SignedOut("required")
    try:
        with p.db.session() as db:
            caller = caller_by_id(db, token_id)
    except TokenRefused as refused:
        raise SignedOut(refused.reason) from None
    if not caller.allows(NEEDED):
        raise SignedOut("no read scope")
    return caller


def _session_user(kept: dict[str, Any]) -> Caller:
    """The user the session names, if still enabled, unchanged and allowed to read."""
    user_id, generation = kept.get("user_id"), kept.get("generation")
    if not isinstance(user_id, str) or not isinstance(generation, int):
        raise SignedOut("required")
    try:
        with platform().db.read() as db:
            caller = caller_by_user(db, user_id, generation)
    except SignInRefused as refused:
        raise SignedOut(refused.reason) from None
    if not caller.allows(NEEDED):
        raise SignedOut("user lacks read")
    return caller


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    kept = session.setdefault(SESSION, {})
    if CSRF_FIELD not in kept:
        kept[CSRF_FIELD] = secrets.token_urlsafe(32)
        session.modified = True
    return str(kept[CSRF_FIELD])


def check_csrf() -> None:
    """400 unless the form carries this session's CSRF token (compared in constant time)."""
    expected = session.get(SESSION, {}).get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(sent.encode(), str(expected).encode()):
        abort(400, description="The form was out of date or not sent by the console: try again.")


def require(scope: str) -> Caller:
    """The current caller, or a 403 page when it lacks ``scope``."""
    caller: Caller = g.console_caller
    if not caller.allows(scope):
        who = "user" if caller.user_id else "token"
        abort(403, description=f"Your {who} lacks the {scope!r} scope this action needs.")
    return caller


def _to_sign_in(reason: str) -> Response:
    nxt = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("console.sign_in", reason=reason, next=nxt))


@bp.before_request
def guard() -> Response | None:
    """Check the CSRF token of every POST and the caller of every page."""
    if request.method == "POST":
        check_csrf()
    if request.endpoint in PUBLIC:
        return None
    kept = session.get(SESSION) or {}
    try:
        g.console_caller = current_caller(kept)
    except SignedOut as out:
        session.pop(SESSION, None)
        return _to_sign_in(out.reason)
    return None


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a path of this console, never another site."""
    home = url_for("console.dashboard")
    if not target:
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith(home) or "\\" in target:
        return home
    return target


Answer = Response | tuple[str, int] | tuple[str, int, dict[str, str]] | str
"""What the sign-in view answers: a redirect, or the page (with a status, maybe headers)."""


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Answer:
    """The sign-in page; POST checks a user name and password (or a token) and starts a
    session."""
    nxt = request.values.get("next")
    if request.method == "GET":
        message = REASONS.get(request.args.get("reason", ""))
        return render_template("console/sign_in.html", message=message, next=nxt)
    if "username" in request.form:
        return _sign_in_with_password(nxt)
    token = request.form.get("token", "").strip()
    try:
        if not token:
            raise TokenRefused("invalid token")
        caller, kept = identify(token)
        if not caller.allows(NEEDED):
            raise TokenRefused("no read scope")
    except TokenRefused as refused:
        message = REASONS.get(refused.reason, REASONS["invalid token"])
        page = render_template("console/sign_in.html", message=message, next=nxt, method="token")
        return page, 401
    return _start_session(kept, nxt)


def _sign_in_with_password(nxt: str | None) -> Answer:
    """Check a user name and password, throttled per name and per client address."""
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"

    def again(message: str, status: int, headers: dict[str, str] | None = None) -> Answer:
        page = render_template("console/sign_in.html", message=message, next=nxt, username=username)
        return page, status, headers or {}

    p = platform()
    try:
        throttle = SignInThrottle(p.redis)
        wait = throttle.attempt(username, address)
    except (Unavailable, SettingsError):
        return again(UNAVAILABLE, 503)
    if wait:
        return again(_throttled(wait), 429, {"Retry-After": str(wait)})
    try:
        with p.db.read() as db:  # the slow hash is checked outside any write lock
            found = verify_password(db, username, password)
        if not caller_of(found).allows(NEEDED):
            raise SignInRefused("user lacks read")
    except SignInRefused as refused:
        return again(REASONS[refused.reason], 401)
    with p.db.session() as db:
        note_sign_in(db, found.id)
    try:
        throttle.succeeded(username, address)
    except Unavailable:
        pass  # the attempts counted expire with their window
    return _start_session({"user_id": found.id, "generation": found.generation}, nxt)


def _throttled(wait: int) -> str:
    """The message of a throttled sign-in: how long to wait, and until when (UTC)."""
    minutes = max(1, math.ceil(wait / 60))
    until = (utcnow() + timedelta(seconds=wait)).strftime("%H:%M UTC")
    return (
        f"Too many failed sign-ins for that user name or from your address: try again in "
        f"{minutes} minute{'s' if minutes > 1 else ''} (after {until})."
    )


def _start_session(kept: dict[str, Any], nxt: str | None) -> Response:
    """A new session for the caller ``kept`` names, and the way to where it was going."""
    # Nothing of the old session (a planted CSRF token included) carries over.
    session.pop(SESSION, None)
    session[SESSION] = {**kept, CSRF_FIELD: secrets.token_urlsafe(32)}
    return redirect(_safe_next(nxt), code=303)


@bp.post("/sign-out")
def sign_out() -> Response:
    """End the session (a POST, so no link or image can sign anyone out)."""
    session.pop(SESSION, None)
    return redirect(url_for("console.sign_in", reason="signed-out"), code=303)
