from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from marshmallow import Schema
from pytest_httpserver import HTTPServer

from connectors import (
    ConfigError,
    ConnectFailed,
    ConnectorError,
    HttpConnector,
    OutboundRefused,
    RemoteError,
    TransientError,
    build_connector,
)
from connectors.http import HttpConfig
from connectors.outbound import OutboundPolicy

LOCAL = OutboundPolicy(allow_private=True)


@pytest.fixture(scope="module")
def local_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(local_server: HTTPServer) -> Iterator[HTTPServer]:
    yield local_server
    local_server.clear()


def http(server: HTTPServer, **config: Any) -> HttpConnector:
    connector = build_connector(
        "http", {"base_url": server.url_for("/api"), **config}, policy=LOCAL
    )
    assert isinstance(connector, HttpConnector)
    return connector


def test_get_json(server: HTTPServer) -> None:
    server.expect_request("/api/items", method="GET", query_string="page=2").respond_with_json(
        {"items": [1, 2]}
    )
    out = http(server).request("GET", "/items", params={"page": 2})
    assert out["status"] == 200
    assert out["body"] == {"items": [1, 2]}
    assert out["headers"]["content-type"] == "application/json"
    assert out["url"].endswith("/api/items?page=2")
    assert out["elapsed_ms"] >= 0


def test_text_body_and_empty_path(server: HTTPServer) -> None:
    server.expect_request("/api").respond_with_data("hello", content_type="text/plain")
    assert http(server).request("GET")["body"] == "hello"


def test_post_json_with_headers(server: HTTPServer) -> None:
    server.expect_request(
        "/api/members", method="POST", json={"a": 1}, headers={"X-Team": "blue", "X-Call": "1"}
    ).respond_with_json({"id": 7}, status=201)
    connector = http(server, headers={"X-Team": "blue"})
    out = connector.request("post", "members", json={"a": 1}, headers={"X-Call": "1"})
    assert out["status"] == 201 and out["body"] == {"id": 7}


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        ({"type": "basic", "username": "u", "password": "p"}, "Authorization",
         "Basic " + base64.b64encode(b"u:p").decode()),
        ({"type": "bearer", "token": "tok"}, "Authorization", "Bearer tok"),
        ({"type": "header", "header": "X-Api-Key", "value": "k"}, "X-Api-Key", "k"),
    ],
)
def test_auth_is_sent(server: HTTPServer, auth: dict[str, str], header: str, value: str) -> None:
    server.expect_request("/api/me", headers={header: value}).respond_with_json({"ok": True})
    assert http(server, auth=auth).request("GET", "/me")["body"] == {"ok": True}


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_retryable(server: HTTPServer, status: int) -> None:
    server.expect_request("/api/x").respond_with_data("busy", status=status)
    with pytest.raises(RemoteError) as info:
        http(server).request("GET", "/x")
    assert info.value.status == status and info.value.retryable


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_are_not_retryable(server: HTTPServer, status: int) -> None:
    server.expect_request("/api/x").respond_with_data("no", status=status)
    with pytest.raises(ConnectorError) as info:
        http(server).request("GET", "/x")
    assert not isinstance(info.value, TransientError)
    assert info.value.status == status and not info.value.retryable


def test_connection_refused_is_connect_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connector = build_connector("http", {"base_url": f"http://127.0.0.1:{port}"}, policy=LOCAL)
    with pytest.raises(ConnectFailed) as info:
        connector.request("GET")  # type: ignore[attr-defined]
    assert info.value.retryable


def test_private_address_needs_permission(server: HTTPServer) -> None:
    server.expect_request("/api").respond_with_json({})
    url = server.url_for("/api")
    strict = OutboundPolicy()
    with pytest.raises(OutboundRefused):
        HttpConnector({"base_url": url}, policy=strict).request("GET")
    allowed = build_connector("http", {"base_url": url, "allow_private": True}, policy=strict)
    assert allowed.request("GET")["status"] == 200  # type: ignore[attr-defined]


def test_absolute_path_is_refused(server: HTTPServer) -> None:
    with pytest.raises(ConnectorError, match="relative"):
        http(server).request("GET", "http://elsewhere.example/x")


def test_given_client_is_used_and_left_open(server: HTTPServer) -> None:
    server.expect_request("/api").respond_with_json({})
    with httpx.Client() as client:
        connector = HttpConnector({"base_url": server.url_for("/api")}, policy=LOCAL, client=client)
        connector.request("GET")
        connector.close()
        assert not client.is_closed


def test_config_errors_name_the_fields() -> None:
    with pytest.raises(ConfigError) as info:
        build_connector("http", {"auth": {"type": "basic", "username": "u"}}, policy=LOCAL)
    message = str(info.value)
    assert "base_url" in message and "auth.password" in message
    with pytest.raises(ConfigError, match="timeout"):
        build_connector("http", {"base_url": "http://x", "timeout": 0}, policy=LOCAL)
    with pytest.raises(ConfigError, match="auth.type"):
        build_connector("http", {"base_url": "http://x", "auth": {"type": "magic"}}, policy=LOCAL)


def test_secrets_are_load_only() -> None:
    schema: Schema = HttpConfig()
    loaded = schema.load({
        "base_url": "https://crm.example",
        "auth": {"type": "bearer", "token": "secret"},
    })
    assert loaded["timeout"] == 15.0 and loaded["allow_private"] is False
    assert "secret" not in json.dumps(schema.dump(loaded))


def test_session_cookies_of_the_far_end_stay_out_of_the_output(server: HTTPServer) -> None:
    server.expect_request("/api/login").respond_with_json(
        {"ok": True}, headers={"Set-Cookie": "session=s3cr3t; HttpOnly", "X-Request-Id": "r1"}
    )
    out = http(server).request("GET", "/login")
    assert out["headers"]["x-request-id"] == "r1"
    assert "set-cookie" not in out["headers"]
    assert "s3cr3t" not in json.dumps(out)
