"""Workflows in the console: the YAML editor, live validation, test runs and versions.


The editor holds the document of ``POST /api/v1/workflows`` as YAML, read and checked by
``workflow_yaml`` (each problem pinned to its step, field and line). Saving is the API's
create or ``PUT``, the Enabled button its ``PATCH``, a test run its manual run.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from ihook.api.context import platform
from ihook.api.schemas import ManualRunSchema, WorkflowPatchSchema
from ihook.api.workflows import run_now
from ihook.console import forms
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.console.workflow_yaml import Draft, check, diff_lines, palette, read_draft, readable
from ihook.errors import Conflict, Invalid
from ihook.models import Workflow
from ihook.services import workflows as service
from ihook.storable import REASON, storable, unstorable_at

STARTER = """\
name: my-workflow
description: What this workflow does
# one of: {endpoint: <name>}, {event_type: <type>}, {poller: <name>},
# {schedule: {cron: "0 2 * * *"}} or {manual: true}
trigger:
  manual: true
steps:
  - id: shape
    type: transform
    expression: data
"""
"""What the editor of a new workflow starts with."""
NOTICES = {
    "created": "Created: version {version}.",
    "saved": "Saved: version {version}.",
    "unchanged": "Saved: the definition did not change, so it is still version {version}.",
    "enabled": "Enabled: its trigger starts runs of it.",
    "disabled": "Disabled: its trigger starts no runs until it is enabled (manual runs work).",
}
"""The notice after a redirect, by its ``done`` query value (never text from the URL)."""


def names_of(value: Any) -> set[str] | None:
    """An endpoint trigger's names as a set."""
    return {value} if isinstance(value, str) else set(value) if isinstance(value, list) else None


def shown_trigger(session: Session, workflow: Workflow) -> dict[str, Any]:
    """The trigger the editor shows: the API's (bound endpoints win), as stored when that
    names the same endpoints."""
    shown = service.trigger_of(session, workflow)
    stored = workflow.definition.get("trigger") or {}
    if "endpoint" in stored and names_of(stored["endpoint"]) == names_of(shown.get("endpoint")):
        return dict(stored)
    return shown


def editor_yaml(session: Session, workflow: Workflow, definition: dict[str, Any]) -> str:
    """``definition`` (current or older) in the editor, its trigger shown as the API does
    when it is the stored one."""
    same = definition.get("trigger") == workflow.definition.get("trigger")
    return readable(definition, shown_trigger(session, workflow) if same else None)


def kept_bindings(session: Session, workflow: Workflow, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the trigger the editor showed for endpoints bound from their side
    (the stored trigger being manual): a ``PUT`` without it keeps bindings and version,
    as ``ihook apply`` does with an export."""
    stored = workflow.definition.get("trigger")
    if stored == {"manual": True} and body.get("trigger") not in (None, stored):
        if body["trigger"] == shown_trigger(session, workflow):
            return {k: v for k, v in body.items() if k != "trigger"}
    return body


def found(session: Session, workflow_id: str) -> Workflow:
    """The workflow of a URL, or a 404 page."""
    if not storable(workflow_id):
        abort(404)
    return service.get_workflow(session, workflow_id)


def editor(
    workflow_id: str | None,
    text: str | None = None,
    *,
    enabled: bool | None = None,
    draft: Draft | None = None,
    run: dict[str, Any] | None = None,
    status: int = 200,
    notice: str | None = None,
    checking: bool = False,
) -> tuple[str, int]:
    """The editor page: a new workflow's, or a saved one's (its current YAML by default)."""
    context: dict[str, Any] = {"workflow": None, "trigger": None}
    if workflow_id is not None:
        with platform().db.read() as session:
            workflow = found(session, workflow_id)
            context.update(workflow=workflow, trigger=service.trigger_of(session, workflow))
            if text is None:
                text = editor_yaml(session, workflow, workflow.definition)
        enabled = workflow.enabled if enabled is None else enabled
    context.update(
        text=STARTER if text is None else text,
        enabled=True if enabled is None else enabled,
        draft=draft or Draft(),
        checking=checking,
        unsaved=draft is not None,
        checked=checking and draft is not None and not draft.problems,
        run=run or {"type": "manual", "data": "{}", "errors": {}},
        palette=palette(),
        notice=notice,
    )
    return render_template("console/workflow_edit.html", **context), status


@bp.get("/workflows/new")
def workflow_new() -> tuple[str, int]:
    """The editor of a new workflow."""
    require("write")
    return editor(None)


@bp.get("/workflows/<workflow_id>")
def workflow(workflow_id: str) -> tuple[str, int]:
    """A workflow's editor: its current YAML, or an older version's (``from_version``)."""
    notice, text = None, None
    done = request.args.get("done", "")
    older = request.args.get("from_version", "")
    if older.isdigit():
        with platform().db.read() as session:
            workflow = found(session, workflow_id)
            stored = service.get_version(session, workflow_id, int(older))
            text = editor_yaml(session, workflow, stored.definition)
        notice = f"Version {older} loaded: saving stores it as a new version."
    elif done in NOTICES:
        with platform().db.read() as session:
            notice = NOTICES[done].format(version=found(session, workflow_id).version)
    return editor(workflow_id, text, notice=notice)


@bp.post("/workflows/new", endpoint="workflow_create")
@bp.post("/workflows/<workflow_id>")
def workflow_save(workflow_id: str | None = None) -> Response | tuple[str, int]:
    """Save the YAML: ``POST /api/v1/workflows`` or ``PUT /api/v1/workflows/{id}``; the
    Check button validates it only (``POST /api/v1/workflows/validate``)."""
    require("write")
    text = request.form.get("definition", "")
    enabled = request.form.get("enabled") == "1"
    draft = read_draft(text)
    p = platform()
    if request.form.get("action") == "check":
        with p.db.read() as session:
            check(session, draft)
        status = 422 if draft.problems else 200
        return editor(workflow_id, text, enabled=enabled, draft=draft, status=status, checking=True)
    if draft.doc is not None:
        try:
            with p.db.session() as session:
                saved_id, done = save(session, workflow_id, draft.doc, enabled)
            return redirect(url_for("console.workflow", workflow_id=saved_id, done=done), code=303)
        except (Invalid, Conflict) as refused:
            draft.refuse(refused)
    return editor(workflow_id, text, enabled=enabled, draft=draft, status=422)


def save(
    session: Session, workflow_id: str | None, body: dict[str, Any], enabled: bool
) -> tuple[str, str]:
    """Create or update the workflow; its id and the notice to show (a NOTICES key)."""
    if workflow_id is None:
        return service.create_workflow(session, body, enabled=enabled).id, "created"
    workflow = found(session, workflow_id)
    before = workflow.version
    service.update_workflow(
        session, workflow_id, kept_bindings(session, workflow, body), enabled=enabled
    )
    return workflow_id, "saved" if workflow.version != before else "unchanged"


@bp.post("/workflows/validate")
def workflow_validate() -> tuple[Response, int]:
    """Check the editor's YAML as ``POST /api/v1/workflows/validate`` does; answers JSON
    ``{ok, errors: [{step, step_name, step_type, field, message, line, column, text}]}``."""
    require("write")
    draft = read_draft(request.form.get("definition", ""))
    with platform().db.read() as session:
        check(session, draft)
    errors = [problem.as_json() for problem in draft.problems]
    return jsonify(ok=not errors, errors=errors), 422 if errors else 200


@bp.post("/workflows/<workflow_id>/enabled")
def workflow_enabled(workflow_id: str) -> Response:
    """Enable or disable: ``PATCH /api/v1/workflows/{id}`` (no new version)."""
    require("write")
    body, errors = forms.load(WorkflowPatchSchema(), {"enabled": request.form.get("enabled", "")})
    if body is None:
        abort(400, description=f"enabled: {errors.get('enabled', 'true or false')}")
    with platform().db.session() as session:
        found(session, workflow_id)
        service.set_enabled(session, workflow_id, body["enabled"])
    done = "enabled" if body["enabled"] else "disabled"
    return redirect(url_for("console.workflow", workflow_id=workflow_id, done=done), code=303)


@bp.post("/workflows/<workflow_id>/delete")
def workflow_delete(workflow_id: str) -> Response:
    """Delete the workflow with its versions and runs: ``DELETE /api/v1/workflows/{id}``."""
    require("write")
    with platform().db.session() as session:
        found(session, workflow_id)
        service.delete_workflow(session, workflow_id)
    return redirect(url_for("console.workflows", deleted=1), code=303)


def parse_json(text: str) -> tuple[Any, str | None]:
    """JSON typed in a form, or the reason it is not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"Not valid JSON: {constant} is not a JSON number.")

    try:
        return json.loads(text, parse_constant=refuse), None
    except json.JSONDecodeError as exc:
        return None, f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    except ValueError as exc:
        return None, str(exc)


@bp.post("/workflows/<workflow_id>/runs")
def workflow_run(workflow_id: str) -> Response | tuple[str, int]:
    """Run the saved version for a payload: ``POST /api/v1/workflows/{id}/runs``."""
    require("write")
    typed = {"type": request.form.get("type", "").strip(), "data": request.form.get("data", "")}
    data, error = parse_json(typed["data"])
    errors = {"data": error} if error else {}
    fields = {"data": data, **({"type": typed["type"]} if typed["type"] else {})}
    body, invalid = forms.load(ManualRunSchema(), fields) if not error else (None, {})
    errors.update(invalid)
    for name in ("type", "data"):
        if body is not None and unstorable_at(body[name]) is not None:
            errors[name] = REASON
    if body is None or errors:
        return editor(workflow_id, run={**typed, "errors": errors}, status=422)
    with platform().db.read() as session:
        found(session, workflow_id)
    accepted = run_now(workflow_id, body["type"], body["data"])
    return redirect(url_for("console.run", run_id=accepted.run_ids[0]), code=303)


def compared(args: Any, numbers: list[int]) -> tuple[int | None, int | None, dict[str, str]]:
    """The two versions to compare (default: the current one and the one before) and a
    message per field at fault."""
    errors: dict[str, str] = {}
    chosen: list[int | None] = []
    defaults = (numbers[-2] if len(numbers) > 1 else None, numbers[-1] if numbers else None)
    for name, default in zip(("from", "to"), defaults, strict=True):
        value = args.get(name, "").strip()
        if not value:
            chosen.append(default)
        elif value.isdigit() and int(value) in numbers:
            chosen.append(int(value))
        else:
            errors[name] = f"one of the versions: {', '.join(map(str, numbers))}"
            chosen.append(None)
    return chosen[0], chosen[1], errors


@bp.get("/workflows/<workflow_id>/versions")
def workflow_versions(workflow_id: str) -> tuple[str, int]:
    """Every version (``GET /api/v1/workflows/{id}/versions``) and the diff of two."""
    with platform().db.read() as session:
        workflow = found(session, workflow_id)
        versions = service.list_versions(session, workflow_id)
    stored = {row.version: row.definition for row in versions}
    older, newer, errors = compared(request.args, list(stored))
    diff = None
    if older is not None and newer is not None:
        labels = (f"version {older}", f"version {newer}")
        diff = diff_lines(readable(stored[older]), readable(stored[newer]), labels)
    context = {
        "workflow": workflow,
        "versions": versions[::-1],
        "older": older,
        "newer": newer,
        "diff": diff,
        "errors": errors,
        "version_options": [(str(n), f"version {n}") for n in reversed(stored)],
    }
    return render_template("console/workflow_versions.html", **context), 400 if errors else 200


@bp.get("/workflows/<workflow_id>/versions/<int:version>")
def workflow_version(workflow_id: str, version: int) -> str:
    """One stored version's YAML: ``GET /api/v1/workflows/{id}/versions/{n}``."""
    with platform().db.read() as session:
        workflow = found(session, workflow_id)
        stored = service.get_version(session, workflow_id, version)
    return render_template(
        "console/workflow_version.html",
        workflow=workflow,
        stored=stored,
        text=readable(stored.definition),
    )
