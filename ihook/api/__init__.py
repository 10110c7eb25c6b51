"""The management API (``/api/v1``) on flask-smorest, with its OpenAPI document."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Flask, g, request
from flask_smorest import Api, abort

from ihook.api import (
    connectors,
    deliveries,
    endpoints,
    event_types,
    events,
    health,
    pollers,
    records,
    runs,
    subscriptions,
    tokens,
    users,
    workflows,
)
from ihook.api.context import platform
from ihook.api.responses import SharedErrors
from ihook.errors import IhookError
from ihook.services.tokens import ADMIN, Caller, TokenRefused, check_token
from ihook.storable import REASON, storable

__all__ = ["register_api"]

OPENAPI = {
    "API_TITLE": "ihook",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "OPENAPI_SWAGGER_UI_PATH": "/docs",
    "OPENAPI_SWAGGER_UI_URL": "https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
}
"""flask-smorest settings: the document at /api/openapi.json, Swagger UI at /api/docs."""
BLUEPRINTS = (
    health,
    connectors,
    endpoints,
    workflows,
    events,
    event_types,
    runs,
    records,
    subscriptions,
    deliveries,
    pollers,
    tokens,
    users,
)
PROTECTED = {m.blp.name for m in BLUEPRINTS if m is not health}
"""Blueprints whose routes need a bearer token (all but health)."""


class IhookApi(Api):
    """flask-smorest's Api, with a ``message`` on every error (webargs' 422s lack one)."""

    mount_prefix = ""
    """Where ``init_app`` mounted ihook; a host's routes outside it keep their own errors."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.error_pages: dict[str, Callable[[Any], Any]] = {}
        """Path prefixes answered with HTML error pages (the console's) instead of JSON."""

    def handle_http_exception(self, error):  # type: ignore[no-untyped-def]
        # smorest's handler is app-wide: without this a host's own 404 pages turn into JSON.
        if self.mount_prefix and not request.path.startswith(f"{self.mount_prefix}/"):
            return error
        # Errors raised before a route is found (a wrong method) belong to no blueprint.
        for prefix, page in self.error_pages.items():
            if request.path == prefix or request.path.startswith(f"{prefix}/"):
                return page(error)
        payload, status, headers = super().handle_http_exception(error)
        if "message" not in payload:
            invalid = status == 422 and "errors" in payload
            payload["message"] = "invalid request: see errors" if invalid else error.description
        return payload, status, headers


def register_api(app: Flask, url_prefix: str = "") -> Api:
    """Mount the API, its docs and its error handling on ``app``."""
    for key, value in OPENAPI.items():
        app.config.setdefault(key, value)
    if url_prefix:
        app.config["OPENAPI_URL_PREFIX"] = f"{url_prefix}/api"
    api = IhookApi(
        app,
        spec_kwargs={
            "info": {"description": "Manage ihook: webhooks and workflows."},
            "extra_plugins": [SharedErrors()],
        },
    )
    api.mount_prefix = url_prefix
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearer": []}]
    app.before_request(_require_token)
    app.before_request(_refuse_unstorable_path)
    for module in BLUEPRINTS:
        api.register_blueprint(module.blp, url_prefix=f"{url_prefix}{module.blp.url_prefix}")

    app.register_error_handler(IhookError, error_response)
    return api


def error_response(exc: IhookError) -> tuple[dict[str, Any], int]:
    """A service error in flask-smorest's error shape, with its one HTTP status."""
    body: dict[str, Any] = {
        "code": exc.status,
        "status": HTTPStatus(exc.status).phrase,
        "message": exc.message,
    }
    if exc.errors:
        body["errors"] = {"json": exc.errors}
    return body, exc.status


ADMIN_BLUEPRINTS = {tokens.blp.name, users.blp.name}
"""Blueprints only the ``admin`` scope may call at all: who may sign in and with what."""
PUBLISH_VIEWS = {"events.Events"}
"""The views a ``publish`` token may call (with POST): publishing an event."""


def needed_scope() -> str:
    """The scope the current request needs (see ``ihook.services.tokens``)."""
    if request.blueprint in ADMIN_BLUEPRINTS:
        return "admin"
    if request.method in ("GET", "HEAD"):
        return "read"
    if request.endpoint in PUBLISH_VIEWS:
        return "publish"
    return "write"


def _require_token() -> None:
    if request.blueprint not in PROTECTED or request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        abort(401, message="missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    p = platform()
    # The same cap as ingress: a management call may carry a payload (events, manual runs).
    request.max_content_length = p.settings.max_body_bytes
    admin = p.settings.admin_token
    caller: Caller
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        caller = ADMIN
    else:
        try:
            with p.db.session() as session:
                caller = check_token(session, token)
        except TokenRefused as refused:
            abort(401, message=refused.reason, headers={"WWW-Authenticate": "Bearer"})
    g.caller = caller
    scope = needed_scope()
    if not caller.allows(scope):
        abort(
            403,
            message=f"this token lacks the {scope!r} scope (it has: {', '.join(caller.scopes)})",
        )


def _refuse_unstorable_path() -> None:
    """404 for a path whose id or name holds text no stored id or name can hold.

    Looked up, such a value fails in the database (PostgreSQL) instead of matching nothing.
    """
    if request.blueprint not in PROTECTED:
        return
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and not storable(value):
            abort(404, message=f"not found: the {name} in the path {REASON}")
