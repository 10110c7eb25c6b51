"""Vault encryption with key rotation, tokens and header redaction."""

from __future__ import annotations

import hashlib
import re

import pytest

from ihook.secrets import (
    DECRYPTED_KEPT,
    REDACTED,
    SecretError,
    Vault,
    generate_token,
    hash_token,
    redact_headers,
)


def test_round_trip() -> None:
    vault = Vault(["a key of any shape"])
    token = vault.encrypt("p@ssw0rd ✓")
    assert "p@ssw0rd" not in token
    assert vault.decrypt(token) == "p@ssw0rd ✓"
    assert vault.encrypt("same") != vault.encrypt("same")


def test_rotation_old_token_decrypts_after_new_key_added() -> None:
    old = Vault(["old-key"])
    token = old.encrypt("hunter2")
    rotated = Vault(["new-key", "old-key"])
    assert rotated.decrypt(token) == "hunter2"
    fresh = rotated.encrypt("fresh")
    assert Vault(["new-key"]).decrypt(fresh) == "fresh"
    with pytest.raises(SecretError):
        old.decrypt(fresh)
    assert Vault(["new-key"]).decrypt(rotated.rotate(token)) == "hunter2"


def test_wrong_key_or_garbage() -> None:
    token = Vault(["k1"]).encrypt("x")
    with pytest.raises(SecretError):
        Vault(["k2"]).decrypt(token)
    for garbage in ("", "not a token", token[:-4] + "AAAA", "é"):
        with pytest.raises(SecretError):
            Vault(["k1"]).decrypt(garbage)


def test_decrypted_values_are_kept_by_token_and_bounded() -> None:
    vault = Vault(["k1"])
    tokens = [vault.encrypt(f"secret-{n}") for n in range(DECRYPTED_KEPT + 10)]
    for _ in range(2):  # the second time from what was kept, past the bound once
        assert [vault.decrypt(t) for t in tokens] == [f"secret-{n}" for n in range(len(tokens))]
    assert len(vault._decrypted) <= DECRYPTED_KEPT
    # What one vault kept never lets another, without the key, read the token.
    with pytest.raises(SecretError):
        Vault(["k2"]).decrypt(tokens[0])
    # A token tampered with is not the kept one: refused.
    with pytest.raises(SecretError):
        vault.decrypt(tokens[-1][:-4] + "AAAA")


def test_vault_needs_a_key() -> None:
    with pytest.raises(SecretError):
        Vault([])
    with pytest.raises(SecretError):
        Vault([""])


def test_tokens() -> None:
    token = generate_token("ihk_")
    assert re.fullmatch(r"ihk_[A-Za-z0-9_-]{32}", token)
    assert generate_token("ihk_") != token
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert hash_token(token) != hash_token(generate_token("ihk_"))


def test_redact_headers() -> None:
    headers = {
        "Authorization": "Bearer abc",
        "Proxy-Authorization": "Basic xyz",
        "Cookie": "s=1",
        "Set-Cookie": "s=2",
        "X-Api-Key": "k",
        "Api-Key": "k",
        "X-Auth-Token": "t",
        "Webhook-Signature": "v1,sig",
        "Svix-Signature": "v1,sig",
        "X-Hub-Signature": "sha1=00",
        "X-Hub-Signature-256": "sha256=00",
        "X-Client-Secret": "s",
        "X-Refresh-Token": "r",
        "X-Password": "p",
        "X-My-Key": "custom",
        "Content-Type": "application/json",
        "Webhook-Id": "msg_1",
        "User-Agent": "tests",
    }
    redacted = redact_headers(headers, extra=["x-my-key"])
    kept = {"content-type", "webhook-id", "user-agent"}
    assert set(redacted) == {name.lower() for name in headers}
    assert {name for name, value in redacted.items() if value == REDACTED} == set(redacted) - kept
    assert redacted["content-type"] == "application/json"
    assert redacted["webhook-id"] == "msg_1"
    assert redact_headers({"X-My-Key": "v"}) == {"x-my-key": "v"}
    assert redact_headers({"X-MY-KEY": "v"}, extra=["X-My-Key"]) == {"x-my-key": REDACTED}
