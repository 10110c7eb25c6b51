"""Incoming endpoints in the console: the create wizard and an endpoint's page.

The wizard (General → Authentication → Schema & dedupe → Workflows) carries its draft from
step to step in one hidden field, encrypted with ihook's secret keys, so a secret typed at
the second step never appears in a later page. Every step is checked with the API's own
``EndpointSchema`` and the service's rules; the last step creates the endpoint through the
same service as ``POST /api/v1/endpoints`` and shows the ingest URL, the secret once, and a
ready ``curl`` command.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from ihook.api.context import platform
from ihook.api.schemas import EndpointPatchSchema, EndpointSchema, RotateSchema
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.console.forms import FORM, load, refusal
from ihook.console.pages import ingest_url
from ihook.console.sample_request import curl_command, signs_with_time
from ihook.errors import IhookError
from ihook.ingress_auth import AUTH_TYPES, HMAC_SCHEMES
from ihook.models import Endpoint
from ihook.secrets import SecretError
from ihook.services import endpoints as service
from ihook.services import events as event_service
from ihook.services import workflows as workflow_service
from ihook.storable import storable


@dataclass(frozen=True)
class Step:
    """One page of the wizard: its name, title, and the endpoint fields it sets."""

    name: str
    title: str
    fields: tuple[str, ...]


STEPS = (
    Step("general", "General", ("name", "description", "event_type", "response_mode")),
    Step("auth", "Authentication", ("auth",)),
    Step("checks", "Schema & dedupe", ("schema", "dedupe", "allow_ips", "rate_limit")),
    Step("workflows", "Workflows", ("workflows",)),
)
"""The wizard's steps, in order."""
RECENT = 50
"""Accepted and rejected requests an endpoint's page shows, each."""
CHANGES = {
    "saved": "Saved.",
    "enabled": "The endpoint is enabled.",
    "disabled": "The endpoint is disabled: it answers 404.",
}
"""Notices of the endpoint's page after a change, by the ``changed`` query parameter."""
AUTH_FIELDS = ("scheme", "username", "header", "algorithm", "encoding", "prefix")
"""Auth settings besides ``type`` and ``secret``, as form fields ``auth_<name>``."""


def _step_of(field: str) -> int:
    """The index of the step that sets an endpoint field (a message key such as
    ``auth.secret`` or ``rate_limit.requests``); the first step when none does."""
    top = field.split(".", 1)[0]
    for index, step in enumerate(STEPS):
        if top in step.fields:
            return index
    return 0


def _field_id(key: str) -> str:
    """The form field a message key is pinned to: ``auth.secret`` → ``auth_secret``;
    ``allow_ips.2`` → ``allow_ips``."""
    parts = [part for part in key.split(".") if not part.isdigit()]
    if parts[:1] == ["rate_limit"]:
        return "rate_limit"
    return "_".join(parts) or FORM


def _pinned(messages: dict[str, str]) -> dict[str, str]:
    """Messages by form field id."""
    pinned: dict[str, str] = {}
    for key, message in messages.items():
        field = _field_id(key)
        pinned[field] = f"{pinned[field]}; {message}" if field in pinned else message
    return pinned


def _open_draft(token: str) -> dict[str, Any]:
    """The draft carried by the hidden field (empty at the start)."""
    if not token:
        return {}
    try:
        draft = json.loads(platform().vault.decrypt(token))
    except (SecretError, ValueError):
        abort(400, description="The wizard's draft was damaged or made with another key.")
    return draft if isinstance(draft, dict) else {}


def _seal(draft: dict[str, Any]) -> str:
    return platform().vault.encrypt(json.dumps(draft))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def read_step(step: Step, form: Any, draft: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """The draft with this step's form fields in it, and messages for values that cannot be
    read at all (JSON that does not parse, a number that is not one)."""
    draft = dict(draft)
    problems: dict[str, str] = {}
    if step.name == "general":
        for name in ("name", "description", "event_type"):
            draft[name] = form.get(name, "").strip()
        if not draft["event_type"]:
            draft.pop("event_type")
        draft["response_mode"] = form.get("response_mode", "async")
    elif step.name == "auth":
        kept = draft.get("auth") or {}
        auth: dict[str, Any] = {"type": form.get("auth_type", "none")}
        if auth["type"] != "none":
            for name in AUTH_FIELDS:
                value = form.get(f"auth_{name}", "").strip()
                if value:
                    auth[name] = value
            secret = form.get("auth_secret", "")
            if secret:
                auth["secret"] = secret
            elif kept.get("secret") and kept.get("type") == auth["type"]:
                auth["secret"] = kept["secret"]
        # Keep only what the chosen type (and scheme) uses: hidden fields are still sent.
        generic = auth["type"] == "hmac" and auth.get("scheme") == "generic"
        if auth["type"] != "hmac":
            auth.pop("scheme", None)
        if not generic:
            for name in ("algorithm", "encoding", "prefix"):
                auth.pop(name, None)
        if auth["type"] != "basic":
            auth.pop("username", None)
        if auth["type"] != "header" and not generic:
            auth.pop("header", None)
        draft["auth"] = auth
    elif step.name == "checks":
        schema_text = form.get("schema", "").strip()
        draft.pop("schema", None)
        if schema_text:
            try:
                draft["schema"] = json.loads(schema_text)
            except ValueError as exc:
                problems["schema"] = f"not JSON: {exc}"
                draft["schema_text"] = schema_text
        dedupe = form.get("dedupe", "").strip()
        draft["dedupe"] = dedupe or None
        draft["allow_ips"] = _lines(form.get("allow_ips", ""))
        if form.get("rate_limit_off"):
            draft["rate_limit"] = None
        else:
            requests_, per = form.get("rate_requests", "").strip(), form.get("rate_per", "").strip()
            try:
                draft["rate_limit"] = {
                    "requests": int(requests_ or service.DEFAULT_RATE_LIMIT["requests"]),
                    "per_seconds": int(per or service.DEFAULT_RATE_LIMIT["per_seconds"]),
                }
            except ValueError:
                problems["rate_limit"] = "whole numbers: requests per window of seconds"
    elif step.name == "workflows":
        draft["workflows"] = [wid for wid in form.getlist("workflows") if storable(wid)]
    return draft, problems


def check_step(session: Any, step: Step, draft: dict[str, Any]) -> dict[str, str]:
    """Messages (by endpoint field key) for this step's fields: the API schema's rules, then
    the service's (unique name, jmespath, JSON Schema, a usable secret)."""
    body = {k: v for k, v in draft.items() if k != "schema_text"}
    _, messages = load(EndpointSchema(), body)
    mine = {k: v for k, v in messages.items() if _step_of(k) == STEPS.index(step)}
    if mine:
        return mine
    try:
        if step.name == "general":
            taken = session.scalar(select(Endpoint.id).where(Endpoint.name == draft["name"]))
            if taken:
                return {"name": f"an endpoint named {draft['name']!r} exists"}
            service.check_rules({"event_type": draft.get("event_type")})
        elif step.name == "auth":
            auth = dict(draft["auth"])
            service.usable_secret(auth, auth.pop("secret", None))
        elif step.name == "checks":
            service.check_rules({"dedupe": draft.get("dedupe"), "schema": draft.get("schema")})
    except IhookError as error:
        return refusal(error)
    return {}


def _auth_shown(auth: dict[str, Any]) -> dict[str, Any]:
    """The auth rule without its secret, as pages show it."""
    return {k: v for k, v in auth.items() if k != "secret"}


def _render_step(index: int, draft: dict[str, Any], errors: dict[str, str], status: int = 200):
    with platform().db.read() as session:
        workflows = workflow_service.list_workflows(session)
    context = {
        "steps": STEPS,
        "index": index,
        "step": STEPS[index],
        "draft": draft,
        "sealed": _seal(draft),
        "errors": _pinned(errors),
        "auth": draft.get("auth") or {"type": "none"},
        "secret_kept": bool((draft.get("auth") or {}).get("secret")),
        "auth_types": AUTH_TYPES,
        "schemes": HMAC_SCHEMES,
        "workflows": workflows,
        "default_dedupe": service.DEFAULT_DEDUPE,
        "default_rate": service.DEFAULT_RATE_LIMIT,
    }
    return render_template("console/endpoint_new.html", **context), status


@bp.route("/endpoints/new", methods=["GET", "POST"])
def new_endpoint() -> Any:
    """The create wizard: each POST checks one step and shows the next (or the one at
    fault); the last creates the endpoint and shows its URL, secret and a curl command."""
    require("write")
    if request.method == "GET":
        return _render_step(0, {}, {})
    draft = _open_draft(request.form.get("draft", ""))
    try:
        index = int(request.form.get("step", "0"))
        step = STEPS[index]
    except (ValueError, IndexError):
        abort(400, description="The wizard's step is not one of its steps.")
    draft, problems = read_step(step, request.form, draft)
    action = request.form.get("action", "next")
    if action == "back":
        return _render_step(max(index - 1, 0), draft, {})
    if problems:
        return _render_step(index, draft, problems, 422)
    with platform().db.read() as session:
        messages = check_step(session, step, draft)
    if messages:
        return _render_step(index, draft, messages, 422)
    if index + 1 < len(STEPS):
        return _render_step(index + 1, draft, {})
    return _create(draft)


def _create(draft: dict[str, Any]) -> Any:
    """Create the endpoint from a checked draft; a refusal goes back to the step at fault."""
    body, messages = load(EndpointSchema(), {k: v for k, v in draft.items() if k != "schema_text"})
    p = platform()
    if body is not None:
        try:
            with p.db.session() as session:
                created = service.create_endpoint(session, p.vault, body)
                endpoint_id = created.endpoint.id
                key, secret = created.key, created.secret
                auth = dict(created.endpoint.auth)
        except IhookError as error:
            messages = refusal(error)
    if messages:
        first = min(_step_of(key) for key in messages)
        return _render_step(first, draft, messages, 422)
    url = p.settings.public_url + url_for("ingress.receive", key=key)
    return _render_secret_page(endpoint_id, auth, url, secret, created=True)


def _render_secret_page(
    endpoint_id: str, auth: dict[str, Any], url: str | None, secret: str | None, *, created: bool
) -> tuple[str, int]:
    """The page that shows an endpoint's URL and secret this once, with a curl command."""
    with platform().db.read() as session:
        endpoint = service.get_endpoint(session, endpoint_id)
    context = {
        "endpoint": endpoint,
        "auth": auth,
        "url": url,
        "secret": secret,
        "curl": curl_command(url, auth, secret),
        "expires": signs_with_time(auth),
        "created": created,
    }
    return render_template("console/endpoint_secret.html", **context), 201 if created else 200


def recent_requests(session: Any, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's latest accepted and rejected requests, newest first."""
    accepted = event_service.list_events(session, endpoint_id=endpoint_id, limit=RECENT)
    rejected = service.list_rejections(session, endpoint_id, limit=RECENT)
    rows = [
        {"at": e.received_at, "accepted": True, "status": 202, "event": e, "detail": e.type}
        for e in accepted
    ] + [
        {"at": r.at, "accepted": False, "status": r.status, "detail": r.reason}
        | {"from": r.remote_addr}
        for r in rejected
    ]
    return sorted(rows, key=lambda row: row["at"], reverse=True)


@bp.get("/endpoints/<endpoint_id>")
def endpoint(endpoint_id: str) -> str:
    """One endpoint: its settings, the workflows it triggers, and its recent requests."""
    if not storable(endpoint_id):
        abort(404)
    with platform().db.read() as session:
        found = service.get_endpoint(session, endpoint_id)
        bound = set(service.workflow_ids(session, endpoint_id))
        workflows = [wf for wf in workflow_service.list_workflows(session) if wf.id in bound]
        requests_ = recent_requests(session, endpoint_id)
    return render_template(
        "console/endpoint.html",
        endpoint=found,
        auth=_auth_shown(found.auth or {}),
        url=ingest_url(found),
        workflows=workflows,
        requests=requests_,
        changed=CHANGES.get(request.args.get("changed", "")),
    )


EDITABLE = ("general", "checks", "workflows")
"""The wizard's steps the edit page shows: auth changes only by rotating the secret."""


def _settings(session: Any, endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint's editable settings, in the wizard's draft shape."""
    fields = "name description event_type response_mode schema dedupe allow_ips rate_limit"
    draft = {name: getattr(endpoint, name) for name in fields.split()}
    draft["workflows"] = service.workflow_ids(session, endpoint.id)
    return draft


def _render_edit(endpoint_id: str, draft: dict[str, Any], errors: dict[str, str], status: int):
    with platform().db.read() as session:
        found = service.get_endpoint(session, endpoint_id)
        workflows = workflow_service.list_workflows(session)
    context = {
        "endpoint": found,
        "steps": [step for step in STEPS if step.name in EDITABLE],
        "draft": draft,
        "errors": _pinned(errors),
        "auth": found.auth or {"type": "none"},
        "workflows": workflows,
        "default_dedupe": service.DEFAULT_DEDUPE,
        "default_rate": service.DEFAULT_RATE_LIMIT,
    }
    return render_template("console/endpoint_edit.html", **context), status


@bp.route("/endpoints/<endpoint_id>/edit", methods=["GET", "POST"])
def edit_endpoint(endpoint_id: str) -> Any:
    """Change an endpoint's settings on one page: ``PATCH /api/v1/endpoints/{id}``."""
    require("write")
    if not storable(endpoint_id):
        abort(404)
    if request.method == "GET":
        with platform().db.read() as session:
            draft = _settings(session, service.get_endpoint(session, endpoint_id))
        return _render_edit(endpoint_id, draft, {}, 200)
    draft: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for step in STEPS:
        if step.name in EDITABLE:
            draft, found = read_step(step, request.form, draft)
            problems.update(found)
    draft.setdefault("event_type", None)
    if problems:
        return _render_edit(endpoint_id, draft, problems, 422)
    body, messages = load(EndpointPatchSchema(), draft)
    if body is not None:
        try:
            with platform().db.session() as session:
                service.update_endpoint(session, endpoint_id, body)
        except IhookError as error:
            if error.status == 404:
                raise
            messages = refusal(error)
    if messages:
        return _render_edit(endpoint_id, draft, messages, 422)
    return redirect(url_for("console.endpoint", endpoint_id=endpoint_id, changed="saved"), 303)


@bp.post("/endpoints/<endpoint_id>/enabled")
def set_endpoint_enabled(endpoint_id: str) -> Response:
    """Enable or disable the endpoint: ``PATCH /api/v1/endpoints/{id}`` with ``enabled``."""
    require("write")
    enabled = request.form.get("enabled") == "true"
    with platform().db.session() as session:
        service.update_endpoint(session, endpoint_id, {"enabled": enabled})
    changed = "enabled" if enabled else "disabled"
    return redirect(url_for("console.endpoint", endpoint_id=endpoint_id, changed=changed), 303)


@bp.post("/endpoints/<endpoint_id>/rotate-secret")
def rotate_endpoint_secret(endpoint_id: str) -> Any:
    """A new secret (the old one works ``grace_seconds`` more) and maybe a new URL key:
    ``POST /api/v1/endpoints/{id}/rotate-secret``. Shows the new values once."""
    require("write")
    form = {"rotate_key": bool(request.form.get("rotate_key"))}
    grace = request.form.get("grace_seconds", "").strip()
    if grace:
        form["grace_seconds"] = grace
    body, messages = load(RotateSchema(), form)
    p = platform()
    if body is None:
        abort(422, description="; ".join(f"{k}: {v}" for k, v in messages.items()))
    with p.db.session() as session:
        created = service.rotate_secret(session, p.vault, endpoint_id, **body)
        auth = dict(created.endpoint.auth)
        key, secret = created.key, created.secret
    url = p.settings.public_url + url_for("ingress.receive", key=key) if key else None
    return _render_secret_page(endpoint_id, auth, url, secret, created=False)


@bp.post("/endpoints/<endpoint_id>/delete")
def delete_endpoint(endpoint_id: str) -> Response:
    """Delete the endpoint (its events stay): ``DELETE /api/v1/endpoints/{id}``."""
    require("write")
    with platform().db.session() as session:
        service.delete_endpoint(session, endpoint_id)
    return redirect(url_for("console.endpoints", deleted=1), 303)
