"""Signing in to the console with an API token, the session that remembers the caller,
and the CSRF check of every form.

The session cookie holds who signed in, never the token: a stored token's id, or for
``IHOOK_ADMIN_TOKEN`` a keyed digest of it. The caller is checked again on every request,
so a token revoked, expired or (for the admin token) changed signs its session out.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from ihook.api.context import platform
from ihook.console.blueprint import bp
from ihook.console.security import fingerprint
from ihook.services.tokens import ADMIN, Caller, TokenRefused, caller_by_id, check_token

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
        abort(403, description=f"Your token lacks the {scope!r} scope this action needs.")
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


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int] | str:
    """The sign-in page; POST checks the token and starts a session."""
    nxt = request.values.get("next")
    if request.method == "GET":
        message = REASONS.get(request.args.get("reason", ""))
        return render_template("console/sign_in.html", message=message, next=nxt)
    token = request.form.get("token", "").strip()
    try:
        if not token:
            raise TokenRefused("invalid token")
        caller, kept = identify(token)
        if not caller.allows(NEEDED):
            raise TokenRefused("no read scope")
    except TokenRefused as refused:
        message = REASONS.get(refused.reason, REASONS["invalid token"])
        return render_template("console/sign_in.html", message=message, next=nxt), 401
    # A new session on sign-in: nothing (a planted CSRF token included) carries over.
    session.pop(SESSION, None)
    session[SESSION] = {**kept, CSRF_FIELD: secrets.token_urlsafe(32)}
    return redirect(_safe_next(nxt), code=303)


@bp.post("/sign-out")
def sign_out() -> Response:
    """End the session (a POST, so no link or image can sign anyone out)."""
    session.pop(SESSION, None)
    return redirect(url_for("console.sign_in", reason="signed-out"), code=303)
