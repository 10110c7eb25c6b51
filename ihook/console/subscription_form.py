"""The subscription wizard's form state: blank or read from a stored subscription, changed
by a step's posted fields, turned into the API's body, and refusals pinned back to fields.

Plain data in and out (no request, no database): the wizard's routes call these.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.datastructures import MultiDict

from ihook.console import forms
from ihook.models import Subscription
from ihook.services.subscription_fields import REDACTED

STEP_FIELDS = {
    "general": {"name", "description", "environment", "patterns", "filter", "url", "error_emails"},
    "auth": {"auth_type", "username", "password", "token", "headers"},
    "mapping": {"mapping", "fixed_data"},
}
"""The form fields (error keys) of each form step; rows add ``header-…``/``map-…`` keys."""
ROW_PREFIX = {"auth": "header-", "mapping": "map-"}
"""The prefix of the error keys of each step's rows."""


# The draft: the wizard's form state ------------------------------------------------------


def blank_state() -> dict[str, Any]:
    """The form state of a new subscription."""
    return {
        "name": "",
        "description": "",
        "environment": "live",
        "event_types": [],
        "patterns": "",
        "filter": "",
        "url": "",
        "error_emails": "",
        "auth_type": "none",
        "username": "",
        "password": "",
        "token": "",
        "headers": [["", ""]],
        "rows": [["", ""]],
        "fixed_data": "",
    }


def state_of(sub: Subscription, catalogue: list[str]) -> dict[str, Any]:
    """A stored subscription as form state; secrets left empty (or ``***``): kept if unchanged."""
    return {
        **blank_state(),
        "name": sub.name,
        "description": sub.description or "",
        "environment": sub.environment,
        "event_types": [t for t in sub.event_types if t in catalogue],
        "patterns": " ".join(t for t in sub.event_types if t not in catalogue),
        "filter": sub.filter or "",
        "url": sub.url,
        "error_emails": " ".join(sub.error_emails),
        "auth_type": sub.auth.get("type", "none"),
        "username": sub.auth.get("username", ""),
        "headers": [[name, REDACTED] for name in sub.header_names] or [["", ""]],
        "rows": [[k, v] for k, v in (sub.mapping or {}).items()] or [["", ""]],
        "fixed_data": json.dumps(sub.fixed_data, indent=2) if sub.fixed_data else "",
    }


def pairs(form: MultiDict[str, str], left: str, right: str) -> list[list[str]]:
    """Rows of two repeated fields, in order."""
    return [[a.strip(), b] for a, b in zip(form.getlist(left), form.getlist(right), strict=False)]


def read_step(step: str, form: MultiDict[str, str], state: dict[str, Any]) -> dict[str, Any]:
    """The state with the fields of ``step`` as posted; a secret left empty (or a header value
    left ``***``) keeps the one the state holds."""
    new = dict(state)
    if step == "general":
        for name in ("name", "environment", "patterns", "filter", "url", "error_emails"):
            new[name] = form.get(name, "").strip()
        new["description"] = form.get("description", "")
        new["event_types"] = form.getlist("event_types")
    elif step == "auth":
        kind = form.get("auth_type", "none")
        new["auth_type"] = kind
        new["username"] = form.get("username", "").strip() if kind == "basic" else ""
        for name, wanted in (("password", "basic"), ("token", "bearer")):
            typed = form.get(name, "")
            same = kind == state["auth_type"]
            new[name] = "" if kind != wanted else typed or (state[name] if same else "")
        before = dict(state["headers"])
        new["headers"] = [
            [name, before.get(name, value) if value == REDACTED else value]
            for name, value in pairs(form, "header_name", "header_value")
        ]
    else:
        new["rows"] = [[n, e.strip()] for n, e in pairs(form, "map_var", "map_expr")]
        new["fixed_data"] = form.get("fixed_data", "")
    return new


def change_rows(action: str, state: dict[str, Any]) -> bool:
    """Add or remove a row of headers or mapping as ``action`` says; whether it was one."""
    for key, noun in (("headers", "header"), ("rows", "row")):
        if action == f"add-{noun}":
            state[key] = [*state[key], ["", ""]]
            return True
        if action.startswith(f"remove-{noun}-"):
            index = action.rsplit("-", 1)[1]
            if index.isdigit() and int(index) < len(state[key]):
                state[key] = [r for i, r in enumerate(state[key]) if i != int(index)]
            state[key] = state[key] or [["", ""]]
            return True
    return False


# From form state to the API's body, and refusals back to fields -------------------------


def body_of(state: dict[str, Any], steps: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """The API body of these steps' fields, and the form's own errors (rows given twice,
    fixed data that is not JSON)."""
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "general" in steps:
        patterns = state["patterns"].replace(",", " ").split()
        body.update(
            name=state["name"],
            description=state["description"],
            environment=state["environment"],
            event_types=list(dict.fromkeys([*state["event_types"], *patterns])),
            filter=state["filter"] or None,
            url=state["url"],
            error_emails=state["error_emails"].replace(",", " ").split(),
        )
    if "auth" in steps:
        auth = {"type": state["auth_type"]}
        if state["auth_type"] == "basic":
            auth["username"] = state["username"]
        for name in ("password", "token"):
            if state[name]:
                auth[name] = state[name]
        body["auth"] = auth
        body["headers"] = _rows_dict(state["headers"], "header-name-", errors, "a header name")
    if "mapping" in steps:
        mapping = _rows_dict(state["rows"], "map-var-", errors, "a webhook variable")
        body["mapping"] = mapping or None
        body["fixed_data"] = None
        if state["fixed_data"].strip():
            try:
                body["fixed_data"] = json.loads(state["fixed_data"])
            except ValueError as exc:
                errors["fixed_data"] = f"not JSON: {exc}"
    return body, errors


def _rows_dict(
    rows: list[list[str]], prefix: str, errors: dict[str, str], what: str
) -> dict[str, str]:
    """Rows as ``{name: value}``; blank rows left out, a row without a name or a name given
    twice noted in ``errors``."""
    found: dict[str, str] = {}
    for index, (name, value) in enumerate(rows):
        if not name and not value:
            continue
        if not name:
            errors[f"{prefix}{index}"] = f"{what} is needed"
        elif name in found:
            errors[f"{prefix}{index}"] = f"{name}: given twice"
        else:
            found[name] = value
    return found


def pin(messages: dict[str, Any], state: dict[str, Any]) -> dict[str, str]:
    """A refusal (the schema's or the service's, ``{field: [reasons]}``) as one message per
    form field: a row's reasons on that row, the event types' on the patterns field."""
    pinned: dict[str, list[str]] = {}
    for key, reasons in messages.items():
        top = str(key).split(".")[0]
        texts = [str(r) for r in reasons] if isinstance(reasons, list) else [str(reasons)]
        for text in texts:
            pinned.setdefault(_field_of(top, text, state), []).append(text)
    return {field: "; ".join(texts) for field, texts in pinned.items()}


def _field_of(top: str, text: str, state: dict[str, Any]) -> str:
    """The form field a reason about API field ``top`` belongs to."""
    if top == "event_types":
        return "patterns"
    if top == "auth":
        if state["auth_type"] == "basic":
            return "password" if "password" in text else "username"
        return "token" if state["auth_type"] == "bearer" else "auth_type"
    for api_name, rows, field in (
        ("headers", "headers", "header-name-"),
        ("mapping", "rows", "map-expr-"),
    ):
        if top == api_name:
            for index, (name, _) in enumerate(state[rows]):
                if name and (text.startswith(f"{name}: ") or text.startswith(f"{name!r} ")):
                    return f"{field}{index}"
            return api_name
    known = set().union(*STEP_FIELDS.values())
    return top if top in known else forms.FORM


def shown_on(step: str, errors: dict[str, str]) -> dict[str, str]:
    """The errors with those of fields another step holds folded into the form's message."""
    mine = STEP_FIELDS[step]
    prefix = ROW_PREFIX.get(step, "\0")
    kept = {k: v for k, v in errors.items() if k in mine or k.startswith(prefix)}
    others = [f"{k}: {v}" for k, v in errors.items() if k not in kept and k != forms.FORM]
    if others or forms.FORM in errors:
        head = [errors[forms.FORM]] if forms.FORM in errors else []
        kept[forms.FORM] = "; ".join(head + [f"{o} (an earlier step)" for o in others])
    return kept
