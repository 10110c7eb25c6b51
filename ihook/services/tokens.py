"""Management API tokens: created once, stored hashed, checked in constant time."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ihook.ids import new_id
from ihook.models import ApiToken, utcnow
from ihook.secrets import generate_token, hash_token

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
    """True when ``token`` is a stored one (its last use is noted)."""
    digest = hash_token(token)
    row = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest))
    if row is None:
        return False
    session.execute(update(ApiToken).where(ApiToken.id == row).values(last_used_at=utcnow()))
    return True
