"""A poll's reading side: requests built from a poller's config, sent, parsed, paged.

Everything here reads; nothing is stored (``ihook.polling`` stores). Each request goes
through the SSRF guard (``connectors.outbound.send_request``): a connector's requests
under the connector's policy and timeout, a plain URL's under the install's. The raw
body is parsed by ``ihook.poll_parse`` rather than by ``HttpConnector.request``, which
answers parsed JSON or replacement-decoded text and raises on 4xx/5xx with its own
excerpt: a poll needs the bytes (CSV and NDJSON, charsets, a BOM) and the status of every
page. The connector is still what builds the URL and supplies the auth and default headers.

Any failure raises ``PollFailed`` naming the page (1-based, in the order read).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

import ihook
from connectors import build_connector
from connectors.errors import ConnectFailed, ConnectorError, OutboundRefused, ResponseTooLarge
from connectors.http import HttpConnector
from connectors.outbound import OutboundPolicy, OutboundResponse, send_request
from ihook.models import Connector
from ihook.poll_parse import parse_body
from ihook.secrets import Vault
from ihook.services.connectors import full_config
from workflows.errors import ExpressionError
from workflows.expressions import render, search

DEFAULT_MAX_PAGES = 10
"""Pages one poll may read when the config does not say; one more fails the poll."""
ERROR_BODY_CHARS = 300
"""How much of a non-2xx answer a failed poll quotes."""
MAX_ID_CHARS = 500
"""The longest item identity ``poller_items.item_id`` holds."""


class PollFailed(Exception):
    """Raised when a poll cannot read its source; the message names the page and cause."""

    def __init__(self, message: str, *, http_status: int | None = None, pages: int = 0):
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.pages = pages


@dataclass
class Target:
    """Where a poller's requests go: through its connector, or to plain URLs."""

    policy: OutboundPolicy
    timeout: float
    headers: dict[str, str] = field(default_factory=dict)
    connector: HttpConnector | None = None

    def url(self, request: dict[str, Any], context: dict[str, Any]) -> str:
        """A page's URL from its rendered config: the connector's base + ``path``, or ``url``."""
        if self.connector is None:
            return render(request["url"], context)
        return self.connector.url_for(render(request.get("path", ""), context))


@dataclass
class Fetched:
    """What a poll read: ``(id, item)`` in order, the last page's body, pages and status."""

    entries: list[tuple[str, Any]] = field(default_factory=list)
    last_page: Any = None
    pages: int = 0
    http_status: int | None = None


def target_for(session: Session, vault: Vault, policy: OutboundPolicy, config: dict) -> Target:
    """The target of ``config["request"]``: its http connector, or the install's policy."""
    request = config["request"]
    name = request.get("connector")
    default_headers = {"user-agent": f"ihook/{ihook.__version__}"}
    if not name:
        return Target(policy=policy, timeout=policy.timeout, headers=default_headers)
    row = session.scalar(select(Connector).where(Connector.name == name))
    if row is None:
        raise PollFailed(f"connector {name!r} not found")
    try:
        connector = build_connector(row.kind, full_config(row, vault), policy=policy)
    except ConnectorError as exc:
        raise PollFailed(f"connector {name!r}: {exc}") from None
    if not isinstance(connector, HttpConnector):
        raise PollFailed(f"connector {name!r} is a {row.kind} connector, not http")
    return Target(
        policy=connector.policy,
        timeout=connector.timeout,
        headers={**default_headers, **connector.headers},
        connector=connector,
    )


def fetch(config: dict, target: Target, context: dict[str, Any], *, budget: float) -> Fetched:
    """Read every page of the source; ``budget``: seconds the whole poll may take."""
    deadline = time.monotonic() + budget
    pagination = config.get("pagination") or {}
    max_pages = config.get("max_pages") or pagination.get("max_pages") or DEFAULT_MAX_PAGES
    page_param: str | None = pagination.get("page_param")
    page_size: int | None = pagination.get("page_size")
    number: int | None = pagination.get("first_page", 1) if page_param else None
    fetched = Fetched()
    link: str | None = None  # the next page's URL, from a ``next`` link
    origin: tuple[str, str, int | None] | None = None
    while True:
        index = fetched.pages + 1
        if index > max_pages:
            raise _failed(fetched, f"more than {max_pages} pages (max_pages)")
        url, params, headers, body = _request(fetched, index, config, target, context, number)
        if link is not None:
            url, params = link, {}  # a next link carries its own query
        elif page_param:
            params[page_param] = str(number)
            if page_size and pagination.get("size_param"):
                params[pagination["size_param"]] = str(page_size)
        if params:  # merged by hand: httpx would replace the URL's own query with them
            url = str(httpx.URL(url).copy_merge_params(params))
        origin = origin or _origin(url)
        fetched.http_status = None  # a page that gets no answer has no status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failed(fetched, f"page {index}: the poll took longer than {budget:g}s")
        response = _send(
            fetched,
            index,
            config["request"].get("method", "GET"),
            url,
            target,
            headers={**target.headers, **headers},
            json=body,
            timeout=min(target.timeout, remaining),
        )
        items = _read_page(fetched, index, response, config)
        if "next" in pagination:
            link = _next_url(fetched, index, pagination["next"], response.url, origin)
            if link is None:
                return fetched
        elif number is not None and items and not (page_size and len(items) < page_size):
            number += 1
        else:
            return fetched


def next_cursor(config: dict, fetched: Fetched, before: Any) -> Any:
    """The new watermark from ``config["cursor"]``; None keeps the cursor where it is."""
    expr = config.get("cursor")
    if not expr:
        return None
    data = {
        "items": [item for _, item in fetched.entries],
        "page": fetched.last_page,
        "state": {"cursor": before},
    }
    try:
        return search(expr, data)
    except ExpressionError as exc:
        raise _failed(fetched, f"cursor: {exc}") from None


def _request(
    fetched: Fetched,
    index: int,
    config: dict,
    target: Target,
    context: dict[str, Any],
    number: int | None,
) -> tuple[str, dict[str, str], dict[str, str], Any]:
    """The page's URL, params, headers and JSON body, rendered."""
    request = config["request"]
    ctx = {**context, "page": number}
    try:
        params = {k: render(v, ctx) for k, v in (request.get("params") or {}).items()}
        headers = {k: render(v, ctx) for k, v in (request.get("headers") or {}).items()}
        body = _render_json(request["json"], ctx) if "json" in request else None
        return target.url(request, ctx), params, headers, body
    except Exception as exc:  # the templates are the poller author's: any error is theirs
        raise _failed(fetched, f"page {index}: request: {exc}") from None


def _read_page(fetched: Fetched, index: int, response: OutboundResponse, config: dict) -> list[Any]:
    """Parse a page, add its items with their ids to ``fetched``; the page's items."""
    fetched.pages, fetched.http_status = index, response.status
    expr = config.get("items") or "@"
    try:
        page = parse_body(response.body, response.headers.get("content-type", ""), config)
        items = search(expr, page)
    except (ValueError, ExpressionError) as exc:
        raise _failed(fetched, f"page {index}: {exc}") from None
    if not isinstance(items, list):
        kind = "null" if items is None else type(items).__name__
        raise _failed(fetched, f"page {index}: items ({expr!r}) is {kind}, not a list")
    fetched.last_page = page
    for position, item in enumerate(items, 1):
        fetched.entries.append((_identity(fetched, index, position, item, config), item))
    return items


def _send(
    fetched: Fetched, index: int, method: str, url: str, target: Target, **kwargs: Any
) -> OutboundResponse:
    try:
        response = send_request(method.upper(), url, policy=target.policy, **kwargs)
    except OutboundRefused as exc:
        raise _failed(fetched, f"page {index}: refused by the outbound guard: {exc}") from None
    except ResponseTooLarge as exc:
        raise _failed(fetched, f"page {index}: response too large: {exc}") from None
    except ConnectFailed as exc:
        raise _failed(fetched, f"page {index}: cannot reach {_bare(url)}: {exc}") from None
    except ConnectorError as exc:
        raise _failed(fetched, f"page {index}: {exc}") from None
    if not 200 <= response.status < 300:
        excerpt = response.body[: ERROR_BODY_CHARS * 4].decode("utf-8", "replace")
        excerpt = excerpt[:ERROR_BODY_CHARS].strip()
        message = f"page {index}: HTTP {response.status} from {_bare(response.url)}"
        fetched.http_status = response.status
        raise _failed(fetched, message + (f": {excerpt}" if excerpt else ""))
    return response


def _failed(fetched: Fetched, message: str) -> PollFailed:
    return PollFailed(message, http_status=fetched.http_status, pages=fetched.pages)


def _identity(fetched: Fetched, page: int, position: int, item: Any, config: dict) -> str:
    where = f"page {page}, item {position}"
    try:
        value = search(config["id"], item)
    except ExpressionError as exc:
        raise _failed(fetched, f"{where}: id: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        shown = "missing" if value is None else f"{json.dumps(value)[:50]}, not a string or number"
        raise _failed(fetched, f"{where}: id ({config['id']!r}) is {shown}")
    ident = str(value)
    if len(ident) > MAX_ID_CHARS:
        raise _failed(fetched, f"{where}: id is longer than {MAX_ID_CHARS} characters")
    return ident


def _next_url(
    fetched: Fetched, index: int, expr: str, current: str, origin: tuple[str, str, int | None]
) -> str | None:
    """The next page's URL from ``pagination.next``, resolved against the current page."""
    try:
        link = search(expr, fetched.last_page)
    except ExpressionError as exc:
        raise _failed(fetched, f"page {index}: next: {exc}") from None
    if link is None or link == "":
        return None
    if not isinstance(link, str):
        raise _failed(fetched, f"page {index}: next ({expr!r}) is not a URL: {link!r}"[:300])
    try:
        url = httpx.URL(current).join(link)
    except httpx.InvalidURL as exc:
        raise _failed(fetched, f"page {index}: next link {link!r}: {exc}") from None
    # The request's auth goes to every page: a link elsewhere must not take it along.
    if _origin(str(url)) != origin:
        raise _failed(
            fetched, f"page {index}: next link {_bare(str(url))} leaves the first request's origin"
        )
    return str(url)


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return ("", url, None)
    default = {"http": 80, "https": 443}.get(parsed.scheme)
    return (parsed.scheme, parsed.host, parsed.port or default)


def _bare(url: str) -> str:
    """The URL without its query (which may carry a key) or fragment."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _render_json(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [_render_json(v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render_json(v, context) for k, v in value.items()}
    return value
