"""Standard Webhooks, GitHub and generic signatures, checked against the reference package."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from ihook.signing import (
    SignatureError,
    check_secret,
    generate_secret,
    sign,
    verify,
    verify_generic,
    verify_github,
)

NOW = 1_700_000_000
BODY = b'{"type":"order.created","data":{"id":1}}'


def _headers(secret: str, *, ts: int = NOW, body: bytes = BODY, msg_id: str = "msg_1") -> dict:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def test_generated_secret_shape() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 24
    assert generate_secret() != secret


def test_theirs_verified_by_ours() -> None:
    secret = generate_secret()
    when = datetime.fromtimestamp(NOW, tz=UTC)
    signature = Webhook(secret).sign("msg_abc", when, BODY.decode())
    headers = {
        "Webhook-Id": "msg_abc",
        "Webhook-Timestamp": str(NOW),
        "Webhook-Signature": signature,
    }
    verify([secret], headers, BODY, now=NOW)


def test_ours_verified_by_theirs() -> None:
    secret = generate_secret()
    now = int(datetime.now(tz=UTC).timestamp())
    headers = _headers(secret, ts=now)
    assert Webhook(secret).verify(BODY, headers) == {"type": "order.created", "data": {"id": 1}}
    when = datetime.fromtimestamp(now, tz=UTC)
    assert headers["webhook-signature"] == Webhook(secret).sign("msg_1", when, BODY.decode())


def test_secret_without_prefix() -> None:
    secret = generate_secret()
    bare = secret.removeprefix("whsec_")
    assert sign(bare, "m", NOW, BODY) == sign(secret, "m", NOW, BODY)
    verify([bare], _headers(secret), BODY, now=NOW)


def test_tampered_body_refused() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match="no matching"):
        verify([secret], _headers(secret), BODY + b" ", now=NOW)


def test_text_that_is_not_ascii_is_a_refusal_not_a_crash() -> None:
    secret = generate_secret()
    headers = {**_headers(secret), "webhook-signature": "v1,caf\u00e9 v1,\u00ff\u00fe"}
    with pytest.raises(SignatureError, match="no matching"):
        verify([secret], headers, BODY, now=NOW)
    with pytest.raises(SignatureError, match="not valid base64"):
        check_secret("whsec_caf\u00e9caf\u00e9caf\u00e9caf\u00e9caf\u00e9")


def test_wrong_secret_refused() -> None:
    with pytest.raises(SignatureError, match="no matching"):
        verify([generate_secret()], _headers(generate_secret()), BODY, now=NOW)


def test_tampered_id_refused() -> None:
    secret = generate_secret()
    headers = _headers(secret) | {"webhook-id": "msg_2"}
    with pytest.raises(SignatureError):
        verify([secret], headers, BODY, now=NOW)


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_within_tolerance(offset: int) -> None:
    secret = generate_secret()
    verify([secret], _headers(secret, ts=NOW + offset), BODY, now=NOW)


@pytest.mark.parametrize(("offset", "reason"), [(-301, "too old"), (301, "too new")])
def test_timestamp_outside_tolerance(offset: int, reason: str) -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match=reason):
        verify([secret], _headers(secret, ts=NOW + offset), BODY, now=NOW)


def test_uses_clock_when_now_not_given() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match="too old"):
        verify([secret], _headers(secret, ts=NOW), BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers(missing: str) -> None:
    secret = generate_secret()
    headers = _headers(secret)
    del headers[missing]
    with pytest.raises(SignatureError, match="missing"):
        verify([secret], headers, BODY, now=NOW)


def test_bad_timestamp() -> None:
    secret = generate_secret()
    with pytest.raises(SignatureError, match="invalid"):
        verify([secret], _headers(secret) | {"webhook-timestamp": "soon"}, BODY, now=NOW)


def test_several_signatures_in_one_header() -> None:
    old, new = generate_secret(), generate_secret()
    both = f"v1,bm90IGJhc2U2NA== {sign(old, 'm', NOW, BODY)} v2,xyz {sign(new, 'm', NOW, BODY)}"
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": both}
    verify([new], headers, BODY, now=NOW)
    verify([old], headers, BODY, now=NOW)
    with pytest.raises(SignatureError):
        verify([generate_secret()], headers, BODY, now=NOW)


def test_several_signatures_from_the_reference_package() -> None:
    old, new = generate_secret(), generate_secret()
    when = datetime.fromtimestamp(NOW, tz=UTC)
    signatures = " ".join(Webhook(s).sign("m", when, BODY.decode()) for s in (old, new))
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": signatures}
    verify([new], headers, BODY, now=NOW)
    verify([old], headers, BODY, now=NOW)


def test_rotation_with_two_secrets() -> None:
    previous, current = generate_secret(), generate_secret()
    verify([current, previous], _headers(previous), BODY, now=NOW)
    verify([current, previous], _headers(current), BODY, now=NOW)
    with pytest.raises(SignatureError):
        verify([current], _headers(previous), BODY, now=NOW)


def test_svix_header_aliases() -> None:
    secret = generate_secret()
    headers = {f"Svix-{k.split('-')[1].title()}": v for k, v in _headers(secret).items()}
    assert set(headers) == {"Svix-Id", "Svix-Timestamp", "Svix-Signature"}
    verify([secret], headers, BODY, now=NOW)


def test_github() -> None:
    secret = "It's a Secret to Everybody"
    body = b"Hello, World!"
    # The example from GitHub's documentation.
    expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify_github(secret, {"x-hub-signature-256": f"sha256={expected}"}, body)
    verify_github(secret, {"X-Hub-Signature-256": f"sha256={expected.upper()}"}, body)
    with pytest.raises(SignatureError):
        verify_github(secret, {"X-Hub-Signature-256": f"sha256={expected}"}, body + b"!")
    with pytest.raises(SignatureError):
        verify_github("other", {"X-Hub-Signature-256": f"sha256={expected}"}, body)
    with pytest.raises(SignatureError, match="missing"):
        verify_github(secret, {}, body)
    with pytest.raises(SignatureError):
        verify_github(secret, {"X-Hub-Signature-256": expected}, body)


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_generic(algorithm: str, encoding: str) -> None:
    digest = hmac.new(b"s3cret", BODY, getattr(hashlib, algorithm)).digest()
    value = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    options = {"header": "X-Signature", "algorithm": algorithm, "encoding": encoding}
    verify_generic("s3cret", {"x-signature": value}, BODY, **options)
    verify_generic("s3cret", {"X-Signature": "v=" + value}, BODY, prefix="v=", **options)
    with pytest.raises(SignatureError):
        verify_generic("wrong", {"X-Signature": value}, BODY, **options)
    with pytest.raises(SignatureError):
        verify_generic("s3cret", {"X-Signature": value}, BODY + b"x", **options)
    with pytest.raises(SignatureError):
        verify_generic("s3cret", {"X-Signature": value}, BODY, prefix="v=", **options)


def test_generic_rejects_unknown_algorithm() -> None:
    with pytest.raises(SignatureError, match="unsupported"):
        verify_generic("s", {"X-Sig": "00"}, BODY, header="X-Sig", algorithm="md5")
