"""A ready ``curl`` command that calls an endpoint the way its auth rule wants: the
credentials in place, or the body signed now. Shown once, with the secret, when an endpoint
is made or its secret rotated. Imports no Flask."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import shlex
import time
from typing import Any

from ihook import signing

SAMPLE_BODY = {"type": "ihook.sample", "data": {"message": "hello from curl"}}
"""The body of the sample request."""
URL_VARIABLE = "$INGEST_URL"
"""Stands for the ingest URL when it is not known (the key is only shown once)."""


def sample_body() -> str:
    """The sample request's JSON body, compact (it is what gets signed)."""
    return json.dumps(SAMPLE_BODY, separators=(",", ":"))


def auth_headers(
    auth: dict[str, Any], secret: str | None, body: str, now: int | None = None
) -> tuple[list[str], str | None]:
    """The headers (``Name: value``) and ``-u`` credentials a request with ``body`` needs
    to pass ``auth`` with ``secret``; signatures are made at ``now`` (Unix seconds)."""
    kind = auth.get("type", "none")
    if kind == "none" or not secret:
        return [], None
    if kind == "basic":
        return [], f"{auth.get('username', '')}:{secret}"
    if kind == "bearer":
        return [f"Authorization: Bearer {secret}"], None
    if kind == "header":
        return [f"{auth['header']}: {secret}"], None
    scheme = auth.get("scheme")
    if scheme == "standard-webhooks":
        stamp = int(time.time()) if now is None else now
        msg_id = f"msg_{secrets.token_hex(8)}"
        signature = signing.sign(secret, msg_id, stamp, body.encode())
        return [
            f"webhook-id: {msg_id}",
            f"webhook-timestamp: {stamp}",
            f"webhook-signature: {signature}",
        ], None
    if scheme == "github":
        digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        return [f"X-Hub-Signature-256: sha256={digest}"], None
    algorithm = auth.get("algorithm", "sha256")
    raw = hmac.new(secret.encode(), body.encode(), signing.ALGORITHMS[algorithm]).digest()
    encoded = raw.hex() if auth.get("encoding", "hex") == "hex" else base64.b64encode(raw).decode()
    return [f"{auth['header']}: {auth.get('prefix', '')}{encoded}"], None


def curl_command(
    url: str | None, auth: dict[str, Any], secret: str | None, now: int | None = None
) -> str:
    """A shell-quoted ``curl`` that POSTs the sample body to ``url`` (or ``$INGEST_URL``)
    and passes ``auth``; one option per line."""
    body = sample_body()
    headers, user = auth_headers(auth, secret, body, now)
    target = shlex.quote(url) if url else f'"{URL_VARIABLE}"'
    parts = [f"curl -i -X POST {target}", "-H 'Content-Type: application/json'"]
    parts += [f"-H {shlex.quote(header)}" for header in headers]
    if user is not None:
        parts.append(f"-u {shlex.quote(user)}")
    parts.append(f"--data-raw {shlex.quote(body)}")
    return " \\\n  ".join(parts)


def signs_with_time(auth: dict[str, Any]) -> bool:
    """Whether the rule's signature holds a timestamp (so a ready command expires)."""
    return auth.get("type") == "hmac" and auth.get("scheme") == "standard-webhooks"
