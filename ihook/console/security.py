"""The console's cookie and headers: a session key derived from ihook's secret keys, a
session cookie that is Secure on https, and the headers every console answer carries."""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface

SESSION_KEY_LABEL = b"ihook console session v1"
"""Fixed label of the session-key derivation: the raw IHOOK_SECRET_KEY never signs cookies."""
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
"""Set on every console answer: no inline script or style, no framing, no leaking URLs."""


def session_key(secret_key: str) -> str:
    """The key that signs the console's session cookie, derived from one IHOOK_SECRET_KEY."""
    return hmac.new(secret_key.encode(), SESSION_KEY_LABEL, hashlib.sha256).hexdigest()


def fingerprint(secret_key: str, value: str) -> str:
    """A keyed digest of ``value``: lets a cookie name the admin token without holding it."""
    key = session_key(secret_key).encode()
    return hmac.new(key, b"admin-token\x00" + value.encode(), hashlib.sha256).hexdigest()


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def configure_sessions(app: Flask, secret_keys: tuple[str, ...]) -> None:
    """Sign sessions with keys derived from ihook's secret keys, unless a host app signs its
    own; HttpOnly, SameSite=Lax, Secure on https (a host's explicit choices are kept)."""
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = session_key(secret_keys[0])
        # Older keys during a rotation keep sessions signed before it valid.
        app.config["SECRET_KEY_FALLBACKS"] = [session_key(key) for key in secret_keys[1:]]
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Only replace Flask's own interface: a host's server-side sessions stay its own.
    if type(app.session_interface) is SecureCookieSessionInterface:
        app.session_interface = ConsoleSessionInterface()


def add_headers(response: Response) -> Response:
    """The console's security headers; pages (not static files) are not to be cached."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
