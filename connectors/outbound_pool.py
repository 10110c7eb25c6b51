"""The outbound guard's default transport: pooled keep-alive HTTP/1.1 on ``http.client``.

``send`` sends one request to one of the addresses the guard checked, never to a name
resolved here: ``Host`` carries the real authority, and over TLS the handshake sends the
real name as SNI and verifies the certificate against it. Idle connections are kept per
(scheme, address, port, real host), reused only after a response read to the end without
``Connection: close``, and never shared by two requests. A request on a reused connection
that the server had closed while idle (no byte of a response came back) is sent once more
on a fresh connection; never once a response has begun. Every socket wait gets the time
left before ``deadline``. The body is ``gzip``/``deflate`` decoded and capped when decoded:
past the cap the request fails, or, when the caller asks to ``truncate``, the body is cut
at the cap and the rest never read (the connection is closed, not kept).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import time
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

import certifi

from connectors.errors import ConnectFailed, ResponseTooLarge
from connectors.outbound_codec import Decoder, encode_body

__all__ = ["POOL", "ConnectionPool", "Reply", "Target", "send"]

USER_AGENT = "ihook"
"""Sent when the caller sends no ``User-Agent`` (httpx sent ``python-httpx/<version>``)."""
DEFAULT_HEADERS = (
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate"),  # exactly the codings decoded below
    ("Connection", "keep-alive"),
    ("User-Agent", USER_AGENT),
)
"""Request headers added unless the caller sends the same name (as httpx's defaults)."""
UNSENT_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})
"""Caller headers replaced by the transport's own: the framing must match the body."""
READ_CHUNK = 65_536
"""Bytes asked for per read of the body."""

Key = tuple[str, str, int, str]
"""(scheme, checked address, port, real host): what a kept connection may be reused for."""


class Target(NamedTuple):
    """Where one hop goes, as the guard parsed it.

    ``host`` is the real name (no brackets: SNI, certificate, pool key), ``authority`` the
    ``Host`` header (with a non-default port), ``path`` the percent-encoded path and query,
    ``url`` the URL for error messages.
    """

    scheme: str
    host: str
    port: int
    authority: str
    path: str
    url: str


class _Request(NamedTuple):
    method: str
    target: Target
    lines: list[tuple[str, str]]
    body: bytes | None
    deadline: float
    cap: int
    truncate: bool


class Reply(NamedTuple):
    """A response read to the end (or to the cap, ``truncated``): status, headers
    (lower-case names), body, address used."""

    status: int
    headers: dict[str, str]
    body: bytes
    address: str
    truncated: bool = False


class _NothingReceived(Exception):
    """The connection ended before the first byte of a response."""


class _Response(http.client.HTTPResponse):
    """Tells an end of the connection before the status line from one later on."""

    _status_lines = 0

    def _read_status(self) -> Any:
        self._status_lines += 1
        try:
            return super()._read_status()  # type: ignore[misc]
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            # RemoteDisconnected is a ConnectionResetError: no byte came back.
            if self._status_lines == 1:
                raise _NothingReceived(f"{type(exc).__name__}: {exc}") from exc
            raise


class _Connection(http.client.HTTPConnection):
    """A connection to a checked address; TLS names the real host, never the address."""

    response_class = _Response
    auto_open = 0  # never reconnect on its own (that would skip the checks above)

    def __init__(self, key: Key, context: ssl.SSLContext | None):
        scheme, address, port, host = key
        super().__init__(address, port)
        self.key = key
        self.tls_name = host if scheme == "https" else None
        self.context = context
        self.idle_since = 0.0

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls_name is not None:  # no context for https fails, never goes plain
                sock = self.context.wrap_socket(sock, server_hostname=self.tls_name)  # type: ignore[union-attr]
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        """Head and a small body in one send: one packet, one wake-up of the server."""
        head = getattr(self, "_buffer", None)
        if not isinstance(message_body, bytes) or len(message_body) > 65_536 or head is None:
            return super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
        head.extend((b"", b""))
        message = b"\r\n".join(head)
        del head[:]
        self.send(message + message_body)


class ConnectionPool:
    """Idle keep-alive connections per key; thread-safe, bounded, LRU across keys.

    At most ``per_key`` idle connections per key and ``total`` in all over at most
    ``keys`` keys (the least recently used key loses its oldest first); a connection idle
    longer than ``idle_seconds`` or that the server closed is dropped, not reused.
    """

    def __init__(
        self,
        *,
        per_key: int = 16,
        keys: int = 256,
        total: int = 256,
        idle_seconds: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.per_key, self.keys, self.total, self.idle_seconds = per_key, keys, total, idle_seconds
        self._context = ssl_context
        self._forget()
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)

            def forget_in_child() -> None:
                pool = ref()
                if pool is not None:
                    pool._forget()

            os.register_at_fork(after_in_child=forget_in_child)

    def _forget(self) -> None:
        """Start empty (and, after a fork, leave the parent's connections to the parent)."""
        self._lock = threading.Lock()
        self._idle: OrderedDict[Key, list[_Connection]] = OrderedDict()
        self._count = 0

    def tls_context(self) -> ssl.SSLContext:
        """The context TLS connections use: verifying, against certifi's CA bundle (as httpx)."""
        if self._context is None:
            context = ssl.create_default_context(cafile=certifi.where())
            context.set_alpn_protocols(["http/1.1"])
            self._context = context
        return self._context

    def idle(self, key: Key | None = None) -> int:
        """How many idle connections are kept (for ``key``, or in all)."""
        with self._lock:
            return self._count if key is None else len(self._idle.get(key, ()))

    def take(self, key: Key) -> _Connection | None:
        """An idle connection for ``key`` that still looks alive, now the caller's alone."""
        while True:
            dropped: list[_Connection] = []
            with self._lock:
                conns = self._idle.get(key)
                if not conns:
                    return None
                conn = conns.pop()  # the most recently used
                self._count -= 1
                if time.monotonic() - conn.idle_since > self.idle_seconds:
                    dropped = [conn, *conns]  # the older ones are older still
                    self._count -= len(conns)
                    conns.clear()
                if not conns:
                    del self._idle[key]
            if not dropped and not _closed_by_peer(conn.sock):
                return conn
            for stale in dropped or [conn]:
                stale.close()

    def give(self, key: Key, conn: _Connection) -> None:
        """Keep ``conn`` (its response fully read) for the next request to ``key``."""
        conn.idle_since = time.monotonic()
        evicted: list[_Connection] = []
        with self._lock:
            conns = self._idle.get(key)
            if conns is None:
                conns = self._idle[key] = []
            else:
                self._idle.move_to_end(key)
            conns.append(conn)
            self._count += 1
            if len(conns) > self.per_key:
                evicted.append(conns.pop(0))
                self._count -= 1
            while self._count > self.total or len(self._idle) > self.keys:
                oldest_key, oldest = next(iter(self._idle.items()))
                evicted.append(oldest.pop(0))
                self._count -= 1
                if not oldest:
                    del self._idle[oldest_key]
        for old in evicted:
            old.close()

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            conns = [conn for kept in self._idle.values() for conn in kept]
            self._idle.clear()
            self._count = 0
        for conn in conns:
            conn.close()


POOL = ConnectionPool()
"""The process's pool, used by ``send`` unless it is given another."""


def _closed_by_peer(sock: socket.socket | None) -> bool:
    """True when an idle connection is readable: the server closed it (or sent junk)."""
    if sock is None:
        return True
    try:
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def send(
    method: str,
    target: Target,
    addresses: list[str],
    *,
    headers: Mapping[str, str],
    content: bytes | str | None = None,
    json: Any = None,
    deadline: float,
    max_body: int,
    truncate: bool = False,
    pool: ConnectionPool | None = None,
) -> Reply:
    """Send one request to the first of ``addresses`` that takes a connection; read it all.

    ``deadline`` (``time.monotonic()``) bounds connect, send and read. Raises ConnectFailed
    (refused, reset, TLS; "timed out ..." when out of time) and ResponseTooLarge when the
    (decoded) body passes ``max_body``; with ``truncate`` such a body is cut at
    ``max_body`` instead (``Reply.truncated``). Redirects are the guard's work, not
    followed here.
    """
    pool = pool or POOL
    body, content_type = encode_body(content, json)
    given = {name.lower() for name in headers}
    lines = [("Host", target.authority)]
    lines += [(name, value) for name, value in DEFAULT_HEADERS if name.lower() not in given]
    lines += [(k, v) for k, v in headers.items() if k.lower() not in UNSENT_HEADERS]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(("Content-Length", str(len(body or b""))))
    if content_type and "content-type" not in given:
        lines.append(("Content-Type", content_type))
    request = _Request(method, target, lines, body, deadline, max_body, truncate)
    context = pool.tls_context() if target.scheme == "https" else None
    last_error: Exception | None = None
    for address in addresses:
        key = (target.scheme, address, target.port, target.host)
        conn = pool.take(key)
        while True:
            reused = conn is not None
            if conn is None:
                conn = _Connection(key, context)
                try:
                    conn.timeout = _time_left(deadline, target.url)
                    conn.connect()
                except TimeoutError as exc:
                    conn.close()
                    raise ConnectFailed(f"timed out connecting: {exc}", url=target.url) from None
                except OSError as exc:  # refused, unreachable, TLS: try the next address
                    conn.close()
                    last_error = exc
                    break
            try:
                response, sock = _start(conn, request)
            except _NothingReceived as exc:
                if reused:  # closed by the server while idle: once more, on a fresh one
                    conn = None
                    continue
                raise ConnectFailed(str(exc), url=target.url) from None
            return _finish(pool, conn, response, sock, request)
    raise ConnectFailed(f"cannot connect: {last_error}", url=target.url)


def _time_left(deadline: float, url: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectFailed("timed out", url=url)
    return left


def _start(conn: _Connection, request: _Request) -> tuple[http.client.HTTPResponse, Any]:
    """Send the request; the response with its head read, and its socket."""
    sock, url = conn.sock, request.target.url
    sending = True
    try:
        sock.settimeout(_time_left(request.deadline, url))
        conn.putrequest(
            request.method, request.target.path, skip_host=True, skip_accept_encoding=True
        )
        for name, value in request.lines:
            try:
                conn.putheader(name, value if isinstance(value, bytes) else value.encode("ascii"))
            except ValueError:  # CR/LF, a bad name, not ASCII; the value may be a secret
                raise ConnectFailed(f"invalid request header {name!r}", url=url) from None
        conn.endheaders(request.body)
        sending = False
        return conn.getresponse(), sock
    except BaseException as exc:
        conn.close()
        if isinstance(exc, (ConnectFailed, _NothingReceived)):
            raise
        if sending and isinstance(exc, ConnectionError):  # reset, broken pipe
            raise _NothingReceived(f"{type(exc).__name__}: {exc}") from None
        if isinstance(exc, TimeoutError):
            raise ConnectFailed(f"timed out: {exc}", url=url) from None
        if isinstance(exc, (OSError, ValueError, http.client.HTTPException)):
            raise ConnectFailed(f"{type(exc).__name__}: {exc}", url=url) from None
        raise


def _finish(
    pool: ConnectionPool, conn: _Connection, response: Any, sock: Any, request: _Request
) -> Reply:
    """Read the body; keep the connection when it can carry another request."""
    try:
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            name, value = name.lower(), value.strip()
            if not value.isascii():  # http.client decodes latin-1; httpx tried UTF-8 first
                try:
                    value = value.encode("latin-1").decode("utf-8")
                except UnicodeError:
                    pass
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body, truncated = _read_body(response, sock, headers, request)
    except BaseException:
        response.close()
        conn.close()
        raise
    if response.isclosed() and not response.will_close and conn.sock is not None:
        pool.give(conn.key, conn)
    else:  # to be closed, or the rest of a truncated body is still on its way
        response.close()
        conn.close()
    return Reply(response.status, headers, body, conn.key[1], truncated)


def _read_body(
    response: Any, sock: Any, headers: dict[str, str], request: _Request
) -> tuple[bytes, bool]:
    """The decoded body and whether it was cut at the cap (``request.truncate``); past the
    cap without ``truncate``, ResponseTooLarge. Stops at the deadline."""
    cap, url = request.cap, request.target.url
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap and not request.truncate:
        raise ResponseTooLarge(f"response declares {declared} bytes (cap {cap})", url=url)
    codings = [c.strip().lower() for c in headers.get("content-encoding", "").split(",")]
    decoders = [Decoder(c) for c in reversed(codings) if c in ("gzip", "deflate")]
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            sock.settimeout(_time_left(request.deadline, url))
            data: bytes = response.read1(READ_CHUNK)
            last, over = not data, False
            for decoder in decoders:  # never more than one byte past the cap held
                data, more = decoder.decode(data, cap - size + 1, last)
                over = over or more
            if over or size + len(data) > cap:
                if not request.truncate:
                    raise ResponseTooLarge(f"response exceeds {cap} bytes", url=url)
                chunks.append(data[: cap - size])
                return b"".join(chunks), True
            chunks.append(data)
            size += len(data)
            if last:
                break
        if response.length:  # the connection ended before Content-Length bytes came
            raise http.client.IncompleteRead(b"", response.length)
        response.read()  # marks a Content-Length or HEAD response as done
    except ConnectFailed as exc:
        raise ConnectFailed(f"{exc.message} reading the response", url=url) from None
    except TimeoutError as exc:
        raise ConnectFailed(f"timed out: {exc}", url=url) from None
    except zlib.error as exc:
        raise ConnectFailed(f"DecodingError: {exc}", url=url) from None
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectFailed(f"{type(exc).__name__}: {exc}", url=url) from None
    return b"".join(chunks), False
