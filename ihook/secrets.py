"""Secrets at rest and in logs: encrypt/decrypt with rotating keys, API tokens, redaction.

``Vault`` derives one Fernet key from each configured key string (``IHOOK_SECRET_KEY``,
comma-separated during rotation): the first encrypts, all decrypt. API tokens are stored
only as their SHA-256. ``redact_headers`` is applied before any headers are logged or stored.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = [
    "REDACTED",
    "SecretError",
    "Vault",
    "generate_token",
    "hash_token",
    "redact_headers",
]

REDACTED = "[redacted]"
"""What a sensitive value is replaced with."""
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "webhook-signature",
        "svix-signature",
        "x-hub-signature",
        "x-hub-signature-256",
    }
)
"""Header names whose values are always redacted."""
SENSITIVE_WORDS = ("secret", "token", "signature", "password")
"""A header whose name contains one of these is redacted too."""
TOKEN_BYTES = 24
"""Random bytes in a generated token (32 urlsafe characters)."""


class SecretError(Exception):
    """Raised when a value cannot be decrypted with any configured key."""


DECRYPTED_KEPT = 4096
"""Decrypted values a ``Vault`` keeps (by token) before it starts again from empty."""


class Vault:
    """Encrypts secrets with the first key and decrypts with any (key rotation).

    Decrypted values are kept by token, in this process's memory only: every webhook
    and every delivery attempt needs its secret in clear, and a Fernet decryption
    (HMAC check and AES) cost a tenth of a webhook's whole handling. A secret that
    changes, or is re-encrypted under a new key, has a new token.
    """

    def __init__(self, keys: Sequence[str]):
        if not keys or not all(keys):
            raise SecretError("at least one non-empty secret key is required")
        self._fernet = MultiFernet([Fernet(_fernet_key(key)) for key in keys])
        self._decrypted: dict[str, str] = {}

    def encrypt(self, value: str) -> str:
        """The value encrypted with the current (first) key."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The value of a token made by ``encrypt`` under any configured key."""
        value = self._decrypted.get(token)
        if value is None:
            try:
                value = self._fernet.decrypt(token.encode()).decode()
            except (InvalidToken, ValueError):
                raise SecretError("cannot decrypt: wrong key or corrupted value") from None
            if len(self._decrypted) >= DECRYPTED_KEPT:
                self._decrypted.clear()
            self._decrypted[token] = value
        return value

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the current key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretError("cannot decrypt: wrong key or corrupted value") from None


def _fernet_key(key: str) -> bytes:
    # Any string works as a key: Fernet needs 32 bytes, urlsafe-base64.
    return base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())


def hash_token(token: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def generate_token(prefix: str) -> str:
    """A new random token, e.g. ``ihk_`` + 32 urlsafe characters."""
    return prefix + secrets.token_urlsafe(TOKEN_BYTES)


def redact_headers(headers: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """Headers with lower-case names and sensitive values replaced by ``REDACTED``."""
    named = SENSITIVE_HEADERS | {name.lower() for name in extra}
    redacted = {}
    for name, value in headers.items():
        key = name.lower()
        sensitive = key in named or any(word in key for word in SENSITIVE_WORDS)
        redacted[key] = REDACTED if sensitive else value
    return redacted
