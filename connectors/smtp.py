"""The ``smtp`` connector: plain-text (and HTML) e-mail through a mail server, via the guard.

The server's name is resolved and every address checked by the SSRF guard's rule before
anything connects; the connection then goes to a checked address while TLS still verifies
the real name, so DNS cannot change between the check and the connect (as in outbound.py).
SMTP replies map onto the error tree by class: 4xx and connection trouble are worth
retrying, 5xx and refused credentials are not.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import httpx
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.errors import (
    ConnectFailed,
    ConnectorError,
    OutboundRefused,
    TransientError,
)
from connectors.outbound import OutboundPolicy, is_refused_address
from connectors.registry import register_connector

DEFAULT_PORT = 587
"""The submission port, spoken with STARTTLS."""

DEFAULT_TIMEOUT = 15.0
"""Seconds for each network operation when the config does not say."""

SECURITY = ("starttls", "ssl", "none")
"""``starttls`` upgrades a plain connection (refusing servers that cannot), ``ssl`` is TLS
from the first byte (port 465), ``none`` sends in the clear (local relays, tests)."""

MAX_RECIPIENTS = 100
"""Most addresses one ``send`` may name."""

_FORBIDDEN = ("\r", "\n", "\0")
_MAX_REPLY = 200


class SmtpConfig(Schema):
    """Config of an ``smtp`` connector; the password is accepted but never dumped."""

    host = fields.String(required=True, validate=validate.Length(min=1, max=253))
    port = fields.Integer(load_default=DEFAULT_PORT, validate=validate.Range(min=1, max=65535))
    security = fields.String(load_default="starttls", validate=validate.OneOf(SECURITY))
    username = fields.String(validate=validate.Length(min=1))
    password = fields.String(load_only=True)
    from_address = fields.Email(required=True)
    timeout = fields.Float(
        load_default=DEFAULT_TIMEOUT, validate=validate.Range(min=0, max=300, min_inclusive=False)
    )
    allow_private = fields.Boolean(load_default=False)

    @validates_schema
    def _credentials(self, data: dict[str, Any], **_: Any) -> None:
        if ("username" in data) != ("password" in data):
            missing = "password" if "username" in data else "username"
            raise ValidationError({missing: ["Give username and password together."]})


class _PinnedSMTP(smtplib.SMTP):
    """Connects to ``address`` (already checked) while ``host`` stays the name TLS verifies."""

    def __init__(self, address: str, **kwargs: Any):
        self._address = address
        super().__init__(**kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # smtplib's own hook for opening the socket (SMTP_SSL wraps what it returns);
        # typeshed leaves it out.
        sock: socket.socket = super()._get_socket(self._address, port, timeout)  # type: ignore[misc]
        return sock


class _PinnedSMTPSSL(_PinnedSMTP, smtplib.SMTP_SSL):
    """``_PinnedSMTP`` with TLS from the first byte (SMTP_SSL wraps with the real name)."""


@register_connector
class SmtpConnector:
    """Sends e-mail from the configured address through one mail server."""

    kind = "smtp"
    Config = SmtpConfig

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        policy: OutboundPolicy,
        client: httpx.Client | None = None,
    ):
        self.host: str = config["host"]
        self.port: int = config.get("port", DEFAULT_PORT)
        self.security: str = config.get("security", "starttls")
        self.username: str | None = config.get("username")
        self._password: str | None = config.get("password")
        self.from_address: str = config["from_address"]
        self.timeout: float = config.get("timeout", DEFAULT_TIMEOUT)
        # Either the install or the connector may allow private addresses, as for http.
        self.allow_private = policy.allow_private or bool(config.get("allow_private"))
        self.url = f"smtp://{self.host}:{self.port}"

    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        reply_to: str | None = None,
    ) -> dict[str, Any]:
        """Send one message; return the ``accepted`` recipients and its ``message_id``."""
        message = self._message(to, subject, text, html, reply_to)
        dropped = "mail server dropped the connection"
        refused: dict[str, tuple[int, bytes]] = {}
        try:
            with self._connect() as smtp:
                refused = dict(smtp.send_message(message))
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._refused(exc.recipients) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise ConnectFailed(f"{dropped}: {exc}", url=self.url) from None
        except smtplib.SMTPResponseException as exc:
            raise self._reply_error(exc.smtp_code, exc.smtp_error) from None
        except smtplib.SMTPException as exc:
            raise ConnectorError(f"mail server: {exc}", url=self.url) from None
        except OSError as exc:  # refused, reset, timeout, TLS: after the SMTP errors (subclasses)
            raise ConnectFailed(f"cannot talk to the mail server: {exc}", url=self.url) from None
        return {
            "accepted": [a for a in to if parseaddr(a)[1] not in refused],
            "message_id": message["Message-ID"],
        }

    def close(self) -> None:
        """Nothing to release: each send opens and closes its own connection."""

    def _message(
        self, to: list[str], subject: str, text: str, html: str | None, reply_to: str | None
    ) -> EmailMessage:
        if isinstance(to, str) or not isinstance(to, list) or not to:
            raise ConnectorError("to must be a non-empty list of addresses", url=self.url)
        if len(to) > MAX_RECIPIENTS:
            raise ConnectorError(f"at most {MAX_RECIPIENTS} recipients", url=self.url)
        _check_header("subject", subject)
        if not isinstance(text, str) or not isinstance(html, str | None):
            raise ConnectorError("text and html must be strings", url=self.url)
        for address in [*to, *([reply_to] if reply_to is not None else [])]:
            _check_address(address)
        message = EmailMessage()
        message["From"] = self.from_address
        message["To"] = ", ".join(to)
        if reply_to is not None:
            message["Reply-To"] = reply_to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.from_address.rpartition("@")[2])
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        return message

    def _connect(self) -> smtplib.SMTP:
        """A connected, secured and logged-in session to the first checked address that answers."""
        last: OSError | None = None
        for address in self._addresses():
            try:
                smtp = self._open(address)
            except smtplib.SMTPException:
                raise
            except OSError as exc:
                last = exc  # try the next checked address
                continue
            try:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username is not None:
                    smtp.login(self.username, self._password or "")
            except BaseException:
                smtp.close()
                raise
            return smtp
        raise ConnectFailed(f"cannot connect: {last}", url=self.url)

    def _open(self, address: str) -> smtplib.SMTP:
        options: dict[str, Any] = {"host": self.host, "port": self.port, "timeout": self.timeout}
        if self.security == "ssl":
            smtp: smtplib.SMTP = _PinnedSMTPSSL(
                address, context=ssl.create_default_context(), **options
            )
        else:
            smtp = _PinnedSMTP(address, **options)
        try:
            smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _addresses(self) -> list[str]:
        """Every address ``host`` resolves to, each allowed by the guard's rule."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ConnectFailed(f"cannot resolve {self.host}: {exc}", url=self.url) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        refused = [] if self.allow_private else [a for a in addresses if is_refused_address(a)]
        if refused or not addresses:
            raise OutboundRefused(
                f"{self.host} resolves to a private or reserved address ({', '.join(refused)})",
                url=self.url,
            )
        return addresses

    def _reply_error(self, code: int, text: bytes | str) -> ConnectorError:
        message = f"mail server answered {code}: {_text(text)}"
        if 400 <= code < 500:
            return TransientError(message, url=self.url, status=code)
        return ConnectorError(message, url=self.url, status=code)

    def _refused(self, recipients: Mapping[str, tuple[int, bytes | str]]) -> ConnectorError:
        """Every recipient refused: retryable only when every refusal was temporary."""
        codes = [code for code, _ in recipients.values()]
        detail = "; ".join(f"{who}: {c} {_text(r)}" for who, (c, r) in recipients.items())
        error_class = TransientError if all(400 <= c < 500 for c in codes) else ConnectorError
        code = max(codes, default=0)
        return error_class(
            f"mail server refused every recipient ({detail})", url=self.url, status=code
        )


def _text(reply: bytes | str) -> str:
    """An SMTP reply's text on one line, cut short for the run log."""
    decoded = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(decoded.split())[:_MAX_REPLY]


def _check_header(name: str, value: Any) -> None:
    """Refuse what would let a value write headers of its own (CR, LF, NUL)."""
    if not isinstance(value, str):
        raise ConnectorError(f"{name} must be a string")
    if any(c in value for c in _FORBIDDEN):
        raise ConnectorError(f"{name} must not contain line breaks")


def _check_address(address: Any) -> None:
    _check_header("address", address)
    if "@" not in parseaddr(address)[1]:
        raise ConnectorError(f"not an e-mail address: {address!r}")
