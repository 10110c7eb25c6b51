"""Management API tokens: created once, stored hashed, scoped, expiring and revocable.

Scopes, from least to most:

- ``read``: every ``GET``;
- ``publish``: publish events (``POST /api/v1/events``) and nothing else — for a system
  that only tells ihook what happened;
- ``write``: everything ``read`` and ``publish`` can, and every change and action on
  endpoints, workflows, runs, records, subscriptions, deliveries, connectors and pollers;
- ``admin``: everything, including managing tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ihook.errors import Conflict, Invalid
from ihook.ids import new_id
from ihook.models import ApiToken, utcnow
from ihook.secrets import generate_token, hash_token
from ihook.services.common import fetch

LAST_USED_EVERY = timedelta(minutes=1)
"""How stale ``last_used_at`` may get: noting every call would make each GET a write."""
TOKEN_PREFIX = "ihk_"
"""Management tokens start with this, so they are recognisable in a leak scanner."""
SCOPES = ("read", "publish", "write", "admin")
"""Every scope a token may hold."""
GRANTS = {
    "read": {"read"},
    "publish": {"publish"},
    "write": {"read", "publish", "write"},
    "admin": {"read", "publish", "write", "admin"},
}
"""What each scope allows: a scope allows itself and the ones it includes."""


@dataclass(frozen=True)
class Caller:
    """Who a request's token (or a console session's user) belongs to and what it may do."""

    token_id: str | None
    """None for ``IHOOK_ADMIN_TOKEN`` and for a user."""
    scopes: tuple[str, ...]
    user_id: str | None = None
    """The user signed in to the console with a password (``ihook.services.users``)."""
    username: str | None = None

    def allows(self, scope: str) -> bool:
        """Whether any of the caller's scopes allows ``scope``."""
        return any(scope in GRANTS[held] for held in self.scopes)


ADMIN = Caller(token_id=None, scopes=("admin",))
"""The caller of ``IHOOK_ADMIN_TOKEN``."""


class TokenRefused(Exception):
    """Raised when a token is unknown, revoked or expired; the reason is for the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, checked and without repeats; Invalid when one is unknown or none given."""
    checked = list(dict.fromkeys(scopes))
    unknown = [scope for scope in checked if scope not in SCOPES]
    if unknown or not checked:
        reason = f"unknown scope {unknown[0]!r}" if unknown else "at least one scope"
        raise Invalid("invalid token", {"scopes": [f"{reason}: one of {', '.join(SCOPES)}"]})
    return checked


def create_token(
    session: Session,
    name: str,
    scopes: Iterable[str] = ("admin",),
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token; the plain value is returned here and never again."""
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("invalid token", {"expires_at": ["must be in the future"]})
    token = generate_token(TOKEN_PREFIX)
    row = ApiToken(
        id=new_id("tok"),
        name=name,
        token_hash=hash_token(token),
        scopes=check_scopes(scopes),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, newest first, revoked ones included (their hash is never shown)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc())))


def get_token(session: Session, token_id: str) -> ApiToken:
    """One token by id; NotFound when there is none."""
    return fetch(session, ApiToken, token_id, f"no token {token_id!r}")


def revoke_token(session: Session, token_id: str) -> ApiToken:
    """Revoke a token: refused from its next request on. Conflict if already revoked."""
    row = get_token(session, token_id)
    if row.revoked_at is not None:
        raise Conflict(f"token {token_id!r} was revoked at {row.revoked_at.isoformat()}")
    row.revoked_at = utcnow()
    session.flush()
    return row


_CALLER = select(
    ApiToken.id, ApiToken.scopes, ApiToken.last_used_at, ApiToken.expires_at, ApiToken.revoked_at
)
"""What deciding a token's caller reads."""


def check_token(session: Session, token: str) -> Caller:
    """The caller a stored token belongs to; TokenRefused when it is unknown, revoked or
    expired. Its last use is noted, at most once a minute."""
    row = session.execute(_CALLER.where(ApiToken.token_hash == hash_token(token))).first()
    caller = _caller_of(row)
    assert row is not None  # refused above otherwise
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return caller


def caller_by_id(session: Session, token_id: str) -> Caller:
    """The caller of the stored token ``token_id`` (a console session names its token by id,
    never by value); TokenRefused when it is gone, revoked or expired."""
    return _caller_of(session.execute(_CALLER.where(ApiToken.id == token_id)).first())


def _caller_of(row: Any) -> Caller:
    if row is None:
        raise TokenRefused("invalid token")
    if row.revoked_at is not None:
        raise TokenRefused("token revoked")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise TokenRefused("token expired")
    return Caller(token_id=row.id, scopes=tuple(row.scopes))
