"""Checking a subscription's settings before they are stored.

``validate`` runs each given field through its check (``_CHECKS``, plus ``auth`` and
``headers``, whose secret parts it splits off), then ``check_target`` on the URL: the
scheme rules for the environment and the SSRF guard. ``check_target`` runs again before
every delivery.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import httpx

from connectors.errors import ConnectFailed, ConnectorError
from connectors.outbound import OutboundPolicy, check_url, parse_url
from ihook.errors import Invalid
from ihook.models import Subscription
from ihook.secrets import Vault
from workflows.errors import ExpressionError
from workflows.expressions import compile_jmespath

ENVIRONMENTS = ("live", "sandbox")
"""Where a subscription sends: ``sandbox`` ones may use plain http."""
AUTH_TYPES = ("none", "basic", "bearer")
"""How a subscription authenticates to its receiver."""
MAX_RETRY_ATTEMPTS = 20
"""The longest retry schedule."""
MAX_RETRY_DELAY = 2 * 86_400
"""The longest wait before one attempt."""
RESERVED_HEADERS = frozenset(
    "webhook-id webhook-timestamp webhook-signature content-type content-length host "
    "user-agent authorization transfer-encoding connection".split()
)
"""Headers ihook sets itself (``authorization`` comes from ``auth``)."""
REDACTED = "***"
"""What answers show for a header value; given back in an update, it keeps the stored one."""
MAX_URL_CHARS = 2000
"""The longest target URL."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_EVENT_PATTERN = re.compile(r"^[A-Za-z0-9._:*-]{1,200}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")  # an HTTP header name (RFC 9110)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_REQUIRED = ("name", "url", "event_types")
_AUTH_KEYS = {
    "none": {"type"},
    "basic": {"type", "username", "password"},
    "bearer": {"type", "token"},
}


class _Bad(Exception):
    """A field's value is refused; ``reasons`` say why."""

    def __init__(self, *reasons: str):
        super().__init__(*reasons)
        self.reasons = list(reasons)


def validate(
    fields: dict[str, Any],
    sub: Subscription | None,
    vault: Vault,
    *,
    allow_http: bool,
    policy: OutboundPolicy,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Checked column values, and the new secrets when ``auth`` or ``headers`` was given."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    if sub is None:
        errors.update({name: ["required"] for name in _REQUIRED if fields.get(name) is None})
    for name, value in fields.items():
        check = _CHECKS.get(name)
        if check is None:
            if name not in ("auth", "headers"):
                errors[name] = ["unknown field"]
            continue
        try:
            values[name] = check(value)
        except _Bad as exc:
            errors[name] = exc.reasons
    secrets: dict[str, Any] | None = None
    if "auth" in fields or "headers" in fields:
        secrets = stored_secrets(sub, vault) if sub is not None else _no_secrets()
        if "auth" in fields:
            try:
                values["auth"], secrets["auth"] = _auth(fields["auth"], sub, secrets["auth"])
            except _Bad as exc:
                errors["auth"] = exc.reasons
        if "headers" in fields:
            try:
                values["header_names"], secrets["headers"] = _headers(
                    fields["headers"], secrets["headers"]
                )
            except _Bad as exc:
                errors["headers"] = exc.reasons
    if ("url" in values or "environment" in values) and "url" not in errors:
        url: str = values["url"] if "url" in values else sub.url if sub else ""
        environment = values.get("environment", sub.environment if sub else "live")
        try:
            check_target(url, environment, allow_http=allow_http, policy=policy)
        except Invalid as exc:
            errors["url"] = exc.errors["url"]
    if errors:
        raise Invalid("invalid subscription", errors)
    return values, secrets


def check_target(
    url: str, environment: str, *, allow_http: bool, policy: OutboundPolicy, resolve: bool = True
) -> None:
    """Raise Invalid (``{"url": [reason]}``) unless ihook may send to ``url``.

    https is required unless the subscription is ``sandbox`` or the install allows http;
    no credentials in the URL; then (``resolve``) the SSRF guard resolves the host and
    refuses loopback, private, link-local and metadata addresses unless ``policy`` allows
    them. A host that does not resolve is refused too (``__cause__`` is then
    ConnectFailed, which at send time is worth retrying). A sender, whose request goes
    through the guard anyway, checks the rules only (``resolve=False``).
    """
    try:
        target = _parse_target(url, environment, allow_http=allow_http)
        if resolve:
            check_url(target, replace(policy, allow_http=True))
    except _Bad as exc:
        raise Invalid(f"URL refused: {exc.reasons[0]}", {"url": exc.reasons}) from None
    except ConnectFailed as exc:
        host = target.host or url
        reason = f"{host} does not resolve ({exc.message})"
        raise Invalid(f"URL refused: {reason}", {"url": [reason]}) from exc
    except ConnectorError as exc:
        raise Invalid(f"URL refused: {exc.message}", {"url": [exc.message]}) from exc


def _parse_target(url: Any, environment: str, *, allow_http: bool) -> httpx.URL:
    if not isinstance(url, str) or not url:
        raise _Bad("must be a URL")
    if len(url) > MAX_URL_CHARS:
        raise _Bad(f"at most {MAX_URL_CHARS} characters")
    if _UNSAFE.search(url) or " " in url:
        raise _Bad("spaces and control characters are not allowed")
    try:
        target = parse_url(url)
    except httpx.InvalidURL as exc:
        raise _Bad(f"invalid URL: {exc}") from None
    if target.scheme == "http" and not (environment == "sandbox" or allow_http):
        raise _Bad(
            "must be https: plain http is allowed for sandbox subscriptions, or when the "
            "install allows it (IHOOK_ALLOW_HTTP)"
        )
    if target.scheme not in ("http", "https"):
        raise _Bad("must be an https:// URL")
    if not target.host:
        raise _Bad("the URL has no host")
    if target.userinfo:
        raise _Bad("credentials in the URL are not allowed: use auth")
    if target.port is not None and not 0 < target.port < 65_536:
        raise _Bad(f"invalid URL: port {target.port} is out of range")
    return target


def stored_secrets(sub: Subscription, vault: Vault) -> dict[str, Any]:
    """The decrypted ``{"auth": {…}, "headers": {name: value}}`` of a subscription."""
    if not sub.secrets_enc:
        return _no_secrets()
    return {**_no_secrets(), **json.loads(vault.decrypt(sub.secrets_enc))}


def _no_secrets() -> dict[str, Any]:
    return {"auth": {}, "headers": {}}


def _text(value: Any, *, most: int, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be {what}")
    if len(value) > most:
        raise _Bad(f"at most {most} characters")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _Bad("letters, digits, '_', '.', '-'; starting with a letter or digit; at most 100")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _environment(value: Any) -> str:
    if value not in ENVIRONMENTS:
        raise _Bad(f"must be one of {', '.join(ENVIRONMENTS)}")
    return str(value)


def _event_types(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _Bad("must be a non-empty list of event types or patterns")
    bad = [p for p in value if not isinstance(p, str) or not _EVENT_PATTERN.match(p)]
    if bad:
        raise _Bad(
            *(f"{p!r}: 1-200 letters, digits, '.', '_', ':', '-' or '*' wildcards" for p in bad)
        )
    return list(dict.fromkeys(value))


def _expression(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad("must be a jmespath expression")
    try:
        compile_jmespath(value)
    except ExpressionError as exc:
        raise _Bad(str(exc)) from None
    return value


def _filter(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _expression(value)


def _mapping(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad("must be an object of {name: jmespath}")
    reasons = []
    for name, expression in value.items():
        try:
            if not isinstance(name, str) or not name:
                raise _Bad("names must be non-empty strings")
            _text(name, most=200)
            _expression(expression)
        except _Bad as exc:
            reasons.append(f"{name}: {exc.reasons[0]}")
    if reasons:
        raise _Bad(*reasons)
    return dict(value) or None


def _fixed_data(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise _Bad("must be an object")
    return value or None


def _emails(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 20:
        raise _Bad("must be a list of at most 20 email addresses")
    bad = [a for a in value if not isinstance(a, str) or len(a) > 254 or not _EMAIL.match(a)]
    if bad:
        raise _Bad(*(f"{a!r} is not an email address" for a in bad))
    return list(dict.fromkeys(value))


def _retry_schedule(value: Any) -> list[int]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RETRY_ATTEMPTS:
        raise _Bad(f"must be a list of 1 to {MAX_RETRY_ATTEMPTS} waits in seconds")
    for wait in value:
        if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= MAX_RETRY_DELAY:
            raise _Bad(f"each wait is a whole number of seconds from 0 to {MAX_RETRY_DELAY}")
    return list(value)


def _auth(
    value: Any, sub: Subscription | None, stored: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The public part (``{type, username?}``) and the secret part of an auth rule."""
    if not isinstance(value, dict) or value.get("type") not in AUTH_TYPES:
        raise _Bad(f"must be an object whose type is one of {', '.join(AUTH_TYPES)}")
    kind = value["type"]
    extra = sorted(set(value) - _AUTH_KEYS[kind])
    if extra:
        raise _Bad(*(f"{kind} auth takes no {key!r}" for key in extra))
    same_kind = sub is not None and sub.auth.get("type") == kind
    if kind == "none":
        return {"type": "none"}, {}
    if kind == "basic":
        username = value.get("username")
        if not isinstance(username, str) or not username or ":" in username:
            raise _Bad("basic auth needs a username (without ':')")
        password = value.get("password")
        if password is None and same_kind and "password" in stored:
            password = stored["password"]
        if not isinstance(password, str) or not password or _UNSAFE.search(password):
            raise _Bad("basic auth needs a password")
        return {"type": "basic", "username": _text(username, most=200)}, {"password": password}
    token = value.get("token")
    if token is None and same_kind and "token" in stored:
        token = stored["token"]
    if not isinstance(token, str) or not token or _UNSAFE.search(token) or len(token) > 4096:
        raise _Bad("bearer auth needs a token (at most 4096 characters, one line)")
    return {"type": "bearer"}, {"token": token}


def _headers(value: Any, stored: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The header names in order, and their values (``***`` keeps the stored value)."""
    if not isinstance(value, dict) or len(value) > 50:
        raise _Bad("must be an object of at most 50 {name: value}")
    reasons: list[str] = []
    seen: set[str] = set()
    kept: dict[str, str] = {}
    for name, given in value.items():
        lower = name.lower() if isinstance(name, str) else ""
        if not isinstance(name, str) or not _TOKEN.match(name):
            reasons.append(f"{name!r} is not a valid header name")
        elif lower in RESERVED_HEADERS:
            hint = ": use auth" if lower == "authorization" else ""
            reasons.append(f"{name}: ihook sets this header itself{hint}")
        elif lower in seen:
            reasons.append(f"{name}: given twice")
        elif given == REDACTED and name not in stored:
            reasons.append(f"{name}: '***' keeps a stored value, and there is none")
        elif not isinstance(given, str) or _UNSAFE.search(given) or len(given) > 4096:
            reasons.append(f"{name}: the value must be one line of at most 4096 characters")
        else:
            kept[name] = stored[name] if given == REDACTED else given
        seen.add(lower)
    if reasons:
        raise _Bad(*reasons)
    return list(kept), kept


_CHECKS = {
    "name": _name,
    "description": lambda v: _text(v, most=10_000),
    "enabled": _bool,
    "environment": _environment,
    "event_types": _event_types,
    "filter": _filter,
    "url": lambda v: _text(v, most=MAX_URL_CHARS, what="a URL"),
    "mapping": _mapping,
    "fixed_data": _fixed_data,
    "error_emails": _emails,
    "retry_schedule": _retry_schedule,
}
"""Each settable field's check: it returns the value to store or raises _Bad."""
