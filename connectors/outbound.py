"""The SSRF guard every outgoing request goes through.

Each hop is checked before it is sent: the scheme must be allowed, and every address the
host resolves to must be public (unless ``OutboundPolicy.allow_private``). The request is
then sent to the address that was checked — the URL's host is replaced by the IP, the
``Host`` header and TLS SNI keep the real name — so DNS cannot change between the check
and the connect (DNS rebinding). Redirects are followed by hand, each hop re-checked.
The body is streamed and cut off at ``max_response_bytes`` (decoded): the request fails
there, or with ``truncate_response`` the body is cut there and the rest left unread.

Requests go through the pooled keep-alive ``http.client`` transport of
``connectors.outbound_pool``, or through the ``httpx.Client`` a caller passes.
"""

from __future__ import annotations

import functools
import ipaddress
import json as jsonlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from connectors import outbound_pool
from connectors.errors import (
    ConnectFailed,
    ConnectorError,
    OutboundRefused,
    RemoteError,
    ResponseTooLarge,
)

__all__ = [
    "OutboundPolicy",
    "OutboundResponse",
    "check_url",
    "is_refused_address",
    "raise_for_status",
    "send_request",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
"""Statuses whose ``Location`` is followed (by hand)."""
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
"""Cloud instance-metadata services: never reachable without ``allow_private``."""
CGNAT = ipaddress.ip_network("100.64.0.0/10")
"""Carrier-grade NAT space: not global, yet not flagged private by ``ipaddress``."""
NAT64 = ipaddress.ip_network("64:ff9b::/96")
"""Well-known NAT64 prefix: the last 32 bits are an IPv4 address."""
ERROR_EXCERPT_CHARS = 200
"""How much of an error response's body ``raise_for_status`` quotes."""


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
    """A longer response body (once decoded) raises ResponseTooLarge, unless
    ``truncate_response``."""
    truncate_response: bool = False
    """Cut a body longer than ``max_response_bytes`` there instead of raising: the rest is
    never read or decoded (its connection is closed) and ``OutboundResponse.truncated``
    says so. For callers that keep only an excerpt (outgoing webhook deliveries)."""
    max_redirects: int = 5
    """Redirects are followed by hand, each hop checked by the guard. With 0 none is
    followed: the 3xx is the answer (its status and ``Location`` kept); past N > 0 the
    request is refused."""


@dataclass
class OutboundResponse:
    """What came back: status, headers (lower-case names), body bytes, final URL, timing."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    elapsed_ms: float
    extra: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    """The body was cut at the policy's ``max_response_bytes`` (``truncate_response``)."""

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return jsonlib.loads(self.body)
        except ValueError:
            return None


def is_refused_address(address: str) -> bool:
    """True when ``address`` is not a public unicast address (or not an address at all)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address are judged by that address.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_refused_address(str(embedded))
    return (
        ip in METADATA_ADDRESSES
        or not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_private
        or (ip.version == 4 and ip in CGNAT)
    )


def check_url(url: str | httpx.URL, policy: OutboundPolicy) -> list[str]:
    """Check one hop; return the addresses its host resolves to, all of them allowed.

    Raises OutboundRefused for a bad scheme, a missing host or a private address (unless
    allowed), and ConnectFailed when the host does not resolve.
    """
    target = _parse(url)
    allowed = ("http", "https") if policy.allow_http else ("https",)
    if target.scheme not in allowed:
        raise OutboundRefused(f"scheme {target.scheme or '(none)'!r} not allowed", url=str(url))
    if not target.host:
        raise OutboundRefused("URL has no host", url=str(url))
    host = target.raw_host.decode("ascii").strip("[]")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConnectFailed(f"cannot resolve {host}: {exc}", url=str(url)) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    refused = [] if policy.allow_private else [a for a in addresses if is_refused_address(a)]
    if refused or not addresses:
        raise OutboundRefused(
            f"{host} resolves to a private or reserved address ({', '.join(refused)})",
            url=str(url),
        )
    return addresses


@functools.lru_cache(maxsize=1024)
def parse_url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, kept per string: the same few URLs are sent to again and again,
    and parsing one costs more than the rest of the checks. Raises ``httpx.InvalidURL``."""
    return httpx.URL(url)


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        return url if isinstance(url, httpx.URL) else parse_url(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundRefused(f"invalid URL: {exc}", url=str(url)) from None


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

    Without ``client`` the pooled keep-alive transport of ``outbound_pool`` sends it (no
    cookies kept, no proxies from the environment); with one, that ``httpx.Client`` does.
    Raises OutboundRefused, ConnectFailed or ResponseTooLarge (unless the policy truncates);
    never raises for a status code (the caller decides: see ``raise_for_status``).
    """
    seconds = policy.timeout if timeout is None else timeout
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    method = method.upper()
    sent_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    current = str(url)
    for hop in range(policy.max_redirects + 1):
        target = _parse(current)  # parsed once, for the check and for the request
        addresses = check_url(target, policy)
        hop_params = params if hop == 0 else None
        if client is None:
            if hop_params is not None:  # as httpx did: params, even {}, replace the query
                target = httpx.URL(current, params=hop_params)
            status, got, body, address, truncated = outbound_pool.send(
                method,
                _pool_target(target),
                addresses,
                headers=sent_headers,
                content=content,
                json=json,
                deadline=deadline,
                max_body=policy.max_response_bytes,
                truncate=policy.truncate_response,
            )
        else:
            request = client.build_request(
                method,
                current,
                headers=sent_headers,
                params=hop_params,
                content=content,
                json=json,
                timeout=httpx.Timeout(seconds),
            )
            response, (body, truncated), address = _send_pinned(
                client, request, addresses, policy, deadline
            )
            target, status = request.url, response.status_code
            got = {k.lower(): v for k, v in response.headers.items()}
        if status not in REDIRECT_STATUSES or "location" not in got or not policy.max_redirects:
            return OutboundResponse(
                status=status,
                headers=got,
                body=body,
                url=str(target),
                elapsed_ms=(time.perf_counter() - started) * 1000,
                extra={"redirects": hop, "address": address},
                truncated=truncated,
            )
        following = target.join(got["location"])
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, content, json = "GET", None, None
            sent_headers = {
                k: v
                for k, v in sent_headers.items()
                if k.lower() not in ("content-type", "content-length")
            }
        origin = (target.scheme, target.host, target.port)
        if (following.scheme, following.host, following.port) != origin:
            # Credentials go only to the origin they were given for.
            sent_headers = {
                k: v
                for k, v in sent_headers.items()
                if k.lower() not in ("authorization", "cookie", "proxy-authorization")
            }
        current = str(following)
    raise OutboundRefused(f"more than {policy.max_redirects} redirects", url=str(url))


def _pool_target(url: httpx.URL) -> outbound_pool.Target:
    """What the pooled transport needs of a hop's URL, parsed as the guard parsed it."""
    return outbound_pool.Target(
        scheme=url.scheme,
        host=url.raw_host.decode("ascii").strip("[]"),
        port=url.port or (443 if url.scheme == "https" else 80),
        authority=url.netloc.decode("ascii"),
        path=url.raw_path.decode("ascii"),
        url=str(url),
    )


def _send_pinned(
    http: httpx.Client,
    request: httpx.Request,
    addresses: list[str],
    policy: OutboundPolicy,
    deadline: float,
) -> tuple[httpx.Response, tuple[bytes, bool], str]:
    """Send ``request`` to one of the checked ``addresses``, reading at most the cap; the
    response, its body and whether that was cut, and the address used."""
    url = request.url
    last_error: Exception | None = None
    for address in addresses:
        headers = httpx.Headers(request.headers)
        headers["host"] = url.netloc.decode("ascii")
        pinned = httpx.Request(
            request.method,
            url.copy_with(host=address),
            headers=headers,
            content=request.content,
            extensions=dict(request.extensions),
        )
        if url.scheme == "https":
            # Verify the certificate against the real name, not the IP.
            pinned.extensions["sni_hostname"] = url.raw_host.decode("ascii").strip("[]")
        try:
            response = http.send(pinned, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            last_error = exc  # try the next checked address
            continue
        except httpx.TimeoutException as exc:
            raise ConnectFailed(f"timed out: {exc}", url=str(url)) from None
        except httpx.HTTPError as exc:
            raise ConnectFailed(f"{type(exc).__name__}: {exc}", url=str(url)) from None
        try:
            return response, _read_capped(response, policy, deadline, str(url)), address
        finally:
            response.close()
    raise ConnectFailed(f"cannot connect: {last_error}", url=str(url))


def _read_capped(
    response: httpx.Response, policy: OutboundPolicy, deadline: float, url: str
) -> tuple[bytes, bool]:
    """Read the (decoded) body, refusing more than the cap (or cutting it there, with
    ``truncate_response``) and stopping at the deadline; the body and whether it was cut."""
    cap = policy.max_response_bytes
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap and not policy.truncate_response:
        raise ResponseTooLarge(f"response declares {declared} bytes (cap {cap})", url=url)
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            if size + len(chunk) > cap:
                if not policy.truncate_response:
                    raise ResponseTooLarge(f"response exceeds {cap} bytes", url=url)
                chunks.append(chunk[: cap - size])
                return b"".join(chunks), True
            size += len(chunk)
            if time.monotonic() > deadline:
                raise ConnectFailed("timed out reading the response", url=url)
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise ConnectFailed(f"timed out: {exc}", url=url) from None
    except httpx.HTTPError as exc:
        raise ConnectFailed(f"{type(exc).__name__}: {exc}", url=url) from None
    return b"".join(chunks), False


def raise_for_status(response: OutboundResponse) -> None:
    """Raise RemoteError for 5xx/429 (retryable) and ConnectorError for other 4xx."""
    status = response.status
    if status < 400:
        return
    excerpt = response.body[:ERROR_EXCERPT_CHARS].decode("utf-8", "replace").strip()
    message = f"HTTP {status} from {response.url}" + (f": {excerpt}" if excerpt else "")
    if status >= 500 or status == 429:
        raise RemoteError(message, url=response.url, status=status)
    raise ConnectorError(message, url=response.url, status=status)
