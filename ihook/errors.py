"""Errors raised by ihook's services; ``ihook.api.errors`` maps each to one HTTP status.

IhookError                   any refusal by a service
├── NotFound          404    no such resource (or it is disabled, for ingress)
├── Conflict          409    a name is taken, or the resource is in the wrong state
├── Invalid           422    input fails validation; ``errors`` names field → reasons
└── Unavailable       503    a dependency (database, Redis) cannot take the request
"""

from __future__ import annotations

from typing import Any


class IhookError(Exception):
    """Raised when a service refuses a request; carries a message for the caller."""

    status = 400

    def __init__(self, message: str, errors: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFound(IhookError):
    """Raised when the resource asked for does not exist."""

    status = 404


class Conflict(IhookError):
    """Raised when a unique name is taken or the resource's state forbids the action."""

    status = 409


class Invalid(IhookError):
    """Raised when input fails validation; ``errors`` maps each field to its reasons."""

    status = 422


class Unavailable(IhookError):
    """Raised when the database or Redis cannot take the request right now."""

    status = 503
