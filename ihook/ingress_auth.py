"""Checks one incoming webhook request against its endpoint's auth rule (pure: no Flask).

Rules: ``{"type": "none"}``, ``{"type": "basic", "username": ...}``, ``{"type": "bearer"}``,
``{"type": "header", "header": ...}`` and ``{"type": "hmac", "scheme": ...}`` with schemes
``standard-webhooks``, ``github`` and ``generic`` (``header``, ``algorithm``, ``encoding``,
``prefix``). ``secrets`` holds the current secret and any still-valid previous one: any
match passes. Comparisons are constant-time; failure reasons never include a secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets as random
from collections.abc import Mapping, Sequence

from ihook import signing

__all__ = [
    "AUTH_TYPES",
    "HMAC_SCHEMES",
    "AuthFailed",
    "check_ip",
    "new_secret",
    "secret_header_names",
    "verify_request",
]

AUTH_TYPES = ("none", "basic", "bearer", "header", "hmac")
"""The ``type`` values an endpoint's auth rule may have."""
HMAC_SCHEMES = ("standard-webhooks", "github", "generic")
"""The ``scheme`` values of an ``hmac`` rule."""


class AuthFailed(Exception):
    """Raised when a request does not pass its endpoint's auth rule; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _matches(candidates: Sequence[str], given: str) -> bool:
    # Compare against every secret, without stopping early, as bytes (str needs ASCII).
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(candidate.encode(), given.encode())
    return found


def _credentials(headers: Mapping[str, str], scheme: str) -> str:
    value = headers.get("authorization", "")
    given_scheme, _, credentials = value.partition(" ")
    if given_scheme.lower() != scheme or not credentials.strip():
        raise AuthFailed(f"missing {scheme} Authorization header")
    return credentials.strip()


def verify_request(
    auth: Mapping,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> None:
    """Pass quietly when the request satisfies ``auth``; raise AuthFailed otherwise."""
    kind = auth.get("type", "none")
    if kind == "none":
        return
    if kind not in AUTH_TYPES:
        raise AuthFailed(f"unknown auth type {kind!r}")
    valid = [s for s in secrets if s]
    if not valid:
        raise AuthFailed("no secret configured")
    found = {name.lower(): value for name, value in headers.items()}
    if kind == "basic":
        try:
            pair = base64.b64decode(_credentials(found, "basic"), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthFailed("malformed basic credentials") from None
        username, _, password = pair.partition(":")
        user_ok = hmac.compare_digest(username.encode(), str(auth.get("username", "")).encode())
        if not (_matches(valid, password) and user_ok):
            raise AuthFailed("wrong username or password")
    elif kind == "bearer":
        if not _matches(valid, _credentials(found, "bearer")):
            raise AuthFailed("wrong bearer token")
    elif kind == "header":
        name = str(auth.get("header", "")).lower()
        if not name or name not in found:
            raise AuthFailed(f"missing {auth.get('header') or 'auth'} header")
        if not _matches(valid, found[name]):
            raise AuthFailed(f"wrong {auth['header']} value")
    else:
        _verify_hmac(auth, valid, found, body, now)


def _verify_hmac(
    auth: Mapping,
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    now: float | None,
) -> None:
    scheme = auth.get("scheme", "standard-webhooks")
    try:
        if scheme == "standard-webhooks":
            signing.verify(secrets, headers, body, now=now)
            return
        if scheme not in HMAC_SCHEMES:
            raise AuthFailed(f"unknown hmac scheme {scheme!r}")
        reason = "no matching signature"
        for secret in secrets:
            try:
                if scheme == "github":
                    signing.verify_github(secret, headers, body)
                else:
                    signing.verify_generic(
                        secret,
                        headers,
                        body,
                        header=auth.get("header", "X-Signature"),
                        algorithm=auth.get("algorithm", "sha256"),
                        encoding=auth.get("encoding", "hex"),
                        prefix=auth.get("prefix", ""),
                    )
                return
            except signing.SignatureError as exc:
                reason = exc.reason
        raise AuthFailed(reason)
    except signing.SignatureError as exc:
        raise AuthFailed(exc.reason) from None


def check_ip(allow_ips: Sequence[str], remote_addr: str) -> bool:
    """True when ``remote_addr`` is inside one of ``allow_ips`` (empty: everyone is allowed)."""
    if not allow_ips:
        return True
    try:
        address = ipaddress.ip_address(remote_addr.strip().split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers this way
    for entry in allow_ips:
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue  # an invalid entry matches nothing
    return False


def new_secret(auth: Mapping) -> str:
    """A fresh secret for ``auth``: ``whsec_…`` for Standard Webhooks, a random token else."""
    if auth.get("type", "none") == "none":
        return ""
    if (
        auth.get("type") == "hmac"
        and auth.get("scheme", "standard-webhooks") == "standard-webhooks"
    ):
        return signing.generate_secret()
    return random.token_urlsafe(32)


def secret_header_names(auth: Mapping) -> list[str]:
    """Lower-case names of the request headers that carry ``auth``'s secret or signature."""
    kind = auth.get("type", "none")
    if kind in ("basic", "bearer"):
        return ["authorization"]
    if kind == "header":
        return [str(auth.get("header", "")).lower()] if auth.get("header") else []
    if kind == "hmac":
        scheme = auth.get("scheme", "standard-webhooks")
        if scheme == "standard-webhooks":
            return ["webhook-signature", "svix-signature"]
        if scheme == "github":
            return ["x-hub-signature-256", "x-hub-signature"]
        return [str(auth.get("header", "X-Signature")).lower()]
    return []
