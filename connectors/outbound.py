"""The SSRF guard every outgoing request goes through.

INTERFACE STUB — to be implemented (see docstrings). Do not change the signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class OutboundPolicy:
    """What outgoing requests may reach and how long they may take."""

    allow_private: bool = False
    """Let requests reach loopback, private, link-local and metadata addresses."""
    allow_http: bool = True
    """Let requests use plain http:// (subscriptions turn this off by default)."""
    timeout: float = 15.0
    """Seconds for connect + read."""
    max_response_bytes: int = 1_048_576
    """A longer response body raises ResponseTooLarge."""
    max_redirects: int = 5
    """Redirects are followed by hand, each hop checked by the guard."""


@dataclass
class OutboundResponse:
    """What came back: status, headers (lower-case names), body bytes, final URL, timing."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    elapsed_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        raise NotImplementedError


def send_request(
    method: str,
    url: str,
    *,
    policy: OutboundPolicy,
    client: httpx.Client | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    content: bytes | None = None,
    json: Any = None,
    timeout: float | None = None,
) -> OutboundResponse:
    """Send one request through the guard and return the response (any status).

    Raises OutboundRefused, ConnectFailed or ResponseTooLarge; never raises for a status
    code (the caller decides: see ``raise_for_status``).
    """
    raise NotImplementedError


def raise_for_status(response: OutboundResponse) -> None:
    """Raise RemoteError for 5xx/429 (retryable) and ConnectorError for other 4xx."""
    raise NotImplementedError
