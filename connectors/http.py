"""The ``http`` connector: a base URL, auth and headers, every request through the guard."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any

import httpx
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.errors import ConnectorError
from connectors.outbound import OutboundPolicy, raise_for_status, send_request
from connectors.registry import register_connector

DEFAULT_TIMEOUT = 15.0
"""Seconds for connect + read when the config does not say."""

_UNKEPT = {"set-cookie", "set-cookie2"}
"""Response headers left out of a step's output: they carry the far end's session secrets."""

AUTH_TYPES = ("none", "basic", "bearer", "header")
"""The auth schemes a connector can send."""

_AUTH_NEEDS = {
    "basic": ("username", "password"),
    "bearer": ("token",),
    "header": ("header", "value"),
}


class AuthConfig(Schema):
    """How the connector authenticates; secrets are accepted but never dumped."""

    type = fields.String(load_default="none", validate=validate.OneOf(AUTH_TYPES))
    username = fields.String()
    password = fields.String(load_only=True)
    token = fields.String(load_only=True)
    header = fields.String()
    value = fields.String(load_only=True)

    @validates_schema
    def _needs(self, data: dict[str, Any], **_: Any) -> None:
        missing = [name for name in _AUTH_NEEDS.get(data["type"], ()) if not data.get(name)]
        if missing:
            raise ValidationError(
                {name: [f"Required for {data['type']} auth."] for name in missing}
            )


class HttpConfig(Schema):
    """Config of an ``http`` connector."""

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    auth = fields.Nested(AuthConfig, load_default=lambda: {"type": "none"})
    headers = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=dict,
        load_only=True,  # custom headers often carry keys: write-only, as the auth secrets
    )
    timeout = fields.Float(
        load_default=DEFAULT_TIMEOUT, validate=validate.Range(min=0, max=300, min_inclusive=False)
    )
    allow_private = fields.Boolean(load_default=False)


def auth_headers(auth: Mapping[str, Any]) -> dict[str, str]:
    """The request headers that carry ``auth``."""
    kind = auth.get("type", "none")
    if kind == "basic":
        pair = f"{auth['username']}:{auth['password']}".encode()
        return {"authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if kind == "bearer":
        return {"authorization": f"Bearer {auth['token']}"}
    if kind == "header":
        return {auth["header"]: auth["value"]}
    return {}


@register_connector
class HttpConnector:
    """Requests relative to a base URL, with the connector's auth and headers."""

    kind = "http"
    Config = HttpConfig

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        policy: OutboundPolicy,
        client: httpx.Client | None = None,
    ):
        self.base_url: str = config["base_url"]
        self.timeout: float = config.get("timeout", DEFAULT_TIMEOUT)
        self.headers = {**config.get("headers", {}), **auth_headers(config.get("auth", {}))}
        # The connector may reach private addresses if either the install or it allows so.
        self.policy = dataclasses.replace(
            policy, allow_private=policy.allow_private or bool(config.get("allow_private"))
        )
        # Without a client of our own the guard's pooled transport is used: it keeps no
        # cookies and ignores proxy variables, which a fresh httpx.Client would not.
        self._client = client

    def url_for(self, path: str) -> str:
        """``path`` joined to the base URL; absolute URLs are refused (credentials would leak)."""
        if not path:
            return self.base_url
        if "://" in path.split("?", 1)[0] or path.startswith("//"):
            raise ConnectorError(f"path must be relative to the connector's base URL: {path!r}")
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> dict[str, Any]:
        """Send one request; return status, headers, body (JSON or text), url, elapsed_ms."""
        response = send_request(
            method.upper(),
            self.url_for(path),
            policy=self.policy,
            client=self._client,
            headers={**self.headers, **(headers or {})},
            params=dict(params) if params else None,
            content=content,
            json=json,
            timeout=self.timeout,
        )
        raise_for_status(response)
        body = response.json()
        if body is None:
            body = response.body.decode("utf-8", errors="replace")
        return {
            "status": response.status,
            "headers": {
                name: value for name, value in response.headers.items() if name not in _UNKEPT
            },
            "body": body,
            "url": response.url,
            "elapsed_ms": response.elapsed_ms,
        }

    def close(self) -> None:
        """Nothing to release: the client belongs to the caller or to the guard."""
