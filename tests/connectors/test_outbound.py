"""The outbound guard against real local HTTP servers (pytest-httpserver on 127.0.0.1)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors.errors import (
    ConnectFailed,
    ConnectorError,
    OutboundRefused,
    RemoteError,
    ResponseTooLarge,
)
from connectors.outbound import (
    OutboundPolicy,
    OutboundResponse,
    check_url,
    is_refused_address,
    raise_for_status,
    send_request,
)

LOCAL = OutboundPolicy(allow_private=True)
GUARDED = OutboundPolicy()


def test_success_through_the_guard(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok", method="POST", json={"a": 1}).respond_with_json(
        {"got": True}, headers={"X-Thing": "yes"}
    )
    response = send_request(
        "POST", httpserver.url_for("/ok"), policy=LOCAL, json={"a": 1}, params={"q": "1"}
    )
    assert response.status == 200
    assert response.json() == {"got": True}
    assert response.headers["x-thing"] == "yes"
    assert response.url.startswith(httpserver.url_for("/ok"))
    assert response.elapsed_ms > 0


def test_passed_client_is_used(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/c").respond_with_data("plain")
    with httpx.Client() as client:
        response = send_request("GET", httpserver.url_for("/c"), policy=LOCAL, client=client)
    assert response.body == b"plain"
    assert response.json() is None


def test_connects_to_the_checked_address_with_the_real_host(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name is resolved once, by the guard; the connection goes to that address."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake_dns(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        lookups.append(host)
        if host == "rebind.test":
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    seen: list[str] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers["Host"])
        return Response("hi")

    httpserver.expect_request("/pinned").respond_with_handler(handler)
    url = f"http://rebind.test:{httpserver.port}/pinned"
    with pytest.raises(OutboundRefused):
        send_request("GET", url, policy=GUARDED)
    response = send_request("GET", url, policy=LOCAL)
    assert response.body == b"hi"
    assert response.extra["address"] == "127.0.0.1"
    assert seen == [f"rebind.test:{httpserver.port}"]
    assert lookups.count("rebind.test") == 2  # once per send, both by the guard


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://[::ffff:10.0.0.1]/",
        "http://[fd00:ec2::254]/",
        "http://224.0.0.1/",
    ],
)
def test_private_targets_refused(url: str) -> None:
    with pytest.raises(OutboundRefused) as info:
        send_request("GET", url, policy=GUARDED)
    assert info.value.retryable is False
    with pytest.raises(OutboundRefused):
        check_url(url, GUARDED)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::",
        "64:ff9b::a00:1",
        "224.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "nope",
    ],
)
def test_refused_addresses(address: str) -> None:
    assert is_refused_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_allowed(address: str) -> None:
    assert not is_refused_address(address)
    assert check_url(f"https://{address if ':' not in address else f'[{address}]'}/", GUARDED)


def test_scheme_rules() -> None:
    https_only = OutboundPolicy(allow_private=True, allow_http=False)
    with pytest.raises(OutboundRefused, match="scheme"):
        check_url("http://127.0.0.1/", https_only)
    assert check_url("https://127.0.0.1/", https_only) == ["127.0.0.1"]
    for url in ("ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1/"):
        with pytest.raises(OutboundRefused):
            check_url(url, LOCAL)


def test_https_only_refuses_http_send(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/x").respond_with_data("no")
    policy = OutboundPolicy(allow_private=True, allow_http=False)
    with pytest.raises(OutboundRefused):
        send_request("GET", httpserver.url_for("/x"), policy=policy)
    assert httpserver.log == []


def test_redirect_chain_followed_by_hand(httpserver: HTTPServer) -> None:
    for n in range(3):
        httpserver.expect_request(f"/r{n}").respond_with_data(
            "", status=302, headers={"Location": f"/r{n + 1}"}
        )
    httpserver.expect_request("/r3").respond_with_data("end")
    response = send_request("GET", httpserver.url_for("/r0"), policy=LOCAL)
    assert response.body == b"end"
    assert response.extra["redirects"] == 3
    assert response.url.endswith("/r3")
    with pytest.raises(OutboundRefused, match="redirects"):
        send_request(
            "GET",
            httpserver.url_for("/r0"),
            policy=OutboundPolicy(allow_private=True, max_redirects=2),
        )


def test_post_303_becomes_get(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/post", method="POST").respond_with_data(
        "", status=303, headers={"Location": "/after"}
    )
    httpserver.expect_request("/after", method="GET").respond_with_data("done")
    response = send_request("POST", httpserver.url_for("/post"), policy=LOCAL, content=b"x")
    assert response.body == b"done"


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/x"],
)
def test_redirect_to_refused_place(httpserver: HTTPServer, location: str) -> None:
    httpserver.expect_request("/bounce").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    with pytest.raises(OutboundRefused):
        send_request("GET", httpserver.url_for("/bounce"), policy=LOCAL)


def test_redirect_to_metadata_refused_per_hop() -> None:
    """Each hop goes through check_url: the metadata address is refused whatever came first."""
    assert check_url("https://93.184.216.34/start", GUARDED) == ["93.184.216.34"]
    with pytest.raises(OutboundRefused):
        check_url(
            httpx.URL("https://93.184.216.34/start").join(
                "http://169.254.169.254/latest/meta-data/"
            ),
            GUARDED,
        )


def test_oversize_body(httpserver: HTTPServer) -> None:
    policy = OutboundPolicy(allow_private=True, max_response_bytes=1000)
    httpserver.expect_request("/big").respond_with_data(b"x" * 1001)
    with pytest.raises(ResponseTooLarge):
        send_request("GET", httpserver.url_for("/big"), policy=policy)

    def chunked(request: Request) -> Response:  # no Content-Length: the stream is counted
        return Response((b"y" * 400 for _ in range(3)), direct_passthrough=True)

    httpserver.expect_request("/stream").respond_with_handler(chunked)
    with pytest.raises(ResponseTooLarge):
        send_request("GET", httpserver.url_for("/stream"), policy=policy)
    httpserver.expect_request("/fits").respond_with_data(b"z" * 1000)
    assert len(send_request("GET", httpserver.url_for("/fits"), policy=policy).body) == 1000


def test_timeout_is_connect_failed(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    with pytest.raises(ConnectFailed) as info:
        send_request("GET", httpserver.url_for("/slow"), policy=LOCAL, timeout=0.2)
    assert info.value.retryable is True
    time.sleep(0.5)  # let the single-threaded server finish before the next test


def test_connection_refused_is_connect_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectFailed):
        send_request("GET", f"http://127.0.0.1:{port}/", policy=LOCAL, timeout=2)


def test_unresolvable_host_is_connect_failed() -> None:
    with pytest.raises(ConnectFailed):
        send_request("GET", "http://no-such-host.invalid/", policy=GUARDED)


def _response(status: int, body: bytes = b"") -> OutboundResponse:
    return OutboundResponse(status, {}, body, "https://example.com/x", 1.0)


def test_raise_for_status_mapping() -> None:
    raise_for_status(_response(200))
    raise_for_status(_response(302))
    for status in (500, 502, 503, 429):
        with pytest.raises(RemoteError) as info:
            raise_for_status(_response(status, b"upstream broke " * 100))
        assert info.value.status == status and info.value.retryable
        assert info.value.url == "https://example.com/x"
        assert "upstream broke" in info.value.message
        assert len(info.value.message) < 300
    for status in (400, 401, 404, 422):
        with pytest.raises(ConnectorError) as err:
            raise_for_status(_response(status, b"bad"))
        assert type(err.value) is ConnectorError
        assert err.value.status == status and not err.value.retryable
