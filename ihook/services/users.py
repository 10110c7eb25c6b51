"""Users: people who sign in to the console with a user name and a password.

A user holds the scopes an API token holds (``ihook.services.tokens``). Its password is
kept only as werkzeug's salted scrypt hash; neither is ever shown or logged. A new
password or a disabling bumps the user's ``generation``: a console session remembers the
generation it began in, so either signs that session out.

Failed sign-ins by password are counted in Redis by :class:`SignInThrottle`: after
``MAX_FAILURES`` within ``FAILURE_WINDOW`` for one user name or one client address, sign-in
by password is refused until that window ends.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ihook.errors import Conflict, Invalid, NotFound, Unavailable
from ihook.ids import new_id
from ihook.models import User, utcnow
from ihook.services.common import fetch
from ihook.services.tokens import Caller, check_scopes
from ihook.storable import storable

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")
"""A user name: ASCII letters, digits, ``_ . @ + -``, starting with a letter or digit, at most
64. ASCII only, so no two names differ by look-alike letters and lower case is one rule."""
USERNAME_RULE = (
    "letters, digits, '_', '.', '@', '+', '-'; starting with a letter or digit; at most 64"
)
"""The rule of ``USERNAME``, as a refusal states it."""
PASSWORD_MIN = 12
"""Fewest characters of a password."""
PASSWORD_MAX = 1024
"""Most characters of a password: hashing a huge one would be a cheap way to load the host."""
DISPLAY_NAME_MAX = 200
"""Most characters of a display name."""
HASH_METHOD = "scrypt"
"""werkzeug's password hash: scrypt (N=2**15, r=8, p=1) with a random 16-character salt."""
DEFAULT_SCOPES = ("read",)
"""What a user may do unless told otherwise: look, change nothing."""
EDITABLE = frozenset({"display_name", "scopes", "enabled", "password"})
"""What an update may change."""
MAX_FAILURES = 5
"""Failed sign-ins by password one user name (or one client address) may have per window."""
FAILURE_WINDOW = 15 * 60
"""Seconds, from the first failure, that failures are counted for."""
THROTTLE_PREFIX = "ihook:signin:"
"""Prefix of the Redis counters of failed sign-ins."""
UNAVAILABLE = (
    "Sign-in by password is unavailable for now (failed attempts cannot be counted): "
    "try again later, or sign in with an API token."
)
"""Why sign-in by password is refused while Redis cannot be reached."""


class SignInRefused(Exception):
    """Raised when a password sign-in or a user's session is refused; ``reason`` says why:
    ``wrong password`` (the user name is unknown or the password wrong: one answer for
    both), ``user disabled``, ``user gone`` or ``user changed`` (a new password, or disabled
    since the session began)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_username(username: str) -> str:
    """The user name, checked; Invalid when it breaks ``USERNAME``."""
    if not USERNAME.match(username):
        raise Invalid("invalid user", {"username": [USERNAME_RULE]})
    return username


def check_password(password: str, username: str) -> str:
    """The password, checked: long enough, not too long, not the user name; Invalid if not."""
    reason = None
    if len(password) < PASSWORD_MIN:
        reason = f"at least {PASSWORD_MIN} characters"
    elif len(password) > PASSWORD_MAX:
        reason = f"at most {PASSWORD_MAX} characters"
    elif not storable(password):
        reason = "holds U+0000 or an unpaired surrogate"
    elif password.strip().lower() == username.lower():
        reason = "must not be the user name"
    if reason:
        raise Invalid("invalid user", {"password": [reason]})
    return password


def create_user(
    session: Session,
    username: str,
    password: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    display_name: str | None = None,
    enabled: bool = True,
) -> User:
    """Create a user; Conflict when the name is taken whatever its case, Invalid for a
    name, password, scope or display name that breaks the rules."""
    check_username(username)
    check_password(password, username)
    if _by_name(session, username) is not None:
        raise _taken(username)
    now = utcnow()
    row = User(
        id=new_id("usr"),
        username=username,
        username_key=username.lower(),
        display_name=_display_name(display_name),
        password_hash=generate_password_hash(password, method=HASH_METHOD),
        generation=1,
        scopes=_scopes(scopes),
        enabled=enabled,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # the same name created at the same moment
        raise _taken(username) from None
    return row


def list_users(session: Session) -> list[User]:
    """Every user, by name."""
    return list(session.scalars(select(User).order_by(User.username_key)))


def get_user(session: Session, user_id: str) -> User:
    """One user by id; NotFound when there is none."""
    return fetch(session, User, user_id, f"no user {user_id!r}")


def find_user(session: Session, username: str) -> User:
    """One user by name, whatever its case; NotFound when there is none."""
    row = _by_name(session, username)
    if row is None:
        raise NotFound(f"no user {username!r}")
    return row


def update_user(session: Session, user_id: str, changes: Mapping[str, Any]) -> User:
    """Change a user's ``display_name``, ``scopes``, ``enabled`` or ``password``. A new
    password or a disabling signs the user's console sessions out."""
    unknown = sorted(set(changes) - EDITABLE)
    if unknown:
        raise Invalid("invalid user", {name: ["cannot be changed"] for name in unknown})
    row = get_user(session, user_id)
    if "display_name" in changes:
        row.display_name = _display_name(changes["display_name"])
    if "scopes" in changes:
        row.scopes = _scopes(changes["scopes"])
    if "password" in changes:
        row.password_hash = generate_password_hash(
            check_password(changes["password"], row.username), method=HASH_METHOD
        )
        row.password_changed_at = utcnow()
        row.generation += 1
    if "enabled" in changes:
        enabled = bool(changes["enabled"])
        if row.enabled and not enabled:
            row.generation += 1  # enabling again does not bring old sessions back
        row.enabled = enabled
    row.updated_at = utcnow()
    session.flush()
    return row


def delete_user(session: Session, user_id: str) -> None:
    """Delete a user: its console sessions end at their next page."""
    session.delete(get_user(session, user_id))
    session.flush()


def verify_password(session: Session, username: str, password: str) -> User:
    """The user whose name and password these are; SignInRefused otherwise. An unknown name
    costs the same hashing as a wrong password and gets the same reason."""
    row = _by_name(session, username) if USERNAME.match(username) else None
    hashed = row.password_hash if row is not None else _stand_in_hash()
    matches = storable(password) and check_password_hash(hashed, password)
    if row is None or not matches:
        raise SignInRefused("wrong password")
    if not row.enabled:
        raise SignInRefused("user disabled")
    return row


def note_sign_in(session: Session, user_id: str) -> None:
    """Record a successful sign-in (``last_sign_in_at``; ``updated_at`` is left as it was)."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(last_sign_in_at=utcnow(), updated_at=User.updated_at)
    )


def caller_of(user: User) -> Caller:
    """The caller a user is."""
    return Caller(token_id=None, scopes=tuple(user.scopes), user_id=user.id, username=user.username)


def caller_by_user(session: Session, user_id: str, generation: int) -> Caller:
    """The caller of a console session's user, checked again now; SignInRefused when the user
    is gone, disabled, or changed (new password, disabled) since ``generation``."""
    row = session.execute(
        select(User.id, User.username, User.scopes, User.enabled, User.generation).where(
            User.id == user_id
        )
    ).first()
    if row is None:
        raise SignInRefused("user gone")
    if not row.enabled:
        raise SignInRefused("user disabled")
    if row.generation != generation:
        raise SignInRefused("user changed")
    return Caller(token_id=None, scopes=tuple(row.scopes), user_id=row.id, username=row.username)


class SignInThrottle:
    """Counts sign-in attempts by password per user name and per client address in Redis.

    An attempt is counted before its password is checked, so parallel guesses cannot slip
    past the limit; a successful one is taken back (and forgives its name's failures).
    Without Redis nothing can be counted, so sign-in by password is refused (Unavailable).
    """

    def __init__(self, redis: Redis, *, limit: int = MAX_FAILURES, window: int = FAILURE_WINDOW):
        self.redis = redis
        self.limit = limit
        self.window = window

    def attempt(self, username: str, address: str) -> int:
        """Count an attempt; the seconds to wait when over the limit (then refuse it), else 0."""
        keys = self._keys(username, address)
        try:
            with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first
                    pipe.incr(key)
                    pipe.ttl(key)
                answers = pipe.execute()
        except RedisError as exc:
            raise _unavailable(exc) from None
        waits = [
            max(1, int(ttl))
            for count, ttl in zip(answers[1::3], answers[2::3], strict=True)
            if int(count) > self.limit
        ]
        return max(waits, default=0)

    def succeeded(self, username: str, address: str) -> None:
        """Take back a successful attempt: its name's failures are forgotten, its address's
        count loses this one attempt (a count whose window has ended is left alone)."""
        try:
            self.redis.eval(_TAKE_BACK, 2, *self._keys(username, address))
        except RedisError as exc:
            raise _unavailable(exc) from None

    def _keys(self, username: str, address: str) -> tuple[str, str]:
        def digest(text: str) -> str:
            return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]

        return (
            f"{THROTTLE_PREFIX}user:{digest(username.lower())}",
            f"{THROTTLE_PREFIX}addr:{digest(address)}",
        )


_TAKE_BACK = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
return 1
"""
"""Forget a name's failures; take one attempt back from an address's live count."""


def _unavailable(exc: RedisError) -> Unavailable:
    log.warning("sign-in by password refused, Redis unavailable: %s", exc)
    return Unavailable(UNAVAILABLE)


def _by_name(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username_key == username.lower())).first()


def _taken(username: str) -> Conflict:
    return Conflict(f"the user name {username!r} is taken", {"username": ["already taken"]})


def _scopes(scopes: Iterable[str]) -> list[str]:
    try:
        return check_scopes(scopes)
    except Invalid as refused:
        raise Invalid("invalid user", refused.errors) from None


def _display_name(name: str | None) -> str | None:
    name = (name or "").strip()
    if len(name) > DISPLAY_NAME_MAX or not storable(name):
        reason = f"at most {DISPLAY_NAME_MAX} characters of storable text"
        raise Invalid("invalid user", {"display_name": [reason]})
    return name or None


@cache
def _stand_in_hash() -> str:
    """A hash of a random password, checked for unknown user names so they take as long."""
    return generate_password_hash(secrets.token_urlsafe(24), method=HASH_METHOD)
