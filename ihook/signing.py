"""Webhook signatures: Standard Webhooks sign/verify, plus GitHub and generic HMAC checks.

Standard Webhooks (https://www.standardwebhooks.com): the signed content is
``f"{webhook-id}.{webhook-timestamp}.{body}"``, HMAC-SHA256 keyed by the base64 part of a
``whsec_`` secret; ``webhook-signature`` holds one or more space-separated ``v1,<base64>``.
The ``svix-*`` header names are accepted too. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from secrets import token_bytes

__all__ = ["SignatureError", "generate_secret", "sign", "verify", "verify_generic", "verify_github"]

SECRET_PREFIX = "whsec_"
"""Prefix of a Standard Webhooks secret; the rest is base64."""
SECRET_BYTES = 24
"""Random bytes in a generated secret."""
TOLERANCE_SECONDS = 300
"""How far a ``webhook-timestamp`` may be from now, either way."""
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
"""Digests ``verify_generic`` accepts."""


class SignatureError(Exception):
    """Raised when a request's signature does not verify; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


MIN_SECRET_BYTES = 16
"""Shortest HMAC key accepted from a user (generated ones have 24 bytes)."""


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> None:
    """Raise SignatureError unless ``secret`` is usable: (``whsec_``) base64 of ≥ 16 bytes."""
    if len(_key(secret)) < MIN_SECRET_BYTES:
        raise SignatureError(f"secret must decode to at least {MIN_SECRET_BYTES} bytes")


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise SignatureError("secret is not valid base64") from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for one message."""
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a Standard Webhooks request; any of ``secrets`` (rotation) may have signed it."""
    found = _lower(headers)
    msg_id = found.get("webhook-id") or found.get("svix-id")
    stamp = found.get("webhook-timestamp") or found.get("svix-timestamp")
    header = found.get("webhook-signature") or found.get("svix-signature")
    if not (msg_id and stamp and header):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError("invalid webhook-timestamp") from None
    current = time.time() if now is None else now
    if current - timestamp > tolerance:
        raise SignatureError("webhook-timestamp too old")
    if timestamp - current > tolerance:
        raise SignatureError("webhook-timestamp too new")
    given = []
    for entry in header.split():
        version, _, value = entry.partition(",")
        if version == "v1":
            try:
                given.append(base64.b64decode(value, validate=True))
            except ValueError:  # binascii.Error, or text that is not ASCII
                continue
    for secret in secrets:
        expected = base64.b64decode(sign(secret, msg_id, timestamp, body)[3:])
        if any(hmac.compare_digest(expected, sig) for sig in given):
            return
    raise SignatureError("no matching signature")


def verify_generic(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    header: str,
    algorithm: str = "sha256",
    encoding: str = "hex",
    prefix: str = "",
) -> None:
    """Check ``header`` = ``prefix`` + HMAC(secret, body) in hex or base64."""
    if algorithm not in ALGORITHMS or encoding not in ("hex", "base64"):
        raise SignatureError(f"unsupported algorithm or encoding: {algorithm}/{encoding}")
    value = _lower(headers).get(header.lower())
    if not value:
        raise SignatureError(f"missing {header} header")
    if not value.startswith(prefix):
        raise SignatureError(f"{header} does not start with {prefix!r}")
    given = value[len(prefix) :].strip()
    digest = hmac.new(secret.encode(), body, ALGORITHMS[algorithm]).digest()
    expected = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    if encoding == "hex":
        given = given.lower()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError("no matching signature")


def verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Check GitHub's ``X-Hub-Signature-256: sha256=<hex>``."""
    verify_generic(secret, headers, body, header="X-Hub-Signature-256", prefix="sha256=")
