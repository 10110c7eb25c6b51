"""Errors raised by connectors.

    ConnectorError                 any failure of a connector
    ├── ConfigError                the connector's config is invalid
    ├── OutboundRefused            the SSRF guard refused the target (not retryable)
    ├── ResponseTooLarge           the far end sent more than the cap (not retryable)
    ├── RecordError                a records / sql write or read failed (not retryable)
    └── TransientError             worth retrying: the run is retried with backoff
        ├── ConnectFailed          DNS, refused, reset, TLS or timeout talking to the far end
        └── RemoteError            the far end answered 5xx or 429 (``status`` set)

Errors carry their context (``url``, ``status``) so the run log can name the cause.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Raised when a connector cannot do what a step asked."""

    retryable = False

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status


class ConfigError(ConnectorError):
    """Raised when a connector's configuration does not load."""


class OutboundRefused(ConnectorError):
    """Raised when the outbound guard refuses a URL (scheme, private address, redirect)."""


class ResponseTooLarge(ConnectorError):
    """Raised when a response body exceeds the configured cap."""


class RecordError(ConnectorError):
    """Raised when a record store operation fails (bad key, missing field)."""


class TransientError(ConnectorError):
    """Raised for failures that may succeed later; the run is retried."""

    retryable = True


class ConnectFailed(TransientError):
    """Raised when the far end cannot be reached in time (DNS, refused, reset, timeout)."""


class RemoteError(TransientError):
    """Raised when the far end answers 5xx or 429."""
