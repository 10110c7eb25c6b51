"""The smtp connector against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from connectors import (
    ConfigError,
    ConnectFailed,
    ConnectorError,
    OutboundRefused,
    SmtpConnector,
    TransientError,
    build_connector,
    connector_kinds,
)
from connectors.outbound import OutboundPolicy
from connectors.smtp import SmtpConfig
from tests.support import free_port

FROM = "ihook@example.com"
PLAIN_AUTH = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
"""The auth tests speak AUTH in the clear on purpose: no certificate to trust on 127.0.0.1."""


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts, or answers with a set reply."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        parsed = message_from_bytes(envelope.original_content, policy=email_policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


class Server:
    def __init__(self, mailbox: Mailbox, port: int) -> None:
        self.mailbox = mailbox
        self.port = port

    def connector(self, **config) -> SmtpConnector:
        base = {
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "from_address": FROM,
            "allow_private": True,
            "timeout": 5,
        }
        connector = build_connector("smtp", {**base, **config}, policy=OutboundPolicy())
        assert isinstance(connector, SmtpConnector)
        return connector


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"ihook",
        b"right",
    )
    # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client waiting)
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def mail_server() -> Iterator[Callable[..., Server]]:
    """Start an SMTP server (``auth=True``: AUTH required, over plain text); stop it after."""
    started: list[Controller] = []

    def start(auth: bool = False) -> Server:
        mailbox = Mailbox()
        options = {}
        if auth:
            options = {
                "auth_required": True,
                "auth_require_tls": False,
                "authenticator": _authenticator,
            }
        port = free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        started.append(controller)
        return Server(mailbox, port)

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def server(mail_server) -> Server:
    return mail_server()


def test_smtp_is_a_registered_kind():
    assert "smtp" in connector_kinds()


def test_sends_text_and_html_in_one_message(server):
    sent = server.connector().send(
        ["Ada <ada@example.org>", "bob@example.org"],
        "Delivery failed",
        "Plain body",
        html="<p>HTML body</p>",
        reply_to="ops@example.com",
    )
    assert sent["accepted"] == ["Ada <ada@example.org>", "bob@example.org"]
    ((mail_from, rcpt_tos, message),) = server.mailbox.messages
    assert mail_from == FROM
    assert rcpt_tos == ["ada@example.org", "bob@example.org"]
    assert message["Message-ID"] == sent["message_id"]
    assert sent["message_id"].endswith("@example.com>")
    assert message["From"] == FROM
    assert message["Subject"] == "Delivery failed"
    assert message["Reply-To"] == "ops@example.com"
    assert message["Date"]
    assert message.get_body(("plain",)).get_content().strip() == "Plain body"
    assert message.get_body(("html",)).get_content().strip() == "<p>HTML body</p>"


def test_the_install_policy_may_allow_private_hosts(server):
    config = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "from_address": FROM,
    }
    connector = build_connector("smtp", config, policy=OutboundPolicy(allow_private=True))
    assert connector.send(["ada@example.org"], "Hi", "text")["accepted"] == ["ada@example.org"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_hosts_are_refused_unless_allowed(server, host):
    connector = server.connector(host=host, allow_private=False)
    with pytest.raises(OutboundRefused, match="private or reserved") as caught:
        connector.send(["ada@example.org"], "Hi", "text")
    assert not caught.value.retryable
    assert server.mailbox.messages == []


@pytest.mark.parametrize(
    "to, subject, reply_to",
    [
        (["ada@example.org"], "Hi\r\nBcc: eve@example.net", None),
        (["ada@example.org"], "Hi\nthere", None),
        (["ada@example.org\r\nBcc: eve@example.net"], "Hi", None),
        (["ada@example.org"], "Hi", "ops@example.com\nBcc: eve@example.net"),
        (["not an address"], "Hi", None),
        ("ada@example.org", "Hi", None),
        ([], "Hi", None),
    ],
)
def test_header_injection_and_bad_addresses_are_refused(server, to, subject, reply_to):
    with pytest.raises(ConnectorError) as caught:
        server.connector().send(to, subject, "text", reply_to=reply_to)
    assert not caught.value.retryable
    assert server.mailbox.messages == []


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_451_reply_is_retryable(server, stage):
    setattr(server.mailbox, f"{stage}_reply", "451 4.3.0 Try again later")
    with pytest.raises(TransientError, match="451") as caught:
        server.connector().send(["ada@example.org"], "Hi", "text")
    assert caught.value.retryable and caught.value.status == 451


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_550_reply_is_not_retryable(server, stage):
    setattr(server.mailbox, f"{stage}_reply", "550 5.1.1 No such user")
    with pytest.raises(ConnectorError, match="No such user") as caught:
        server.connector().send(["nobody@example.org"], "Hi", "text")
    assert not caught.value.retryable and caught.value.status == 550


@PLAIN_AUTH
def test_wrong_password_is_not_retryable(mail_server):
    server = mail_server(auth=True)
    with pytest.raises(ConnectorError, match="535") as caught:
        server.connector(username="ihook", password="wrong").send(["a@example.org"], "Hi", "x")
    assert not caught.value.retryable
    assert server.mailbox.messages == []


@PLAIN_AUTH
def test_right_password_sends(mail_server):
    server = mail_server(auth=True)
    connector = server.connector(username="ihook", password="right")
    assert connector.send(["a@example.org"], "Hi", "x")["accepted"] == ["a@example.org"]
    assert len(server.mailbox.messages) == 1


@PLAIN_AUTH
def test_no_credentials_where_auth_is_required_is_not_retryable(mail_server):
    server = mail_server(auth=True)
    with pytest.raises(ConnectorError, match="530") as caught:
        server.connector().send(["a@example.org"], "Hi", "x")
    assert not caught.value.retryable


def test_starttls_is_never_downgraded(server):
    with pytest.raises(ConnectorError, match="STARTTLS") as caught:
        server.connector(security="starttls").send(["a@example.org"], "Hi", "x")
    assert not caught.value.retryable
    assert server.mailbox.messages == []


def test_nothing_listening_is_retryable():
    connector = Server(Mailbox(), free_port()).connector()
    with pytest.raises(ConnectFailed) as caught:
        connector.send(["a@example.org"], "Hi", "x")
    assert caught.value.retryable


@pytest.mark.parametrize(
    "config, field",
    [
        ({"from_address": FROM}, "host"),
        ({"host": "mail.example.com"}, "from_address"),
        ({"host": "mail.example.com", "from_address": "nope"}, "from_address"),
        ({"host": "mail.example.com", "from_address": FROM, "security": "tls"}, "security"),
        ({"host": "mail.example.com", "from_address": FROM, "username": "u"}, "password"),
        ({"host": "mail.example.com", "from_address": FROM, "port": 0}, "port"),
    ],
)
def test_invalid_configs_are_refused(config, field):
    with pytest.raises(ConfigError, match=f"{field}:"):
        build_connector("smtp", config, policy=OutboundPolicy())


def test_defaults_and_the_password_is_never_dumped():
    loaded = SmtpConfig().load(
        {"host": "mail.example.com", "from_address": FROM, "username": "u", "password": "p"}
    )
    assert (loaded["port"], loaded["security"], loaded["timeout"]) == (587, "starttls", 15.0)
    assert "password" not in SmtpConfig().dump(loaded)
