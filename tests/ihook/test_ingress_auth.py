"""Every ingress auth type, pass and fail, with rotation; IP allow-lists; secret helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from standardwebhooks.webhooks import Webhook

from ihook.ingress_auth import (
    AUTH_TYPES,
    HMAC_SCHEMES,
    AuthFailed,
    check_ip,
    new_secret,
    secret_header_names,
    verify_request,
)
from ihook.signing import generate_secret, sign

BODY = b'{"hello":"world"}'
NOW = 1_700_000_000


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _fails(auth: dict, secrets: list[str], headers: dict[str, str], body: bytes = BODY) -> str:
    with pytest.raises(AuthFailed) as info:
        verify_request(auth, secrets, headers, body, now=NOW)
    for secret in filter(None, secrets):
        assert secret not in info.value.reason
    return info.value.reason


def test_constants() -> None:
    assert AUTH_TYPES == ("none", "basic", "bearer", "header", "hmac")
    assert HMAC_SCHEMES == ("standard-webhooks", "github", "generic")


def test_none() -> None:
    verify_request({"type": "none"}, [], {}, BODY)


def test_basic() -> None:
    auth = {"type": "basic", "username": "shop"}
    verify_request(auth, ["pa:ss"], _basic("shop", "pa:ss"), BODY)
    verify_request(auth, ["new", "old"], _basic("shop", "old"), BODY)
    verify_request(auth, ["pw"], {"authorization": _basic("shop", "pw")["Authorization"]}, BODY)
    _fails(auth, ["pw"], _basic("shop", "nope"))
    _fails(auth, ["pw"], _basic("other", "pw"))
    _fails(auth, ["pw"], {})
    _fails(auth, ["pw"], {"Authorization": "Bearer pw"})
    assert "malformed" in _fails(auth, ["pw"], {"Authorization": "Basic ***"})


def test_bearer() -> None:
    auth = {"type": "bearer"}
    verify_request(auth, ["tok-0123456789"], {"Authorization": "Bearer tok-0123456789"}, BODY)
    verify_request(auth, ["tok-0123456789"], {"authorization": "bearer tok-0123456789"}, BODY)
    verify_request(
        auth, ["new-0123456789", "old-0123456789"], {"Authorization": "Bearer old-0123456789"}, BODY
    )
    _fails(auth, ["tok-0123456789"], {"Authorization": "Bearer tok2"})
    _fails(auth, ["tok-0123456789"], {"Authorization": "Bearer "})
    _fails(auth, ["tok-0123456789"], {"Authorization": "tok-0123456789"})
    _fails(auth, ["tok-0123456789"], {"Authorization": "Bearer ✓"})
    _fails(auth, ["new-0123456789"], {"Authorization": "Bearer old-0123456789"})


def test_header() -> None:
    auth = {"type": "header", "header": "X-Api-Key"}
    verify_request(auth, ["k1"], {"x-api-key": "k1"}, BODY)
    verify_request(auth, ["k2", "k1"], {"X-API-KEY": "k1"}, BODY)
    _fails(auth, ["k1"], {"X-Api-Key": "k2"})
    assert "missing" in _fails(auth, ["k1"], {"X-Other": "k1"})
    _fails(auth, ["k1"], {"X-Api-Key": ""})


def test_no_secret_configured_fails() -> None:
    for auth in ({"type": "bearer"}, {"type": "header", "header": "X-K"}):
        assert "no secret" in _fails(auth, [], {"Authorization": "Bearer ", "X-K": ""})
        _fails(auth, [""], {"Authorization": "Bearer ", "X-K": ""})


def test_unknown_type_and_scheme_fail() -> None:
    _fails({"type": "magic"}, ["s3cret-value"], {})
    _fails({"type": "hmac", "scheme": "magic"}, ["s3cret-value"], {})


def _standard_headers(secret: str, ts: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, "msg_1", ts, body),
    }


def test_hmac_standard_webhooks() -> None:
    auth = {"type": "hmac", "scheme": "standard-webhooks"}
    old, new = generate_secret(), generate_secret()
    verify_request(auth, [new], _standard_headers(new), BODY, now=NOW)
    verify_request(auth, [new, old], _standard_headers(old), BODY, now=NOW)
    _fails(auth, [new], _standard_headers(old))
    _fails(auth, [new], _standard_headers(new), BODY + b"x")
    assert "too old" in _fails(auth, [new], _standard_headers(new, ts=NOW - 301))
    assert "missing" in _fails(auth, [new], {})


def test_hmac_standard_webhooks_signed_by_reference_package() -> None:
    from datetime import UTC, datetime

    secret = generate_secret()
    when = datetime.fromtimestamp(NOW, tz=UTC)
    headers = {
        "Webhook-Id": "evt_9",
        "Webhook-Timestamp": str(NOW),
        "Webhook-Signature": Webhook(secret).sign("evt_9", when, BODY.decode()),
    }
    verify_request(
        {"type": "hmac", "scheme": "standard-webhooks"}, [secret], headers, BODY, now=NOW
    )


def test_hmac_github() -> None:
    auth = {"type": "hmac", "scheme": "github"}

    def signed(secret: str) -> dict[str, str]:
        digest = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": "sha256=" + digest}

    verify_request(auth, ["gh"], signed("gh"), BODY)
    verify_request(auth, ["new", "old"], signed("old"), BODY)
    _fails(auth, ["gh"], signed("other"))
    _fails(auth, ["gh"], signed("gh"), BODY + b"x")
    assert "missing" in _fails(auth, ["gh"], {})


@pytest.mark.parametrize(
    ("algorithm", "encoding", "prefix"),
    [("sha256", "hex", ""), ("sha1", "base64", "sha1="), ("sha512", "hex", "v1=")],
)
def test_hmac_generic(algorithm: str, encoding: str, prefix: str) -> None:
    auth = {
        "type": "hmac",
        "scheme": "generic",
        "header": "X-Signature",
        "algorithm": algorithm,
        "encoding": encoding,
        "prefix": prefix,
    }

    def signed(secret: str, body: bytes = BODY) -> dict[str, str]:
        digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).digest()
        value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
        return {"x-signature": prefix + value}

    verify_request(auth, ["g-secret-1234"], signed("g-secret-1234"), BODY)
    verify_request(auth, ["g2-secret-1234", "g-secret-1234"], signed("g-secret-1234"), BODY)
    _fails(auth, ["g-secret-1234"], signed("h-secret-1234"))
    _fails(auth, ["g-secret-1234"], signed("g-secret-1234", b"other"))
    _fails(auth, ["g-secret-1234"], {"X-Other": "x"})


@pytest.mark.parametrize(
    ("allow", "remote", "expected"),
    [
        ([], "203.0.113.9", True),
        (["203.0.113.0/24"], "203.0.113.9", True),
        (["203.0.113.0/24"], "203.0.114.9", False),
        (["198.51.100.7"], "198.51.100.7", True),
        (["198.51.100.7"], "198.51.100.8", False),
        (["10.0.0.0/8", "2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "2001:db9::1", False),
        (["2001:db8::1"], "2001:db8::1", True),
        (["203.0.113.0/24"], "::ffff:203.0.113.9", True),
        (["203.0.113.0/24"], "2001:db8::1", False),
        (["not-an-ip", "203.0.113.0/24"], "203.0.113.1", True),
        (["203.0.113.0/24"], "garbage", False),
        (["203.0.113.5/24"], "203.0.113.9", True),
    ],
)
def test_check_ip(allow: list[str], remote: str, expected: bool) -> None:
    assert check_ip(allow, remote) is expected


def test_new_secret() -> None:
    assert new_secret({"type": "none"}) == ""
    whsec = new_secret({"type": "hmac", "scheme": "standard-webhooks"})
    assert whsec.startswith("whsec_") and len(base64.b64decode(whsec[6:])) == 24
    for auth in (
        {"type": "bearer"},
        {"type": "basic", "username": "u"},
        {"type": "header", "header": "X-K"},
        {"type": "hmac", "scheme": "github"},
    ):
        token = new_secret(auth)
        assert len(token) >= 32 and not token.startswith("whsec_")
        assert new_secret(auth) != token


def test_secret_header_names() -> None:
    assert secret_header_names({"type": "none"}) == []
    assert secret_header_names({"type": "bearer"}) == ["authorization"]
    assert secret_header_names({"type": "basic", "username": "u"}) == ["authorization"]
    assert secret_header_names({"type": "header", "header": "X-Api-Key"}) == ["x-api-key"]
    assert "webhook-signature" in secret_header_names({"type": "hmac"})
    assert "x-hub-signature-256" in secret_header_names({"type": "hmac", "scheme": "github"})
    generic = {"type": "hmac", "scheme": "generic", "header": "X-Sig"}
    assert secret_header_names(generic) == ["x-sig"]
