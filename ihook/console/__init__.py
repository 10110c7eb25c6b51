"""The web console at ``/ui``: server-rendered pages over the same services as the API.

Signed in with an API token (the cookie keeps who, never the token); every form carries a
CSRF token; every answer carries a strict Content-Security-Policy. JavaScript, from our
own static file, only enhances pages that work without it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, render_template
from werkzeug.exceptions import HTTPException

from ihook.api.context import EXTENSION
from ihook.console import (  # noqa: F401  (they add the views)
    auth,
    dashboard,
    delivery_pages,
    endpoint_pages,
    event_type_pages,
    pages,
    poller_pages,
    runs,
    subscription_pages,
    subscription_wizard,
    workflow_pages,
)
from ihook.console.blueprint import bp
from ihook.console.present import register_filters
from ihook.console.security import add_headers, configure_sessions
from ihook.errors import IhookError

__all__ = ["bp", "error_page", "register_console"]

URL_PREFIX = "/ui"
"""Where the console lives, below the prefix ihook is mounted at."""
NAV = [
    ("console.dashboard", "Dashboard"),
    ("console.endpoints", "Endpoints"),
    ("console.workflows", "Workflows"),
    ("console.runs", "Runs"),
    ("console.subscriptions", "Subscriptions"),
    ("console.event_types", "Event types"),
    ("console.pollers", "Pollers"),
]
"""The console's main navigation, in order."""


@bp.context_processor
def _page_context() -> dict[str, Any]:
    return {
        "csrf_token": auth.csrf_token,
        "csrf_field": auth.CSRF_FIELD,
        "caller": g.get("console_caller"),
        "nav": NAV,
    }


@bp.errorhandler(HTTPException)
def error_page(error: HTTPException) -> tuple[str, int]:
    """An HTTP error as a console page (also for a wrong method, which has no blueprint)."""
    status = error.code or 500
    return render_template("console/error.html", status=status, error=error), status


@bp.errorhandler(IhookError)
def _service_error(error: IhookError) -> tuple[str, int]:
    return render_template("console/error.html", status=error.status, error=error), error.status


bp.after_request(add_headers)


def register_console(app: Flask, url_prefix: str = "") -> str:
    """Mount the console at ``{url_prefix}/ui`` on ``app`` (which holds ihook's platform);
    answer that path."""
    configure_sessions(app, app.extensions[EXTENSION].settings.require_secret_keys())
    register_filters(app)
    app.register_blueprint(bp, url_prefix=f"{url_prefix}{URL_PREFIX}")
    return f"{url_prefix}{URL_PREFIX}"
