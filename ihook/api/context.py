"""Where views find the platform of the app serving the request."""

from __future__ import annotations

from flask import current_app

from ihook.platform import Platform

EXTENSION = "ihook"
"""Key of the platform in ``app.extensions``."""


def platform() -> Platform:
    """The platform of the current app."""
    return current_app.extensions[EXTENSION]  # type: ignore[no-any-return]
