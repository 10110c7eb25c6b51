"""Management API tokens: created once, stored hashed, checked in constant time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ihook.ids import new_id
from ihook.models import ApiToken, utcnow
from ihook.secrets import generate_token, hash_token

LAST_USED_EVERY = timedelta(minutes=1)
"""How stale ``last_used_at`` may get: noting every call would make each GET a write."""
TOKEN_PREFIX = "ihk_"
"""Management tokens start with this, so they are recognisable in a leak scanner."""


def create_token(session: Session, name: str) -> tuple[ApiToken, str]:
    """Create a token; the plain value is returned here and never again."""
    token = generate_token(TOKEN_PREFIX)
    row = ApiToken(id=new_id("tok"), name=name, token_hash=hash_token(token))
    session.add(row)
    session.flush()
    return row, token


def check_token(session: Session, token: str) -> bool:
    """True when ``token`` is a stored one; its last use is noted, at most once a minute."""
    digest = hash_token(token)
    row = session.execute(
        select(ApiToken.id, ApiToken.last_used_at).where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        return False
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return True
