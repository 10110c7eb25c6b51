"""Checking a poller's ``request``: where it goes, how it asks, what it sends.

``check_request`` normalizes ``{connector, path}`` or ``{url}`` with ``method``,
``params``, ``headers`` and a POST's ``json``, each template compiled now. A literal URL
is put through the SSRF guard now (``check_literal_url``); a templated one is checked
when each poll sends it. Refusals go into a ``FieldErrors`` under ``request.<field>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import ConnectFailed, ConnectorError
from connectors.outbound import OutboundPolicy, check_url
from ihook.models import Connector
from workflows.errors import ExpressionError
from workflows.expressions import check_template

METHODS = ("GET", "POST")
"""How a poller may ask; POST is for sources that take their query as a JSON body."""
MAX_TEXT = 2000
"""The longest template or expression."""
MAX_ENTRIES = 50
"""Most ``params`` or ``headers`` a request has."""
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers the HTTP client sets itself."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an HTTP header name (RFC 9110)
_TEMPLATE = re.compile(r"\{[{%#]")
_REQUEST_KEYS = {"connector", "path", "url", "method", "params", "headers", "json"}


@dataclass
class FieldErrors:
    """Refusals collected under each field's name, for one ``Invalid``."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, reason: str) -> None:
        self.by_field.setdefault(name, []).append(reason)


def check_literal_url(url: str, policy: OutboundPolicy) -> str | None:
    """Why ihook may not poll a URL with no template syntax, or None when it may."""
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"invalid URL: {exc}"
    if target.scheme not in ("http", "https") or not target.host:
        return "must be an absolute http:// or https:// URL"
    if target.userinfo:
        return "credentials in the URL are not allowed: use a connector with auth"
    try:
        check_url(target, policy)
    except ConnectFailed as exc:
        return f"{target.host} does not resolve ({exc.message})"
    except ConnectorError as exc:
        return f"refused by the outbound guard: {exc.message}"
    return None


def check_request(
    value: Any, session: Session, policy: OutboundPolicy, errors: FieldErrors
) -> dict[str, Any]:
    """``request`` normalized: connector and path, or url; method, params, headers, json."""
    if not isinstance(value, dict):
        errors.add("request", "must be an object: {connector, path} or {url}, with method etc.")
        return {}
    for key in value:
        if key not in _REQUEST_KEYS:
            errors.add(f"request.{key}", "unknown field")
    connector, url = value.get("connector"), value.get("url")
    method = value.get("method", "GET")
    method = method.upper() if isinstance(method, str) else method
    if method not in METHODS:
        errors.add("request.method", "must be GET or POST")
    out: dict[str, Any] = {}
    if connector is not None and url is not None:
        errors.add("request", "give connector or url, not both")
    elif connector is not None:
        out["connector"] = _connector(connector, session, errors)
        out["path"] = _path(value.get("path", ""), errors)
    elif url is not None:
        out["url"] = _url(url, policy, errors)
        if "path" in value:
            errors.add("request.path", "only with a connector: put the path in url")
    else:
        errors.add("request", "needs a connector (an http connector's name) or a url")
    out["method"] = method
    out["params"] = _pairs(value.get("params"), "request.params", errors)
    out["headers"] = _pairs(value.get("headers"), "request.headers", errors, headers=True)
    if value.get("json") is not None:
        if method != "POST":
            errors.add("request.json", "a body is sent with POST only")
        _json_templates(value["json"], "$", errors)
        out["json"] = value["json"]
    return out


def _connector(name: Any, session: Session, errors: FieldErrors) -> Any:
    if not isinstance(name, str) or not name:
        errors.add("request.connector", "must be a connector's name")
        return name
    row = session.scalar(select(Connector).where(Connector.name == name))
    if row is None:
        errors.add("request.connector", f"no connector named {name!r}")
    elif row.kind != "http":
        errors.add("request.connector", f"{name!r} is a {row.kind} connector, not http")
    return name


def _path(value: Any, errors: FieldErrors) -> Any:
    if not _template(value, "request.path", errors) or _TEMPLATE.search(value):
        return value
    if "://" in value.split("?", 1)[0] or value.startswith("//"):
        errors.add("request.path", "must be relative to the connector's base URL")
    return value


def _url(value: Any, policy: OutboundPolicy, errors: FieldErrors) -> Any:
    if not _template(value, "request.url", errors):
        return value
    if not value:
        errors.add("request.url", "must be an absolute http:// or https:// URL")
    elif _TEMPLATE.search(value):
        if not value.startswith("{") and not value.lower().startswith(("http://", "https://")):
            errors.add("request.url", "must be an absolute http:// or https:// URL")
    elif (reason := check_literal_url(value, policy)) is not None:
        errors.add("request.url", reason)
    return value


def _template(value: Any, name: str, errors: FieldErrors) -> bool:
    """True when ``value`` is a template of acceptable length that compiles."""
    if not isinstance(value, str):
        errors.add(name, "must be a string (a template)")
        return False
    if len(value) > MAX_TEXT:
        errors.add(name, f"at most {MAX_TEXT} characters")
        return False
    try:
        check_template(value)
    except ExpressionError as exc:
        errors.add(name, str(exc))
        return False
    return True


def _pairs(value: Any, name: str, errors: FieldErrors, *, headers: bool = False) -> dict[str, str]:
    """``{name: template}``; numbers are taken as their text."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
        errors.add(name, f"must be an object of at most {MAX_ENTRIES} {{name: template}}")
        return {}
    out: dict[str, str] = {}
    seen: set[str] = set()
    for key, given in value.items():
        if isinstance(given, int | float) and not isinstance(given, bool):
            given = str(given)
        if headers and not _TOKEN.match(key):
            errors.add(name, f"{key!r} is not a valid header name")
        elif headers and key.lower() in RESERVED_HEADERS:
            errors.add(name, f"{key}: set by the HTTP client itself")
        elif headers and key.lower() in seen:
            errors.add(name, f"{key}: given twice")
        elif not key or len(key) > 200:
            errors.add(name, "names are 1 to 200 characters")
        elif not isinstance(given, str):
            errors.add(name, f"{key}: must be a string (a template)")
        else:
            sub = FieldErrors()
            if _template(given, key, sub):
                out[key] = given
            for reason in sub.by_field.get(key, []):
                errors.add(name, f"{key}: {reason}")
        seen.add(key.lower())
    return out


def _json_templates(value: Any, where: str, errors: FieldErrors) -> None:
    if isinstance(value, str):
        sub = FieldErrors()
        _template(value, where, sub)
        for reason in sub.by_field.get(where, []):
            errors.add("request.json", f"{where}: {reason}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_templates(item, f"{where}[{index}]", errors)
    elif isinstance(value, dict):
        for key, item in value.items():
            _json_templates(item, f"{where}.{key}", errors)
