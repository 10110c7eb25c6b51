"""The Flask app factory, and mounting ihook into a host application."""

from __future__ import annotations

from flask import Flask

from ihook.api import register_api
from ihook.api.context import EXTENSION
from ihook.console import error_page as console_error_page
from ihook.console import register_console
from ihook.ingress import bp as ingress
from ihook.platform import Platform
from ihook.settings import Settings
from workflows.plugins import load_plugins


def create_app(settings: Settings | None = None, *, platform: Platform | None = None) -> Flask:
    """A Flask app serving the management API and ``/hooks/{key}``."""
    app = Flask("ihook")
    init_app(app, platform=platform or Platform(settings or Settings.from_env()))
    return app


def init_app(app: Flask, *, url_prefix: str = "", platform: Platform | None = None) -> Flask:
    """Mount ihook (API under ``{url_prefix}/api``, ingress under ``{url_prefix}/hooks``,
    the web console under ``{url_prefix}/ui``)."""
    platform = platform or Platform(Settings.from_env())
    load_plugins()  # once per process; a broken plugin is logged, not fatal
    # Fail at start, not on the first webhook: both are needed to accept one.
    platform.settings.require_secret_keys()
    platform.settings.require_redis_url()
    app.extensions[EXTENSION] = platform
    app.config.setdefault("MAX_CONTENT_LENGTH", None)  # ingress enforces its own cap
    app.json.sort_keys = False  # type: ignore[attr-defined]
    api = register_api(app, url_prefix=url_prefix)
    app.register_blueprint(ingress, url_prefix=url_prefix or None)
    api.error_pages[register_console(app, url_prefix=url_prefix)] = console_error_page
    return app
