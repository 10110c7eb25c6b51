"""Checking a poller's definition before it is stored.

``validate`` runs every field given through its check and collects each refusal under
the field's name (``request.url``, ``pagination.page_param``, ``cron``), so one 422 names
them all. What it returns is normalized: defaults filled in, the schedule folded into
``{"interval_seconds": n}`` or ``{"cron": c, "timezone"?: z}``, only the keys that apply
kept (the poll reads ``"json" in request`` and ``"next" in pagination``). The checks of
``request`` (and the SSRF check of a literal URL) are in ``poller_request``; the schedule,
items, id, cursor, pagination, mode and event type are checked here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from connectors.outbound import OutboundPolicy
from ihook.errors import Invalid
from ihook.models import Poller
from ihook.services.event_types import BUILTIN, MAX_NAME, NAME_PATTERN
from ihook.services.poller_request import (
    MAX_TEXT,
    METHODS,
    FieldErrors,
    check_literal_url,
    check_request,
)
from workflows.errors import ExpressionError
from workflows.expressions import check_jmespath
from workflows.schedule import ScheduleError, parse_schedule

__all__ = [
    "COLUMNS",
    "DEFAULTS",
    "DEFAULT_MAX_PAGES",
    "FORMATS",
    "MAX_CURSOR_CHARS",
    "MAX_PAGES",
    "MAX_PAGE_SIZE",
    "METHODS",
    "MODES",
    "SCHEDULE_FIELDS",
    "Checked",
    "check_literal_url",
    "default_event_type",
    "validate",
]

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
MAX_CURSOR_CHARS = 10_000
"""The longest ``initial_cursor``, as JSON."""
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
    errors = FieldErrors()
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
        config["request"] = check_request(fields["request"], session, policy, errors)
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


def _column(name: str, value: Any, errors: FieldErrors) -> Any:
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


def _expression(name: str, value: Any, errors: FieldErrors, *, optional: bool = False) -> Any:
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


def _whole(value: Any, least: int, most: int | None, name: str, errors: FieldErrors) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(name, "must be a whole number")
    elif value < least or (most is not None and value > most):
        errors.add(name, f"from {least} to {most}" if most is not None else f"at least {least}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], name: str, errors: FieldErrors) -> Any:
    if value not in allowed:
        errors.add(name, f"must be one of {', '.join(allowed)}")
    return value


def _pagination(value: Any, errors: FieldErrors) -> dict[str, Any] | None:
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


def _check_page_param(config: dict[str, Any], errors: FieldErrors) -> None:
    pagination = config.get("pagination") or {}
    params = (config.get("request") or {}).get("params") or {}
    for key in ("page_param", "size_param"):
        if pagination.get(key) in params:
            errors.add(f"pagination.{key}", "also in request.params: the poll sets it")


def _schedule(
    fields: dict[str, Any], stored: dict[str, Any] | None, errors: FieldErrors
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
    errors: FieldErrors,
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


def _cursor_value(value: Any, errors: FieldErrors) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        errors.add("initial_cursor", "must be a JSON value")
        return None
    if len(text) > MAX_CURSOR_CHARS:
        errors.add("initial_cursor", f"at most {MAX_CURSOR_CHARS} characters as JSON")
    return value
