"""Pollers in the console: create and edit, poll now, the poll log.

The form's fields are named as the API's body (``request.url``, ``pagination.next``), so
the refusals of ``PollerBodySchema`` and of the pollers service pin to them as they are.
``params`` and ``headers`` are written one ``name: value`` a line. Values whose name
looks secret are shown as ``***``; a ``***`` left in place keeps the stored value.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ihook.api.context import platform
from ihook.api.pollers import present
from ihook.api.schemas import PollerBodySchema
from ihook.console import forms
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.errors import Conflict, IhookError
from ihook.models import Poller, utcnow
from ihook.secrets import SENSITIVE_HEADERS, SENSITIVE_WORDS
from ihook.services import connectors as connector_service
from ihook.services import pollers as service
from ihook.services import polls as poll_service
from ihook.services.poll_schedule import due_slot, schedule_of
from ihook.storable import REASON, storable, unstorable_at

PAGE = 20
"""Polls the poller's page lists at a time."""
HIDDEN = "***"
"""What a secret-looking header or parameter value shows; left in place, it keeps the value."""
SECRET_PARAM_WORDS = (*SENSITIVE_WORDS, "key", "auth")
"""A query parameter whose name holds one of these is shown as ``HIDDEN``."""
FIELDS = (
    "name description request.via request.url request.connector request.path request.method "
    "request.params request.headers request.json interval_seconds cron timezone items id "
    "cursor pagination.kind pagination.next pagination.page_param pagination.first_page "
    "pagination.page_size pagination.size_param max_pages format mode event_type "
    "initial_cursor enabled"
).split()
"""The form's fields; an error under another name is shown at the top of the form."""
PINNED = {*FIELDS, "request", "pagination"}
"""Error keys the form shows in place (``request`` and ``pagination`` on their group)."""


def secret_name(name: str, *, header: bool) -> bool:
    """Whether a header's (or query parameter's) value is hidden on the console's pages."""
    lower = name.lower()
    if header:
        return lower in SENSITIVE_HEADERS or any(word in lower for word in SENSITIVE_WORDS)
    return any(word in lower for word in SECRET_PARAM_WORDS)


def hide(pairs: dict[str, Any] | None, *, header: bool) -> dict[str, Any]:
    """``pairs`` with each secret-looking value replaced by ``HIDDEN``."""
    return {k: HIDDEN if secret_name(k, header=header) else v for k, v in (pairs or {}).items()}


def shown_request(req: dict[str, Any] | None) -> dict[str, Any]:
    """A poller's request with its secret-looking header and parameter values hidden."""
    shown = dict(req or {})
    shown["params"] = hide(shown.get("params"), header=False)
    shown["headers"] = hide(shown.get("headers"), header=True)
    return shown


def pairs_text(pairs: dict[str, Any]) -> str:
    """``{name: value}`` as ``name: value`` lines."""
    return "\n".join(f"{name}: {value}" for name, value in pairs.items())


def parse_pairs(text: str) -> tuple[dict[str, str], str | None]:
    """``name: value`` lines as a dict, or why not (blank lines are skipped)."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name:
            return {}, f"line {number}: write name: value"
        if name in pairs:
            return {}, f"line {number}: {name} is given twice"
        pairs[name] = value.strip()
    return pairs, None


def keep_hidden(given: dict[str, str], stored: dict[str, str], *, header: bool) -> str | None:
    """Put back the stored value of each ``HIDDEN`` one in ``given``; why not, if one has none."""
    by_name = {(k.lower() if header else k): v for k, v in stored.items()}
    for name, value in given.items():
        if value != HIDDEN:
            continue
        key = name.lower() if header else name
        if key not in by_name:
            return f"{name}: {HIDDEN} keeps a stored value, and there is none"
        given[name] = by_name[key]
    return None


def form_of(poller: Poller) -> dict[str, str]:
    """The edit form's values for a stored poller (secret-looking values hidden)."""
    body = service.definition(poller)
    req = body.get("request") or {}
    pagination = body.get("pagination") or {}
    kind = "next" if "next" in pagination else "page" if pagination else "none"
    default_type = service.default_event_type(poller.name, body.get("mode", "item"))
    form = {
        "name": body["name"],
        "description": body.get("description") or "",
        "request.via": "connector" if "connector" in req else "url",
        "request.url": req.get("url", ""),
        "request.connector": req.get("connector", ""),
        "request.path": req.get("path", ""),
        "request.method": req.get("method", "GET"),
        "request.params": pairs_text(hide(req.get("params"), header=False)),
        "request.headers": pairs_text(hide(req.get("headers"), header=True)),
        "request.json": json.dumps(req["json"], indent=2) if "json" in req else "",
        "cursor": body.get("cursor") or "",
        "pagination.kind": kind,
        "event_type": "" if body["event_type"] == default_type else body["event_type"],
        "initial_cursor": "",
        "enabled": "1" if body["enabled"] else "",
    }
    for name in ("interval_seconds", "cron", "timezone", "items", "id", "max_pages"):
        form[name] = "" if body.get(name) is None else str(body[name])
    for name in ("format", "mode"):
        form[name] = body[name]
    for name in ("next", "page_param", "first_page", "page_size", "size_param"):
        value = pagination.get(name)
        form[f"pagination.{name}"] = "" if value is None else str(value)
    return form


def _whole(form: MultiDict, name: str, errors: dict[str, str]) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        errors[name] = "must be a whole number"
        return None


def _request_of(form: MultiDict, stored: dict[str, Any], errors: dict[str, str]) -> dict:
    """The body's ``request`` from the form (``stored``: the request a ``HIDDEN`` keeps)."""
    req: dict[str, Any] = {"method": form.get("request.method", "GET")}
    if form.get("request.via") == "connector":
        req["connector"] = form.get("request.connector", "").strip()
        req["path"] = form.get("request.path", "").strip()
    else:
        req["url"] = form.get("request.url", "").strip()
    for name, header in (("params", False), ("headers", True)):
        pairs, why = parse_pairs(form.get(f"request.{name}", ""))
        why = why or keep_hidden(pairs, stored.get(name) or {}, header=header)
        if why:
            errors[f"request.{name}"] = why
        req[name] = pairs
    body_text = form.get("request.json", "").strip()
    if body_text:
        try:
            req["json"] = json.loads(body_text)
        except ValueError as exc:
            errors["request.json"] = f"not JSON: {exc}"
    return req


def _pagination_of(form: MultiDict, errors: dict[str, str]) -> dict[str, Any] | None:
    kind = form.get("pagination.kind", "none")
    if kind == "next":
        return {"next": form.get("pagination.next", "").strip()}
    if kind != "page":
        return None
    out: dict[str, Any] = {"page_param": form.get("pagination.page_param", "").strip()}
    for name in ("first_page", "page_size"):
        number = _whole(form, f"pagination.{name}", errors)
        if number is not None:
            out[name] = number
    size_param = form.get("pagination.size_param", "").strip()
    if size_param:
        out["size_param"] = size_param
    return out


def body_of(form: MultiDict, stored: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The create/replace body a submitted form means, and a message per field it cannot
    make into one (``stored``: the poller's request now, whose values ``HIDDEN`` keeps)."""
    errors: dict[str, str] = {}
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "description": form.get("description", ""),
        "enabled": bool(form.get("enabled")),
        "request": _request_of(form, stored, errors),
        "id": form.get("id", "").strip(),
        "cursor": form.get("cursor", "").strip() or None,
        "pagination": _pagination_of(form, errors),
        "format": form.get("format", "auto"),
        "mode": form.get("mode", "item"),
    }
    for name in ("interval_seconds", "max_pages"):
        number = _whole(form, name, errors)
        if number is not None:
            body[name] = number
    for name in ("cron", "timezone", "items", "event_type"):
        text = form.get(name, "").strip()
        if text:
            body[name] = text
    initial = form.get("initial_cursor", "").strip()
    if initial:
        try:
            body["initial_cursor"] = json.loads(initial)
        except ValueError:
            body["initial_cursor"] = initial  # not JSON: taken as a string
    where = unstorable_at(body)
    if where is not None:
        errors[where if where in PINNED else forms.FORM] = f"{where}: {REASON}"
    return body, errors


def pinned(errors: dict[str, str]) -> dict[str, str]:
    """``errors`` with the messages of fields the form lacks gathered at its top."""
    shown = {k: v for k, v in errors.items() if k in PINNED or k == forms.FORM}
    loose = [f"{k}: {v}" for k, v in errors.items() if k not in shown]
    if loose:
        shown[forms.FORM] = "; ".join(filter(None, [shown.get(forms.FORM), *loose]))
    return shown


def save(form: MultiDict, poller_id: str | None) -> tuple[str | None, dict[str, str], int]:
    """Create (``poller_id`` None) or replace a poller from a form, as POST and PUT
    /api/v1/pollers do; its id, or the messages per field and the page's status."""
    p = platform()
    stored: dict[str, Any] = {}
    if poller_id is not None:
        with p.db.read() as session:
            stored = service.get_poller(session, poller_id).config.get("request") or {}
    body, errors = body_of(form, stored)
    if errors:
        return None, errors, 422
    loaded, errors = forms.load(PollerBodySchema(), body)
    if loaded is None:
        return None, errors, 422
    try:
        with p.db.session() as session:
            if poller_id is None:
                poller = service.create_poller(session, loaded, policy=p.outbound)
            else:
                poller = service.update_poller(session, poller_id, loaded, policy=p.outbound)
            return poller.id, {}, 200
    except Conflict as taken:
        return None, {"name": taken.message}, taken.status
    except IhookError as refused:
        if refused.status == 404:
            raise
        return None, forms.refusal(refused), refused.status


def render_form(poller: Poller | None, form: dict[str, str], errors: dict[str, str]) -> str:
    """The create or edit page."""
    with platform().db.read() as session:
        rows = connector_service.list_connectors(session)
    connectors = [row.name for row in rows if row.kind == "http"]
    return render_template(
        "console/poller_form.html",
        poller=poller,
        form=form,
        errors=pinned(errors),
        connectors=connectors,
    )


@bp.route("/pollers/new", methods=["GET", "POST"])
def poller_new() -> Response | str | tuple[str, int]:
    """The form of a new poller; POST creates it (``POST /api/v1/pollers``)."""
    require("write")
    if request.method == "GET":
        blank = {"request.via": "url", "items": "@", "enabled": "1", "format": "auto"}
        return render_form(None, {**blank, "mode": "item", "pagination.kind": "none"}, {})
    made, errors, status = save(request.form, None)
    if made is None:
        return render_form(None, request.form.to_dict(), errors), status
    return redirect(url_for("console.poller", poller_id=made, done="created"), code=303)


@bp.route("/pollers/<poller_id>/edit", methods=["GET", "POST"])
def poller_edit(poller_id: str) -> Response | str | tuple[str, int]:
    """A poller's definition as a form; POST replaces it (``PUT /api/v1/pollers/{id}``)."""
    require("write")
    found = _poller(poller_id)
    if request.method == "GET":
        return render_form(found, form_of(found), {})
    saved, errors, status = save(request.form, poller_id)
    if saved is None:
        return render_form(found, request.form.to_dict(), errors), status
    return redirect(url_for("console.poller", poller_id=poller_id, done="saved"), code=303)


def _poller(poller_id: str) -> Poller:
    if not storable(poller_id):
        abort(404)
    with platform().db.read() as session:
        return service.get_poller(session, poller_id)


def next_due(poller: Poller, now: datetime) -> datetime | None:
    """When the scheduler polls next (as it reads the row now), or None when never."""
    schedule = schedule_of(poller.config)
    if not poller.enabled or poller.schedule_from is None or schedule is None:
        return None
    earliest = max(now, poller.retry_after or now)
    if due_slot(schedule, earliest, poller.schedule_from, poller.last_slot, poller.retry_after):
        return earliest  # a slot has come: the scheduler's next tick queues it
    return schedule.after(earliest)


DONE = {
    "created": "The poller was created.",
    "saved": "The poller's definition was saved.",
    "enabled": "The poller is enabled: it polls at its next slot.",
    "disabled": "The poller is disabled: it is not polled on its schedule.",
}
"""Notices of the poller's page after an action, by ``done``: a query never becomes text."""


@bp.get("/pollers/<poller_id>")
def poller(poller_id: str) -> str:
    """A poller: its definition, where it stands, its actions and its poll log."""
    found = _poller(poller_id)
    after = request.args.get("after", "").strip() or None
    if after is not None and not storable(after):
        abort(404)
    with platform().db.read() as session:
        shown = present(found, service.fed_workflows(session, found.name))
        rows = poll_service.list_polls(session, poller_id, after=after, limit=PAGE)
    shown["request"] = shown_request(shown.get("request"))
    queued = request.args.get("queued", "")
    context = {
        "poller": found,
        "shown": shown,
        "definition": json.dumps(shown, indent=2, default=str),
        "next_due": next_due(found, utcnow()),
        "rows": rows,
        "older": url_for("console.poller", poller_id=poller_id, after=rows[-1].id)
        if len(rows) == PAGE
        else None,
        "newest": url_for("console.poller", poller_id=poller_id) if after else None,
        "notice": DONE.get(request.args.get("done", "")),
        # Only a job id of this poller's poll-now is shown; any other text is ignored.
        "queued": queued if queued.startswith(f"poll-{poller_id}-now-job_") else None,
    }
    return render_template("console/poller.html", **context)


def _change(poller_id: str, fields: dict[str, Any]) -> None:
    """``PATCH /api/v1/pollers/{id}`` with ``fields``."""
    require("write")
    _poller(poller_id)
    p = platform()
    with p.db.session() as session:
        service.update_poller(session, poller_id, fields, policy=p.outbound, partial=True)


@bp.post("/pollers/<poller_id>/enable")
def poller_enable(poller_id: str) -> Response:
    """Switch a poller on (``PATCH`` with ``enabled: true``)."""
    _change(poller_id, {"enabled": True})
    return redirect(url_for("console.poller", poller_id=poller_id, done="enabled"), code=303)


@bp.post("/pollers/<poller_id>/disable")
def poller_disable(poller_id: str) -> Response:
    """Switch a poller off (``PATCH`` with ``enabled: false``)."""
    _change(poller_id, {"enabled": False})
    return redirect(url_for("console.poller", poller_id=poller_id, done="disabled"), code=303)


@bp.post("/pollers/<poller_id>/poll-now")
def poller_poll_now(poller_id: str) -> Response:
    """Queue a poll now (``POST /api/v1/pollers/{id}/poll-now``, the same service)."""
    require("write")
    _poller(poller_id)
    p = platform()
    with p.db.session() as session:
        job_id = service.poll_now(session, p.polls, poller_id)
    return redirect(url_for("console.poller", poller_id=poller_id, queued=job_id), code=303)


@bp.post("/pollers/<poller_id>/delete")
def poller_delete(poller_id: str) -> Response:
    """Delete a poller with its poll log (``DELETE /api/v1/pollers/{id}``)."""
    require("write")
    _poller(poller_id)
    with platform().db.session() as session:
        service.delete_poller(session, poller_id)
    return redirect(url_for("console.pollers", deleted=1), code=303)


@bp.get("/pollers/<poller_id>/polls/<poll_id>")
def poll(poller_id: str, poll_id: str) -> str:
    """One poll in full: what it asked, what came back, the cursor before and after."""
    found = _poller(poller_id)
    if not storable(poll_id):
        abort(404)
    with platform().db.read() as session:
        shown = poll_service.get_poll(session, poll_id, poller_id=poller_id)
    return render_template(
        "console/poll.html",
        poller=found,
        poll=shown,
        request_shown=shown_request(found.config.get("request")),
        cursor_before=json.dumps(shown.cursor_before, indent=2),
        cursor_after=json.dumps(shown.cursor_after, indent=2),
    )
