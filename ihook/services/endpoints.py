"""Incoming-webhook endpoints: create, change, rotate, bind to workflows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ihook.errors import Invalid
from ihook.ids import new_id
from ihook.ingress_auth import new_secret
from ihook.models import Endpoint, EndpointWorkflow, Rejection, Workflow, utcnow
from ihook.secrets import Vault, generate_token, hash_token
from ihook.services.common import fetch, flush_unique, page
from ihook.signing import SignatureError, check_secret

DEFAULT_DEDUPE = {
    "standard-webhooks": 'headers."webhook-id" || headers."svix-id"',
    "github": 'headers."x-github-delivery"',
}
"""Dedupe rule used when an HMAC endpoint names none: the scheme's delivery id header."""
DEFAULT_RATE_LIMIT = {"requests": 600, "per_seconds": 1}
"""Requests per window an endpoint takes before answering 429 (``null`` turns it off)."""
DEFAULT_GRACE_SECONDS = 86_400
"""How long a rotated-out secret keeps working, so senders can switch over."""


@dataclass
class Created:
    """An endpoint with the one-time values shown to its creator."""

    endpoint: Endpoint
    key: str | None = None
    secret: str | None = None


def get_endpoint(session: Session, endpoint_id: str) -> Endpoint:
    """The endpoint, or NotFound."""
    return fetch(session, Endpoint, endpoint_id, f"endpoint {endpoint_id} not found")


def list_endpoints(session: Session) -> list[Endpoint]:
    """Every endpoint, oldest first."""
    return list(session.scalars(select(Endpoint).order_by(Endpoint.id)))


def workflow_ids(session: Session, endpoint_id: str) -> list[str]:
    """Ids of the workflows an endpoint triggers."""
    rows = session.scalars(
        select(EndpointWorkflow.workflow_id)
        .where(EndpointWorkflow.endpoint_id == endpoint_id)
        .order_by(EndpointWorkflow.workflow_id)
    )
    return list(rows)


def list_rejections(
    session: Session,
    endpoint_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[Rejection]:
    """Refused requests of an endpoint, newest first."""
    get_endpoint(session, endpoint_id)
    query = select(Rejection).where(Rejection.endpoint_id == endpoint_id)
    query = page(query, Rejection.at, since=since, until=until, after=after, limit=limit)
    return list(session.scalars(query))


def create_endpoint(session: Session, vault: Vault, fields: dict[str, Any]) -> Created:
    """Create an endpoint; its key and secret are returned once."""
    fields = dict(fields)
    auth = dict(fields.pop("auth", None) or {"type": "none"})
    secret = usable_secret(auth, auth.pop("secret", None))
    key = generate_token("")
    bound = fields.pop("workflows", None) or []
    endpoint = Endpoint(
        id=new_id("ep"),
        key_hash=hash_token(key),
        key_hint=key[:6],
        auth=auth,
        secret_enc=vault.encrypt(secret) if secret else None,
        allow_ips=[],
        rate_limit=DEFAULT_RATE_LIMIT,
    )
    _apply(endpoint, fields)
    if endpoint.dedupe is None and auth.get("type") == "hmac":
        endpoint.dedupe = DEFAULT_DEDUPE.get(auth.get("scheme", ""))
    _check(endpoint)
    session.add(endpoint)
    flush_unique(session, "endpoint", endpoint.name)
    set_workflows(session, endpoint.id, bound)
    return Created(endpoint, key=key, secret=secret or None)


def update_endpoint(session: Session, endpoint_id: str, fields: dict[str, Any]) -> Endpoint:
    """Change an endpoint's settings (secrets change only through rotation)."""
    endpoint = get_endpoint(session, endpoint_id)
    fields = dict(fields)
    if "auth" in fields:
        auth = dict(fields.pop("auth"))
        if auth.pop("secret", None) is not None or auth.get("type") != endpoint.auth.get("type"):
            raise Invalid(
                "change the auth type or secret with rotate-secret",
                {"auth": ["type and secret change only through POST …/rotate-secret"]},
            )
        endpoint.auth = auth
    bound = fields.pop("workflows", None)
    _apply(endpoint, fields)
    _check(endpoint)
    flush_unique(session, "endpoint", endpoint.name)
    if bound is not None:
        set_workflows(session, endpoint.id, bound)
    return endpoint


def delete_endpoint(session: Session, endpoint_id: str) -> None:
    """Delete an endpoint; its events stay (their endpoint link is cleared)."""
    session.delete(get_endpoint(session, endpoint_id))


def rotate_secret(
    session: Session,
    vault: Vault,
    endpoint_id: str,
    *,
    secret: str | None = None,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    rotate_key: bool = False,
    auth: dict[str, Any] | None = None,
) -> Created:
    """Replace the auth secret (the old one works ``grace_seconds`` more) and maybe the key.

    With ``auth`` the endpoint moves to that rule; the old rule's secret then stops at once,
    since it belongs to a different scheme.
    """
    endpoint = get_endpoint(session, endpoint_id)
    created = Created(endpoint)
    if auth is not None:
        auth = dict(auth)
        secret = auth.pop("secret", None) or secret
        if auth.get("type") != endpoint.auth.get("type") or auth.get("scheme") != endpoint.auth.get(
            "scheme"
        ):
            grace_seconds = 0
        endpoint.auth = auth
        if endpoint.dedupe is None and auth.get("type") == "hmac":
            endpoint.dedupe = DEFAULT_DEDUPE.get(auth.get("scheme", ""))
    if endpoint.auth.get("type", "none") == "none":
        endpoint.secret_enc = endpoint.previous_secret_enc = None
    else:
        new = usable_secret(endpoint.auth, secret)
        endpoint.previous_secret_enc = endpoint.secret_enc if grace_seconds > 0 else None
        endpoint.previous_secret_expires_at = (
            utcnow() + timedelta(seconds=grace_seconds) if grace_seconds > 0 else None
        )
        endpoint.secret_enc = vault.encrypt(new)
        created.secret = new
    if rotate_key:
        key = generate_token("")
        endpoint.key_hash, endpoint.key_hint = hash_token(key), key[:6]
        created.key = key
    endpoint.updated_at = utcnow()
    return created


def current_secrets(endpoint: Endpoint, vault: Vault) -> list[str]:
    """The secrets a request may be signed with now: current, then unexpired previous."""
    secrets = [vault.decrypt(endpoint.secret_enc)] if endpoint.secret_enc else []
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_enc and expires and expires > utcnow():
        secrets.append(vault.decrypt(endpoint.previous_secret_enc))
    return secrets


def usable_secret(auth: dict[str, Any], secret: str | None) -> str:
    """The given secret if it suits the rule (Invalid if not), else a new one."""
    if not secret:
        return new_secret(auth)
    if auth.get("type") == "hmac" and auth.get("scheme") == "standard-webhooks":
        try:
            check_secret(secret)
        except SignatureError as exc:
            raise Invalid("unusable secret", {"auth": {"secret": [exc.reason]}}) from None
    return secret


def set_workflows(session: Session, endpoint_id: str, ids: list[str]) -> None:
    """Make the endpoint trigger exactly these workflows."""
    ids = list(dict.fromkeys(ids))
    found = set(session.scalars(select(Workflow.id).where(Workflow.id.in_(ids)))) if ids else set()
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise Invalid("unknown workflows", {"workflows": [f"no workflow {i}" for i in unknown]})
    session.execute(delete(EndpointWorkflow).where(EndpointWorkflow.endpoint_id == endpoint_id))
    session.add_all(EndpointWorkflow(endpoint_id=endpoint_id, workflow_id=i) for i in ids)
    session.flush()


_SETTABLE = (
    "name description allow_ips schema dedupe event_type rate_limit response_mode "
    "sync_timeout enabled"
).split()


def _apply(endpoint: Endpoint, fields: dict[str, Any]) -> None:
    for name in _SETTABLE:
        if name in fields:
            setattr(endpoint, name, fields[name])


def _check(endpoint: Endpoint) -> None:
    check_rules({name: getattr(endpoint, name) for name in ("dedupe", "event_type", "schema")})


def check_rules(fields: dict[str, Any]) -> None:
    """Invalid naming each field whose rule is wrong: ``dedupe`` and ``event_type`` must
    compile as jmespath, ``schema`` must be a JSON Schema. Fields left out are not checked."""
    errors: dict[str, list[str]] = {}
    for field in ("dedupe", "event_type"):
        expression = fields.get(field)
        if expression:
            try:
                jmespath.compile(expression)
            except JMESPathError as exc:
                errors[field] = [f"invalid jmespath: {exc}"]
    if fields.get("schema") is not None:
        try:
            Draft202012Validator.check_schema(fields["schema"])
        except SchemaError as exc:
            errors["schema"] = [f"invalid JSON Schema: {exc.message}"]
    if errors:
        raise Invalid("invalid endpoint", errors)
