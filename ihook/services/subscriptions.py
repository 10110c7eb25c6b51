"""Outgoing-webhook subscriptions: create, change, enable, rotate; their target and secrets.

A subscription's secrets live in two encrypted columns: ``secret_enc`` (the ``whsec_``
signing secret, with the rotated-out one in ``previous_secret_enc`` for a while) and
``secrets_enc``, the JSON ``{"auth": {"password" | "token": …}, "headers": {name: value}}``.
What is not secret (auth type, username, header names) is stored in the clear.
Each setting is checked in ``subscription_fields``, whose public names are re-exported here.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.outbound import OutboundPolicy
from ihook.ids import new_id
from ihook.models import Subscription, utcnow
from ihook.secrets import Vault
from ihook.services.common import fetch, flush_unique
from ihook.services.subscription_fields import (
    AUTH_TYPES,
    ENVIRONMENTS,
    MAX_RETRY_ATTEMPTS,
    MAX_RETRY_DELAY,
    MAX_URL_CHARS,
    REDACTED,
    RESERVED_HEADERS,
    check_target,
    stored_secrets,
    validate,
)
from ihook.signing import generate_secret

__all__ = [
    "AUTH_TYPES",
    "DEFAULTS",
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_RETRY_SCHEDULE",
    "ENVIRONMENTS",
    "MAX_RETRY_ATTEMPTS",
    "MAX_RETRY_DELAY",
    "MAX_URL_CHARS",
    "REDACTED",
    "RESERVED_HEADERS",
    "Created",
    "check_target",
    "create_subscription",
    "delete_subscription",
    "get_subscription",
    "list_subscriptions",
    "matches",
    "name_taken",
    "request_auth",
    "rotate_secret",
    "set_enabled",
    "signing_secrets",
    "update_subscription",
]

DEFAULT_RETRY_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
"""Seconds to wait before each attempt: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h."""
DEFAULT_GRACE_SECONDS = 86_400
"""How long a rotated-out signing secret still signs, so receivers can switch over."""
DEFAULTS: dict[str, Any] = {
    "description": "",
    "environment": "live",
    "filter": None,
    "mapping": None,
    "fixed_data": None,
    "error_emails": [],
    "retry_schedule": DEFAULT_RETRY_SCHEDULE,
}
"""What a full replacement (PUT) gives the settings it omits; ``enabled``, ``auth`` and
``headers`` keep their values instead, as the secrets cannot be read back to resend."""


@dataclass
class Created:
    """A subscription with its signing secret, shown to its creator this once."""

    subscription: Subscription
    secret: str


def get_subscription(session: Session, sub_id: str) -> Subscription:
    """The subscription, or NotFound."""
    return fetch(session, Subscription, sub_id, f"subscription {sub_id} not found")


def list_subscriptions(
    session: Session, *, enabled: bool | None = None, environment: str | None = None
) -> list[Subscription]:
    """Subscriptions, oldest first; optionally only enabled ones, or one environment's."""
    query = select(Subscription).order_by(Subscription.id)
    if enabled is not None:
        query = query.where(Subscription.enabled.is_(enabled))
    if environment is not None:
        query = query.where(Subscription.environment == environment)
    return list(session.scalars(query))


def name_taken(session: Session, name: str, *, but: str | None = None) -> bool:
    """Whether a subscription (other than ``but``) already has this name."""
    query = select(Subscription.id).where(Subscription.name == name)
    if but is not None:
        query = query.where(Subscription.id != but)
    return session.scalar(query.limit(1)) is not None


def create_subscription(
    session: Session,
    vault: Vault,
    fields: dict[str, Any],
    *,
    allow_http: bool,
    policy: OutboundPolicy,
) -> Created:
    """Create a subscription; its ``whsec_`` signing secret is returned once."""
    values, secrets = validate(fields, None, vault, allow_http=allow_http, policy=policy)
    secret = generate_secret()
    sub = Subscription(
        id=new_id("sub"),
        enabled=True,
        auth={"type": "none"},
        header_names=[],
        secret_enc=vault.encrypt(secret),
        **{name: _copy(value) for name, value in DEFAULTS.items()},
    )
    _apply(sub, values, secrets, vault)
    session.add(sub)
    flush_unique(session, "subscription", sub.name)
    return Created(sub, secret)


def update_subscription(
    session: Session,
    vault: Vault,
    sub_id: str,
    fields: dict[str, Any],
    *,
    allow_http: bool,
    policy: OutboundPolicy,
) -> Subscription:
    """Change the given settings; the others keep their values.

    Giving ``auth`` or ``headers`` replaces their secrets, except that a password/token
    left out of an unchanged auth type, or a header value given as ``***``, keeps the
    stored one. The URL is checked again when ``url`` or ``environment`` is given.
    """
    sub = get_subscription(session, sub_id)
    values, secrets = validate(fields, sub, vault, allow_http=allow_http, policy=policy)
    was_enabled = sub.enabled
    _apply(sub, values, secrets, vault)
    if sub.enabled and not was_enabled:
        sub.disabled_reason = sub.failing_since = None
    flush_unique(session, "subscription", sub.name)
    return sub


def delete_subscription(session: Session, sub_id: str) -> None:
    """Delete a subscription and, with it, its deliveries."""
    session.delete(get_subscription(session, sub_id))


def set_enabled(
    session: Session, sub_id: str, enabled: bool, *, reason: str | None = None
) -> Subscription:
    """Switch a subscription on (forgetting why it was off and since when it failed) or off."""
    sub = get_subscription(session, sub_id)
    if enabled and not sub.enabled:
        sub.disabled_reason = sub.failing_since = None
    elif not enabled:
        sub.disabled_reason = reason
    sub.enabled = enabled
    sub.updated_at = utcnow()
    return sub


def rotate_secret(
    session: Session, vault: Vault, sub_id: str, *, grace_seconds: int = DEFAULT_GRACE_SECONDS
) -> tuple[Subscription, str]:
    """A new signing secret, returned once; the old one also signs for ``grace_seconds``."""
    sub = get_subscription(session, sub_id)
    secret = generate_secret()
    keep = grace_seconds > 0
    sub.previous_secret_enc = sub.secret_enc if keep else None
    sub.previous_secret_expires_at = utcnow() + timedelta(seconds=grace_seconds) if keep else None
    sub.secret_enc = vault.encrypt(secret)
    sub.updated_at = utcnow()
    return sub, secret


def signing_secrets(sub: Subscription, vault: Vault, now: datetime | None = None) -> list[str]:
    """The secrets to sign with: the current one, then the previous one until it expires."""
    secrets = [vault.decrypt(sub.secret_enc)]
    expires = sub.previous_secret_expires_at
    if sub.previous_secret_enc and expires and expires > (now or utcnow()):
        secrets.append(vault.decrypt(sub.previous_secret_enc))
    return secrets


def request_auth(sub: Subscription, vault: Vault) -> dict[str, str]:
    """The headers a delivery adds: the custom ones, then ``Authorization`` for basic/bearer."""
    stored = stored_secrets(sub, vault)
    values = stored["headers"]
    headers = {name: values[name] for name in sub.header_names if name in values}
    kind = sub.auth.get("type", "none")
    if kind == "basic":
        pair = f"{sub.auth['username']}:{stored['auth'].get('password', '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    elif kind == "bearer":
        headers["Authorization"] = "Bearer " + stored["auth"].get("token", "")
    return headers


def matches(sub: Subscription, event_type: str) -> bool:
    """True when one of the subscription's patterns (``*`` is the only wildcard) matches."""
    return any(fnmatchcase(event_type, _literal(pattern)) for pattern in sub.event_types)


def _literal(pattern: str) -> str:
    return pattern.replace("[", "[[]").replace("?", "[?]")


def _apply(
    sub: Subscription, values: dict[str, Any], secrets: dict[str, Any] | None, vault: Vault
) -> None:
    for name, value in values.items():
        setattr(sub, name, value)
    if secrets is not None:
        kept = secrets["auth"] or secrets["headers"]
        sub.secrets_enc = vault.encrypt(json.dumps(secrets)) if kept else None


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
