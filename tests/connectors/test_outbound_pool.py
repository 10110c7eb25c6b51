"""The guard's pooled keep-alive transport against real servers on 127.0.0.1.

The server here is a threaded ``http.server`` that counts the connections it accepts, so
reuse, retries and closes can be seen from the far end.
"""

from __future__ import annotations

import datetime
import gzip
import http.server
import json
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectors import outbound, outbound_pool
from connectors.errors import ConnectFailed, OutboundRefused, ResponseTooLarge
from connectors.outbound import OutboundPolicy, send_request
from connectors.outbound_pool import ConnectionPool

LOCAL = OutboundPolicy(allow_private=True)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.accepted += 1

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        self.body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.paths.append(self.path)
        ROUTES[url.path](self, parse_qs(url.query))
        if self.server.close_after_each:
            self.close_connection = True  # silently: no "Connection: close" header

    def answer(self, body: bytes, status: int = 200, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


def _chunked(handler: Handler, pieces: list[bytes], **headers: str) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    for piece in pieces:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    handler.wfile.write(b"0\r\n\r\n")


def _half(handler: Handler, query: dict) -> None:
    """Declares 100 bytes, sends 10, hangs up."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    handler.wfile.write(b"x" * 10)
    handler.wfile.flush()
    handler.connection.shutdown(socket.SHUT_RDWR)
    handler.close_connection = True


def _drop(handler: Handler, query: dict) -> None:
    """Reads the request, answers nothing, hangs up."""
    handler.connection.shutdown(socket.SHUT_RDWR)
    handler.close_connection = True


def _drip(handler: Handler, query: dict) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    for _ in range(100):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.05)


def _headers(handler: Handler, query: dict) -> None:
    seen = {"headers": [[k.lower(), v] for k, v in handler.headers.items()]}
    seen["body"] = handler.body.decode()  # type: ignore[assignment]
    handler.answer(json.dumps(seen).encode(), Content_Type="application/json")


ROUTES: dict[str, Callable[[Handler, dict], None]] = {
    "/echo": lambda h, q: h.answer(q.get("id", [""])[0].encode()),
    "/headers": _headers,
    "/close": lambda h, q: h.answer(b"bye", Connection="close"),
    "/gzip": lambda h, q: h.answer(gzip.compress(b"zipped " * 100), Content_Encoding="gzip"),
    "/deflate": lambda h, q: h.answer(zlib.compress(b"deflated"), Content_Encoding="deflate"),
    "/rawdeflate": lambda h, q: h.answer(zlib.compress(b"raw")[2:-4], Content_Encoding="deflate"),
    "/bomb": lambda h, q: _chunked(h, [gzip.compress(b"\0" * 5_000_000)], Content_Encoding="gzip"),
    "/chunked": lambda h, q: _chunked(h, [b"a" * 300, b"b" * 300]),
    "/slow": lambda h, q: time.sleep(0.5) or h.answer(b"late"),  # type: ignore[func-returns-value]
    "/half": _half,
    "/drop": _drop,
    "/drip": _drip,
    "/redirect": lambda h, q: h.answer(b"", 302, Location=q["to"][0]),
}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, tls: ssl.SSLContext | None = None, address: str = "127.0.0.1"):
        super().__init__((address, 0), Handler)
        self.tls = tls
        self.lock = threading.Lock()
        self.accepted = 0
        self.paths: list[str] = []
        self.close_after_each = False

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = super().get_request()
        return (self.tls.wrap_socket(sock, server_side=True) if self.tls else sock), address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that gave up (timeouts, caps) are part of the tests

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"


def _serve(server: Server) -> Iterator[Server]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    yield from _serve(Server())


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectionPool]:
    """A fresh pool in place of the process's."""
    fresh = ConnectionPool()
    monkeypatch.setattr(outbound_pool, "POOL", fresh)
    yield fresh
    fresh.clear()


def test_sequential_requests_share_one_connection(server: Server, pool: ConnectionPool) -> None:
    for n in range(20):
        response = send_request("GET", server.url(f"/echo?id={n}"), policy=LOCAL)
        assert response.body == str(n).encode()
    for path in ("/chunked", "/gzip", "/redirect?to=/echo%3Fid%3Dlast"):
        assert send_request("GET", server.url(path), policy=LOCAL).status == 200
    assert server.accepted == 1
    assert pool.idle() == 1


def test_connection_close_is_not_kept(server: Server, pool: ConnectionPool) -> None:
    assert send_request("GET", server.url("/close"), policy=LOCAL).body == b"bye"
    assert pool.idle() == 0
    send_request("GET", server.url("/echo"), policy=LOCAL)
    assert server.accepted == 2


def test_idle_connection_closed_by_server_is_not_used(server: Server, pool: ConnectionPool) -> None:
    server.close_after_each = True
    for n in range(3):
        assert send_request("GET", server.url(f"/echo?id={n}"), policy=LOCAL).body == b"%d" % n
        time.sleep(0.05)  # the server's close has arrived
    assert server.accepted == 3
    assert len(server.paths) == 3


def test_request_on_connection_closed_while_idle_is_sent_again_once(
    server: Server, pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the close is not seen before sending, the request goes again on a fresh one."""
    monkeypatch.setattr(outbound_pool, "_closed_by_peer", lambda sock: False)
    real_start, sends = outbound_pool._start, []

    def start(conn, *args):  # type: ignore[no-untyped-def]
        sends.append(conn)
        return real_start(conn, *args)

    monkeypatch.setattr(outbound_pool, "_start", start)
    server.close_after_each = True
    send_request("GET", server.url("/echo?id=1"), policy=LOCAL)
    time.sleep(0.05)
    assert send_request("POST", server.url("/echo?id=2"), policy=LOCAL).body == b"2"
    assert len(sends) == 3 and sends[0] is sends[1] is not sends[2]  # dead one, then fresh
    assert server.accepted == 2
    assert server.paths == ["/echo?id=1", "/echo?id=2"]


def test_server_hanging_up_without_answer_on_reused_connection(
    server: Server, pool: ConnectionPool
) -> None:
    """Nothing came back on a reused connection: sent once more, then it fails."""
    send_request("GET", server.url("/echo"), policy=LOCAL)
    with pytest.raises(ConnectFailed, match="RemoteDisconnected|Reset"):
        send_request("POST", server.url("/drop"), policy=LOCAL, content=b"x")
    assert server.paths == ["/echo", "/drop", "/drop"]
    with pytest.raises(ConnectFailed):  # on a fresh connection: not sent again
        send_request("POST", server.url("/drop"), policy=LOCAL, content=b"x")
    assert server.paths.count("/drop") == 3


def test_server_closing_mid_response_is_not_retried(server: Server, pool: ConnectionPool) -> None:
    send_request("GET", server.url("/echo"), policy=LOCAL)  # /half goes on a reused one
    with pytest.raises(ConnectFailed, match="IncompleteRead"):
        send_request("GET", server.url("/half"), policy=LOCAL)
    assert server.paths == ["/echo", "/half"]
    assert pool.idle() == 0


def test_timeouts_are_connect_failed(server: Server, pool: ConnectionPool) -> None:
    with pytest.raises(ConnectFailed, match="timed out") as info:
        send_request("GET", server.url("/slow"), policy=LOCAL, timeout=0.2)
    assert info.value.retryable
    started = time.monotonic()
    with pytest.raises(ConnectFailed, match="timed out"):  # the whole body within the time
        send_request("GET", server.url("/drip"), policy=LOCAL, timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert pool.idle() == 0


def test_body_caps(server: Server, pool: ConnectionPool) -> None:
    small = OutboundPolicy(allow_private=True, max_response_bytes=500)
    with pytest.raises(ResponseTooLarge):
        send_request("GET", server.url("/chunked"), policy=small)
    with pytest.raises(ResponseTooLarge):  # 5 MB of zeros in ~5 KB of gzip: cut when decoded
        send_request("GET", server.url("/bomb"), policy=LOCAL)
    assert pool.idle() == 0  # nothing half-read is kept
    fits = OutboundPolicy(allow_private=True, max_response_bytes=700)
    assert send_request("GET", server.url("/gzip"), policy=fits).body == b"zipped " * 100


@pytest.mark.parametrize(
    ("path", "body"),
    [("/gzip", b"zipped " * 100), ("/deflate", b"deflated"), ("/rawdeflate", b"raw")],
)
def test_content_encoding_decoded(
    server: Server, pool: ConnectionPool, path: str, body: bytes
) -> None:
    response = send_request("GET", server.url(path), policy=LOCAL)
    assert response.body == body
    assert response.headers["content-encoding"] in ("gzip", "deflate")


def test_request_as_httpx_built_it(server: Server, pool: ConnectionPool) -> None:
    sent = send_request("POST", server.url("/headers"), policy=LOCAL, json={"a": "é", "b": [1]})
    seen = json.loads(sent.body)
    headers = dict(seen["headers"])
    assert seen["body"] == '{"a":"é","b":[1]}'
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len('{"a":"é","b":[1]}'.encode()))
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["user-agent"] == outbound_pool.USER_AGENT
    assert headers["accept-encoding"] == "gzip, deflate"
    mine = {"User-Agent": "me/1", "Content-Type": "text/plain", "Content-Length": "999"}
    sent = send_request("POST", server.url("/headers"), policy=LOCAL, headers=mine, content=b"x")
    headers = dict(json.loads(sent.body)["headers"])
    assert headers["user-agent"] == "me/1"
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "1"  # the framing is the transport's own
    with pytest.raises(ConnectFailed, match="invalid request header 'x'"):
        send_request("GET", server.url("/headers"), policy=LOCAL, headers={"x": "a\r\nb: c"})


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/echo?a=1", {"b": "2"}),
        ("/echo?a=1", {}),
        ("/echo?a=1", None),
        ("/echo", {"q": "é ü&=", "n": 1, "t": True, "l": ["x", "y"], "z": None}),
    ],
)
def test_query_as_httpx_built_it(
    server: Server, pool: ConnectionPool, url: str, params: dict | None
) -> None:
    ours = send_request("GET", server.url(url), policy=LOCAL, params=params)
    with httpx.Client(trust_env=False) as client:
        theirs = send_request("GET", server.url(url), policy=LOCAL, params=params, client=client)
    assert server.paths[0] == server.paths[1]
    assert ours.url == theirs.url


def test_redirect_to_private_address_refused(
    server: Server, pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """127.0.0.1 stands for a public address here; 127.0.0.2 stays private."""
    refused = outbound.is_refused_address
    monkeypatch.setattr(outbound, "is_refused_address", lambda a: a != "127.0.0.1" and refused(a))
    guarded = OutboundPolicy()
    assert send_request("GET", server.url("/echo?id=ok"), policy=guarded).body == b"ok"
    target = f"http://127.0.0.2:{server.port}/echo"
    with pytest.raises(OutboundRefused):
        send_request("GET", server.url(f"/redirect?to={target}"), policy=guarded)
    assert server.paths == ["/echo?id=ok", f"/redirect?to={target}"]


def test_threads_never_share_a_connection(server: Server, pool: ConnectionPool) -> None:
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for n in range(50):
                key = f"{thread}-{n}"
                response = send_request("GET", server.url(f"/echo?id={key}"), policy=LOCAL)
                assert response.body == key.encode()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(server.paths) == 400
    assert server.accepted <= 16  # kept and reused, not one per request
    assert pool.idle() <= 8


class FakeConnection:
    def __init__(self) -> None:
        self.sock, self.peer = socket.socketpair()
        self.idle_since = 0.0
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self.sock.close()
        self.peer.close()


def test_pool_bounds() -> None:
    pool = ConnectionPool(per_key=2, keys=3, total=5)
    conns = [FakeConnection() for _ in range(10)]
    key = ("http", "10.0.0.1", 80, "a")
    for conn in conns[:3]:
        pool.give(key, conn)  # type: ignore[arg-type]
    assert pool.idle(key) == 2 and conns[0].closed  # the oldest goes
    for n, conn in enumerate(conns[3:7]):
        pool.give(("http", "10.0.0.1", 80, f"k{n}"), conn)  # type: ignore[arg-type]
    assert pool.idle() == 3  # 3 keys at most: the least recently used key went first
    assert pool.idle(key) == 0 and all(c.closed for c in conns[:4])
    assert pool.take(("http", "10.0.0.1", 80, "k3")) is conns[6]
    conns[5].peer.close()  # the server closed it while idle
    assert pool.take(("http", "10.0.0.1", 80, "k2")) is None and conns[5].closed
    expired = ConnectionPool(idle_seconds=0.0)
    expired.give(key, conns[8])  # type: ignore[arg-type]
    time.sleep(0.01)
    assert expired.take(key) is None and conns[8].closed
    for conn in conns:
        conn.close()


# -- TLS: a CA made here (cryptography, when installed), SNI and the name checked ---------


def _certificates(directory: Path) -> tuple[bytes, Path, Path]:
    """A CA (PEM) and a server certificate and key for ``tls.test`` signed by it."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, key, signer, ca: bool):  # type: ignore[no-untyped-def]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        )
        if ca:
            usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
            builder = builder.add_extension(usage, critical=True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("ihook test CA", "ihook test CA", ca_key, ca_key, True)
    leaf = build("tls.test", "ihook test CA", key, ca_key, False)
    pem = serialization.Encoding.PEM
    (directory / "cert.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca.public_bytes(pem), directory / "cert.pem", directory / "key.pem"


def test_tls_pins_the_address_and_checks_the_real_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = _certificates(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_side.sni_callback = lambda sock, name, context: names.append(name)  # type: ignore[assignment,misc,return-value]
    client_side = ssl.create_default_context(cadata=ca.decode())
    pool = ConnectionPool(ssl_context=client_side)
    monkeypatch.setattr(outbound_pool, "POOL", pool)
    real = socket.getaddrinfo

    def fake_dns(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host in ("tls.test", "other.test"):
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    for tls_server in _serve(Server(tls=server_side)):
        for n in range(3):
            response = send_request(
                "GET", tls_server.url(f"/echo?id={n}", "tls.test"), policy=LOCAL
            )
            assert response.body == b"%d" % n
            assert response.extra["address"] == "127.0.0.1"
        assert names == ["tls.test"] and tls_server.accepted == 1  # one handshake, reused
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            send_request("GET", tls_server.url("/echo", "other.test"), policy=LOCAL)
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            send_request("GET", tls_server.url("/echo"), policy=LOCAL)  # the IP is not the name
    assert pool.idle() == 1
    pool.clear()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_use_the_parents_connections(
    server: Server, pool: ConnectionPool
) -> None:
    send_request("GET", server.url("/echo"), policy=LOCAL)
    assert pool.idle() == 1
    pid = os.fork()
    if pid == 0:  # the child: starts with an empty pool, its own connection
        ok = pool.idle() == 0 and send_request("GET", server.url("/echo"), policy=LOCAL)
        os._exit(0 if ok and pool.idle() == 1 else 1)
    assert os.waitpid(pid, 0)[1] == 0
    send_request("GET", server.url("/echo"), policy=LOCAL)  # the parent's is still good
    assert server.accepted == 2 and pool.idle() == 1
