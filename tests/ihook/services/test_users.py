"""Users without the app: names, password rules and hashes, scopes, disabling, sessions'
generations, and the throttle of failed sign-ins against a real Redis."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from ihook.errors import Conflict, Invalid, NotFound, Unavailable
from ihook.models import User
from ihook.services import users as service
from tests.conftest import SWEEP
from tests.support import free_port

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
"""For what storage does: unique names whatever their case, hashes, generations, times."""

PASSWORD = "plum-harbour-vivid-71"
"""A password good enough for the rules; the log sweep checks no log holds it."""
SWEEP.constants += (PASSWORD,)


@pytest.fixture
def db(platform):
    return platform.db


def refused_field(call, *args, **kwargs) -> dict:
    """The fields an Invalid names, for a call that must be refused."""
    with pytest.raises(Invalid) as caught:
        call(*args, **kwargs)
    assert caught.value.message == "invalid user"
    return caught.value.errors


@both_backends
def test_a_user_is_stored_with_a_salted_slow_hash_and_checked(db):
    with db.session() as session:
        made = service.create_user(session, "Alice", PASSWORD, ["read", "write"], " Alice A. ")
        other = service.create_user(session, "bob", PASSWORD)
    assert made.password_hash.startswith("scrypt:") and PASSWORD not in made.password_hash
    assert other.password_hash != made.password_hash  # salted
    assert (made.username, made.display_name, made.scopes) == (
        "Alice",
        "Alice A.",
        ["read", "write"],
    )
    assert other.scopes == ["read"] and other.display_name is None and other.enabled
    with db.read() as session:
        assert service.verify_password(session, "alice", PASSWORD).id == made.id
        assert service.verify_password(session, "ALICE", PASSWORD).id == made.id
        assert service.find_user(session, "aLiCe").id == made.id
        for name, password in [
            ("alice", PASSWORD + "x"),
            ("carol", PASSWORD),
            ("", ""),
            ("a\0", "x"),
        ]:
            with pytest.raises(service.SignInRefused) as caught:
                service.verify_password(session, name, password)
            assert caught.value.reason == "wrong password"  # one answer for both
        assert [u.username for u in service.list_users(session)] == ["Alice", "bob"]


@both_backends
def test_names_are_unique_whatever_their_case_and_keep_to_the_rule(db):
    with db.session() as session:
        service.create_user(session, "ops.team@example", PASSWORD)
    for name in ("OPS.TEAM@EXAMPLE", "ops.team@example"):
        with pytest.raises(Conflict), db.session() as session:
            service.create_user(session, name, PASSWORD)
    for name in ("", " alice", "al ice", "_alice", "a" * 65, "ålice", "аdmin", "a\0b"):
        with db.session() as session:
            assert "username" in refused_field(service.create_user, session, name, PASSWORD)
    with db.session() as session:
        assert service.create_user(session, "a" * 64, PASSWORD).username_key == "a" * 64
        assert len(service.list_users(session)) == 2


def test_passwords_keep_to_the_rules(db):
    with db.session() as session:
        for password in (
            "short-pw",
            "x" * 11,
            "x" * 1025,
            "Carol-Smith1",
            "carol-smith1 ",
            "ab\0" * 5,
        ):
            errors = refused_field(service.create_user, session, "carol-smith1", password)
            assert set(errors) == {"password"}, password
        made = service.create_user(session, "carol-smith1", "x" * 12)
        errors = refused_field(service.update_user, session, made.id, {"password": "CAROL-SMITH1"})
        assert errors == {"password": ["must not be the user name"]}


def test_scopes_are_those_of_tokens(db):
    with db.session() as session:
        assert refused_field(service.create_user, session, "dan", PASSWORD, ["root"])["scopes"]
        assert refused_field(service.create_user, session, "dan", PASSWORD, [])["scopes"]
        made = service.create_user(session, "dan", PASSWORD, ["read", "read", "admin"])
        assert made.scopes == ["read", "admin"]
        assert refused_field(service.update_user, session, made.id, {"scopes": ["all"]})
        assert refused_field(service.update_user, session, made.id, {"username": "eve"}) == {
            "username": ["cannot be changed"]
        }
        changed = service.update_user(session, made.id, {"scopes": ["publish"], "display_name": ""})
        assert changed.scopes == ["publish"] and changed.display_name is None
        caller = service.caller_of(changed)
        assert caller.user_id == made.id and caller.username == "dan"
        assert caller.allows("publish") and not caller.allows("read")


@both_backends
def test_a_new_password_disabling_or_deleting_ends_sessions(db):
    with db.session() as session:
        made = service.create_user(session, "erin", PASSWORD, ["write"])
    first = made.generation

    def session_of(generation: int) -> str:
        try:
            with db.read() as session:
                caller = service.caller_by_user(session, made.id, generation)
        except service.SignInRefused as refused:
            return refused.reason
        assert caller.scopes == ("write",) and caller.token_id is None
        return "ok"

    assert session_of(first) == "ok"
    with db.session() as session:
        service.update_user(session, made.id, {"display_name": "Erin", "scopes": ["write"]})
    assert session_of(first) == "ok"  # other changes keep sessions
    with db.session() as session:
        changed = service.update_user(session, made.id, {"password": "a-new-password-2"})
    assert changed.generation == first + 1 and changed.password_changed_at > made.created_at
    assert session_of(first) == "user changed" and session_of(first + 1) == "ok"
    with db.read() as session:
        with pytest.raises(service.SignInRefused):
            service.verify_password(session, "erin", PASSWORD)
        assert service.verify_password(session, "erin", "a-new-password-2").id == made.id
    with db.session() as session:
        service.update_user(session, made.id, {"enabled": False})
    assert session_of(first + 1) == "user disabled"
    with db.read() as session, pytest.raises(service.SignInRefused) as caught:
        service.verify_password(session, "erin", "a-new-password-2")
    assert caught.value.reason == "user disabled"  # told only with the right password
    with db.session() as session:
        service.update_user(session, made.id, {"enabled": True})
    assert session_of(first + 1) == "user changed"  # enabling again brings none back
    with db.session() as session:
        service.delete_user(session, made.id)
        with pytest.raises(NotFound):
            service.delete_user(session, made.id)
    assert session_of(first + 2) == "user gone"


@both_backends
def test_a_sign_in_is_noted_without_touching_updated_at(db):
    with db.session() as session:
        made = service.create_user(session, "fay", PASSWORD)
    assert made.last_sign_in_at is None
    with db.session() as session:
        service.note_sign_in(session, made.id)
    with db.read() as session:
        row = session.get(User, made.id)
        assert row.last_sign_in_at is not None and row.updated_at == made.updated_at


def test_an_unknown_name_costs_a_hash_like_a_wrong_password(db):
    with db.session() as session:
        service.create_user(session, "gus", PASSWORD)

    def cost(name: str) -> float:
        started = time.perf_counter()
        with db.read() as session, pytest.raises(service.SignInRefused):
            service.verify_password(session, name, "not-the-password")
        return time.perf_counter() - started

    cost("nobody")  # the stand-in hash is made once, on first use
    unknown = min(cost("nobody") for _ in range(3))
    wrong = min(cost("gus") for _ in range(3))
    assert unknown > wrong / 2, (unknown, wrong)


def test_the_throttle_counts_per_name_and_per_address(redis_url):
    throttle = service.SignInThrottle(Redis.from_url(redis_url), limit=5, window=900)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"):
        assert throttle.attempt("Hal", address) == 0
    assert 890 < throttle.attempt("hal", "10.0.0.6") <= 900  # names match whatever their case
    for name in ("ida", "jon", "kim", "lou", "max"):
        assert throttle.attempt(name, "10.9.9.9") == 0
    assert throttle.attempt("ned", "10.9.9.9") > 0
    assert throttle.attempt("ned", "10.0.0.7") == 0


def test_a_success_forgives_its_names_failures(redis_url):
    throttle = service.SignInThrottle(Redis.from_url(redis_url), limit=5, window=900)
    for n in range(4):
        assert throttle.attempt("olga", f"10.1.0.{n}") == 0
    assert throttle.attempt("olga", "10.2.0.1") == 0
    throttle.succeeded("olga", "10.2.0.1")
    for n in range(5):
        assert throttle.attempt("olga", f"10.3.0.{n}") == 0
    assert throttle.attempt("olga", "10.4.0.1") > 0


def test_without_redis_the_throttle_refuses():
    throttle = service.SignInThrottle(Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(Unavailable):
        throttle.attempt("pia", "10.0.0.1")
    with pytest.raises(Unavailable):
        throttle.succeeded("pia", "10.0.0.1")
