"""Checking a poller's definition before it is stored.

``validate`` runs every field given through its check and collects each refusal under
the field's name (``request.url``, ``pagination.page_param``, ``cron``), so one 422 names
them all. What it returns is normalized: defaults filled in, the schedule folded into
``{"interval_seconds": n}`` or ``{"cron": c, "timezone"?: z}``, only the keys that apply
kept (the poll reads ``"json" in request`` and ``"next" in pagination``). A literal URL is
put through the SSRF guard now; a templated one is checked when each poll sends it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import ConnectFailed, ConnectorError
from connectors.outbound import OutboundPolicy, check_url
from ihook.errors import Invalid
from ihook.models import Connector, Poller
from ihook.services.event_types import BUILTIN, MAX_NAME, NAME_PATTERN
from workflows.errors import ExpressionError
from workflows.expressions import check_jmespath, check_template
from workflows.schedule import ScheduleError, parse_schedule

METHODS = ("GET", "POST")
"""How a poller may ask; POST is for sources that take their query as a JSON body."""
FORMATS = ("auto", "json", "ndjson", "csv")
"""How a page's body is read; ``auto`` goes by its Content-Type (JSON otherwise)."""
MODES = ("item", "batch")
"""One event per new item, or one event holding a poll's new items."""
DEFAULT_MAX_PAGES = 10
"""Pages one poll reads when ``max_pages`` is not given."""
MAX_PAGES = 1000
"""The highest ``max_pages``."""
MAX_PAGE_SIZE = 10_000
"""The highest ``pagination.page_size``."""
MAX_TEXT = 2000
"""The longest template or expression."""
MAX_ENTRIES = 50
"""Most ``params`` or ``headers`` a request has."""
MAX_CURSOR_CHARS = 10_000
"""The longest ``initial_cursor``, as JSON."""
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Headers the HTTP client sets itself."""
DEFAULTS: dict[str, Any] = {
    "items": "@",
    "cursor": None,
    "pagination": None,
    "max_pages": DEFAULT_MAX_PAGES,
    "format": "auto",
    "mode": "item",
}
"""What a definition holds when these are not given (``event_type`` follows name and mode)."""
COLUMNS = ("name", "description", "enabled")
"""Body fields stored in their own columns; the rest of the definition is ``config``."""
SCHEDULE_FIELDS = ("interval_seconds", "cron", "timezone")
"""Body fields that make ``config["schedule"]``."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an HTTP header name (RFC 9110)
_TEMPLATE = re.compile(r"\{[{%#]")
_REQUEST_KEYS = {"connector", "path", "url", "method", "params", "headers", "json"}
_PAGE_KEYS = {"page_param", "first_page", "page_size", "size_param"}
_EXPRESSIONS = ("items", "id", "cursor")
_FIELDS = {*COLUMNS, *SCHEDULE_FIELDS, *DEFAULTS, "request", "id", "event_type", "initial_cursor"}


@dataclass
class Checked:
    """A checked body: column values, the whole normalized config, and what else it asks."""

    columns: dict[str, Any]
    config: dict[str, Any]
    schedule_changed: bool
    cursor_given: bool = False
    initial_cursor: Any = None


@dataclass
class _Errors:
    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, reason: str) -> None:
        self.by_field.setdefault(name, []).append(reason)


def default_event_type(name: str, mode: str) -> str:
    """``<name>.item`` or ``<name>.batch``: the type of a poller's events unless it names one."""
    return f"{name}.{mode}"


def validate(
    session: Session,
    fields: dict[str, Any],
    current: Poller | None,
    *,
    policy: OutboundPolicy,
    partial: bool = False,
) -> Checked:
    """Check a create (``current`` None), replace or ``partial`` change; Invalid names each fault.

    A replace gives every definition field left out its default; a partial change keeps
    the stored value of each field left out, and checks only the fields given (so a
    poller whose connector has gone can still be switched off).
    """
    errors = _Errors()
    for name in fields:
        if name not in _FIELDS:
            errors.add(name, "unknown field")
    if not partial:
        for name in ("name", "request", "id"):
            if fields.get(name) is None:
                errors.add(name, "required")
    keep = partial and current is not None
    columns = {
        name: _column(name, fields[name], errors)
        for name in COLUMNS
        if fields.get(name) is not None
    }
    stored = current.config if current is not None else {}
    config: dict[str, Any] = {**DEFAULTS, **(stored if keep else {})}
    if "request" in fields and fields["request"] is not None:
        config["request"] = _request(fields["request"], session, policy, errors)
    for name in _EXPRESSIONS:
        if name in fields and not (name == "id" and fields[name] is None):
            config[name] = _expression(name, fields[name], errors, optional=name == "cursor")
    if "pagination" in fields:
        config["pagination"] = _pagination(fields["pagination"], errors)
    if "max_pages" in fields:
        config["max_pages"] = _whole(fields["max_pages"], 1, MAX_PAGES, "max_pages", errors)
    for name, allowed in (("format", FORMATS), ("mode", MODES)):
        if name in fields:
            config[name] = _choice(fields[name], allowed, name, errors)
    schedule = stored.get("schedule")
    config["schedule"] = _schedule(fields, schedule if keep else None, errors)
    config["event_type"] = _event_type(fields, columns, config, current, errors, keep=keep)
    _check_page_param(config, errors)
    checked = Checked(columns, config, schedule_changed=config["schedule"] != schedule)
    if "initial_cursor" in fields:
        checked.cursor_given = True
        checked.initial_cursor = _cursor_value(fields["initial_cursor"], errors)
    if errors.by_field:
        raise Invalid("invalid poller", errors.by_field)
    columns["event_type"] = config["event_type"]
    return checked


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


def _column(name: str, value: Any, errors: _Errors) -> Any:
    if name == "name":
        if not isinstance(value, str) or not _NAME.match(value):
            errors.add(
                name, "letters, digits, '_', '.', '-'; starting with a letter or digit; at most 100"
            )
        return value
    if name == "description":
        if not isinstance(value, str) or len(value) > 10_000:
            errors.add(name, "must be a string of at most 10000 characters")
        return value
    if not isinstance(value, bool):
        errors.add(name, "must be true or false")
    return value


def _request(
    value: Any, session: Session, policy: OutboundPolicy, errors: _Errors
) -> dict[str, Any]:
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


def _connector(name: Any, session: Session, errors: _Errors) -> Any:
    if not isinstance(name, str) or not name:
        errors.add("request.connector", "must be a connector's name")
        return name
    row = session.scalar(select(Connector).where(Connector.name == name))
    if row is None:
        errors.add("request.connector", f"no connector named {name!r}")
    elif row.kind != "http":
        errors.add("request.connector", f"{name!r} is a {row.kind} connector, not http")
    return name


def _path(value: Any, errors: _Errors) -> Any:
    if not _template(value, "request.path", errors) or _TEMPLATE.search(value):
        return value
    if "://" in value.split("?", 1)[0] or value.startswith("//"):
        errors.add("request.path", "must be relative to the connector's base URL")
    return value


def _url(value: Any, policy: OutboundPolicy, errors: _Errors) -> Any:
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


def _template(value: Any, name: str, errors: _Errors) -> bool:
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


def _pairs(value: Any, name: str, errors: _Errors, *, headers: bool = False) -> dict[str, str]:
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
            sub = _Errors()
            if _template(given, key, sub):
                out[key] = given
            for reason in sub.by_field.get(key, []):
                errors.add(name, f"{key}: {reason}")
        seen.add(key.lower())
    return out


def _json_templates(value: Any, where: str, errors: _Errors) -> None:
    if isinstance(value, str):
        sub = _Errors()
        _template(value, where, sub)
        for reason in sub.by_field.get(where, []):
            errors.add("request.json", f"{where}: {reason}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_templates(item, f"{where}[{index}]", errors)
    elif isinstance(value, dict):
        for key, item in value.items():
            _json_templates(item, f"{where}.{key}", errors)


def _expression(name: str, value: Any, errors: _Errors, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(name, "must be a jmespath expression")
    elif len(value) > MAX_TEXT:
        errors.add(name, f"at most {MAX_TEXT} characters")
    else:
        try:
            check_jmespath(value)
        except ExpressionError as exc:
            errors.add(name, str(exc))
    return value


def _whole(value: Any, least: int, most: int | None, name: str, errors: _Errors) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(name, "must be a whole number")
    elif value < least or (most is not None and value > most):
        errors.add(name, f"from {least} to {most}" if most is not None else f"at least {least}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], name: str, errors: _Errors) -> Any:
    if value not in allowed:
        errors.add(name, f"must be one of {', '.join(allowed)}")
    return value


def _pagination(value: Any, errors: _Errors) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.add("pagination", "must be null, {next} or {page_param, first_page, page_size}")
        return None
    for key in value:
        if key != "next" and key not in _PAGE_KEYS:
            errors.add(f"pagination.{key}", "unknown field")
    if "next" in value:
        if "page_param" in value:
            errors.add("pagination", "give next or page_param, not both")
        for key in sorted(_PAGE_KEYS & set(value) - {"page_param"}):
            errors.add(f"pagination.{key}", "only with page_param")
        return {"next": _expression("pagination.next", value["next"], errors)}
    if "page_param" not in value:
        errors.add("pagination", "needs next (a jmespath to the next link) or page_param")
        return None
    param = value["page_param"]
    if not isinstance(param, str) or not 1 <= len(param) <= 200:
        errors.add("pagination.page_param", "must be a query parameter's name")
    out = {
        "page_param": param,
        "first_page": _whole(value.get("first_page", 1), 0, None, "pagination.first_page", errors),
    }
    if value.get("page_size") is not None:
        out["page_size"] = _whole(
            value["page_size"], 1, MAX_PAGE_SIZE, "pagination.page_size", errors
        )
    if value.get("size_param") is not None:
        size = value["size_param"]
        if not isinstance(size, str) or not 1 <= len(size) <= 200:
            errors.add("pagination.size_param", "must be a query parameter's name")
        elif "page_size" not in out:
            errors.add("pagination.size_param", "needs page_size")
        elif size == param:
            errors.add("pagination.size_param", "must differ from page_param")
        out["size_param"] = size
    return out


def _check_page_param(config: dict[str, Any], errors: _Errors) -> None:
    pagination = config.get("pagination") or {}
    params = (config.get("request") or {}).get("params") or {}
    for key in ("page_param", "size_param"):
        if pagination.get(key) in params:
            errors.add(f"pagination.{key}", "also in request.params: the poll sets it")


def _schedule(
    fields: dict[str, Any], stored: dict[str, Any] | None, errors: _Errors
) -> dict[str, Any] | None:
    """The schedule given (``stored`` is the one a partial change starts from)."""
    given = {k: fields[k] for k in SCHEDULE_FIELDS if fields.get(k) is not None}
    spec: dict[str, Any]
    if "interval_seconds" in given and "cron" in given:
        for name in ("interval_seconds", "cron"):
            errors.add(name, "give interval_seconds or cron, not both")
        return stored
    if "interval_seconds" in given:
        if "timezone" in given:
            errors.add("timezone", "only with cron")
        spec = {"interval_seconds": given["interval_seconds"]}
    elif "cron" in given:
        spec = {"cron": given["cron"]}
        zone = given.get("timezone", (stored or {}).get("timezone"))  # a cron change keeps it
        if zone is not None:
            spec["timezone"] = zone
    elif "timezone" in given:
        if stored is None or "cron" not in stored:
            errors.add("timezone", "only with cron")
            return stored
        spec = {"cron": stored["cron"], "timezone": given["timezone"]}
    elif stored is not None:
        return stored
    else:
        errors.add("interval_seconds", "required unless cron is given (at least 5 seconds)")
        errors.add("cron", "required unless interval_seconds is given")
        return None
    try:
        parse_schedule(spec)
    except ScheduleError as exc:
        errors.add(exc.field.removeprefix("schedule."), str(exc))
    return spec


def _event_type(
    fields: dict[str, Any],
    columns: dict[str, Any],
    config: dict[str, Any],
    current: Poller | None,
    errors: _Errors,
    *,
    keep: bool,
) -> Any:
    """The type given; else the default, unless a partial change keeps a chosen one."""
    value = fields.get("event_type")
    if value is not None:
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_NAME:
            errors.add("event_type", f"1 to {MAX_NAME} characters")
        elif "*" in value or not re.fullmatch(NAME_PATTERN, value):
            errors.add(
                "event_type", "letters, digits, '_', '.', ':', '-'; starting with a letter or digit"
            )
        elif value in BUILTIN:
            errors.add("event_type", f"{value!r} is a built-in event type")
        return value
    if keep and current is not None:
        old_default = default_event_type(current.name, current.config.get("mode", "item"))
        if current.event_type != old_default:
            return current.event_type
    name = columns.get("name", current.name if current is not None else None)
    return default_event_type(name, config["mode"]) if isinstance(name, str) else None


def _cursor_value(value: Any, errors: _Errors) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        errors.add("initial_cursor", "must be a JSON value")
        return None
    if len(text) > MAX_CURSOR_CHARS:
        errors.add("initial_cursor", f"at most {MAX_CURSOR_CHARS} characters as JSON")
    return value
