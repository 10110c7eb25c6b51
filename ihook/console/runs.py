"""Runs: the filtered list, one run's step timeline, and Retry (the API's retry, as a form)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ihook.api.context import platform
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.models import FINISHED, RunStatus
from ihook.services import runs as service
from ihook.services import workflows as workflow_service
from ihook.storable import storable

PAGE = 50
"""Runs a page shows unless ``limit`` says otherwise."""
MAX_PAGE = 1000
"""The most runs a page shows (the API's cap)."""
STATUSES = [status.value for status in RunStatus]
"""The statuses the filter offers."""


def parse_time(text: str, *, end: bool = False) -> datetime:
    """A date (``2024-05-01``) or a time (``2024-05-01T12:30``) as UTC; ``end`` makes a bare
    date mean the end of that day, so ``until`` includes it."""
    value = datetime.fromisoformat(text)
    if len(text) == 10 and end:
        value = datetime.combine(value.date(), time()) + timedelta(days=1)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def list_args(args: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The run list's filters from the query string, and a message per field at fault."""
    filters: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in ("workflow_id", "event_id", "status", "after"):
        value = args.get(name, "").strip()
        if value and not storable(value):
            errors[name] = "holds characters that cannot be stored"
        elif value:
            filters[name] = value
    if filters.get("status") and filters["status"] not in STATUSES:
        errors["status"] = f"one of {', '.join(STATUSES)}"
        filters.pop("status")
    range_and_page(args, filters, errors)
    return filters, errors


def range_and_page(args: Any, filters: dict[str, Any], errors: dict[str, str]) -> None:
    """Add a log's ``since``/``until`` (UTC; a bare ``until`` date includes its day) and
    ``limit`` from the query string to ``filters``, or a message per field to ``errors``."""
    for name in ("since", "until"):
        value = args.get(name, "").strip()
        if value:
            try:
                filters[name] = parse_time(value, end=name == "until")
            except ValueError:
                errors[name] = "a date (2024-05-01) or date and time (2024-05-01T12:30)"
    limit = args.get("limit", "").strip()
    try:
        filters["limit"] = int(limit) if limit else PAGE
        if not 1 <= filters["limit"] <= MAX_PAGE:
            raise ValueError
    except ValueError:
        errors["limit"] = f"a whole number from 1 to {MAX_PAGE}"
        filters["limit"] = PAGE


@bp.get("/runs")
def runs() -> tuple[str, int]:
    """Runs newest first, filtered by workflow, status and date range, a page at a time."""
    filters, errors = list_args(request.args)
    with platform().db.read() as session:
        workflows = workflow_service.list_workflows(session)
        rows = [] if errors else service.list_runs(session, **filters)
    names = {wf.id: wf.name for wf in workflows}
    query = {k: v for k, v in request.args.items() if k != "after"}
    older = None
    if len(rows) == filters["limit"]:
        older = url_for("console.runs", **query, after=rows[-1].id)
    context = {
        "rows": rows,
        "names": names,
        "workflows": workflows,
        "statuses": STATUSES,
        "args": request.args,
        "errors": errors,
        "older": older,
        "newest": url_for("console.runs", **query),
    }
    return render_template("console/runs.html", **context), 400 if errors else 200


@bp.get("/runs/<run_id>")
def run(run_id: str) -> str:
    """One run with its step timeline."""
    if not storable(run_id):
        abort(404)
    with platform().db.read() as session:
        found = service.get_run(session, run_id)
        workflow = workflow_service.get_workflow(session, found.workflow_id)
    retried = request.args.get("retried") == "1"
    return render_template(
        "console/run.html",
        run=found,
        workflow=workflow,
        steps=found.steps or [],
        finished=found.status in FINISHED,
        retried=retried,
    )


@bp.post("/runs/<run_id>/retry")
def retry(run_id: str) -> Response:
    """Run a finished run again: ``POST /api/v1/runs/{id}/retry``, the same service."""
    require("write")
    if not storable(run_id):
        abort(404)
    p = platform()
    with p.db.session() as session:
        service.retry_run(session, run_id)
    p.queue.wake()
    return redirect(url_for("console.run", run_id=run_id, retried=1), code=303)
