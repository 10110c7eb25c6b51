"""A subscription's page in the console: its settings, Enable/Disable, Recover, Rotate,
Delete and its delivery log; and the look-ups the wizard shares (the subscription of a
URL, the URL rules)."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ihook.api.context import platform
from ihook.api.deliveries import STATUSES, recover
from ihook.api.schemas import SubscriptionRotateSchema
from ihook.api.subscriptions import present
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.console.forms import load
from ihook.console.runs import parse_time, range_and_page
from ihook.models import Subscription
from ihook.services import deliveries as delivery_service
from ihook.services import subscriptions as service
from ihook.storable import storable


def load_subscription(sub_id: str) -> Subscription:
    """The subscription the URL names, or a 404 page."""
    if not storable(sub_id):
        abort(404)
    with platform().db.read() as session:
        return service.get_subscription(session, sub_id)


def target_rules() -> dict[str, Any]:
    """The install's URL rules, as the API passes them to the service."""
    p = platform()
    return {"allow_http": p.settings.allow_http, "policy": p.outbound}


# A subscription's page and its delivery log ----------------------------------------------


def log_args(args: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The delivery log's filters from the query string, and a message per field at fault."""
    filters: dict[str, Any] = {}
    errors: dict[str, str] = {}
    status = args.get("status", "").strip()
    if status and status not in STATUSES:
        errors["status"] = f"one of {', '.join(STATUSES)}"
    elif status:
        filters["status"] = status
    after = args.get("after", "").strip()
    if after and storable(after):
        filters["after"] = after
    range_and_page(args, filters, errors)
    return filters, errors


def render_subscription(
    sub_id: str,
    *,
    recover_error: str | None = None,
    rotate_error: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """A subscription's settings (secrets redacted as the API does) and its delivery log."""
    sub = load_subscription(sub_id)
    filters, errors = log_args(request.args)
    with platform().db.read() as session:
        rows = [] if errors else delivery_service.list_deliveries(session, sub_id, **filters)
    query: dict[str, Any] = {
        k: v for k, v in request.args.items() if k not in ("after", "saved", "recovered")
    }
    older = None
    if len(rows) == filters["limit"]:
        older = url_for("console.subscription", sub_id=sub_id, **query, after=rows[-1].id)
    recovered = request.args.get("recovered", "")
    context = {
        "sub": sub,
        "shown": present(sub),
        "rows": rows,
        "statuses": STATUSES,
        "args": request.args,
        "errors": errors,
        "older": older,
        "newest": url_for("console.subscription", sub_id=sub_id, **query),
        "saved": request.args.get("saved") == "1",
        "recovered": int(recovered) if recovered.isdigit() else None,
        "recover_error": recover_error,
        "rotate_error": rotate_error,
    }
    if errors and status == 200:
        status = 400
    return render_template("console/subscription_page.html", **context), status


@bp.get("/subscriptions/<sub_id>")
def subscription(sub_id: str) -> tuple[str, int]:
    """One subscription: its settings, Enable/Disable, Recover and its delivery log."""
    return render_subscription(sub_id)


@bp.post("/subscriptions/<sub_id>/enabled")
def subscription_enabled(sub_id: str) -> BaseResponse:
    """Switch a subscription on or off (``PATCH {"enabled": …}``)."""
    require("write")
    if not storable(sub_id):
        abort(404)
    wanted = request.form.get("enabled") == "true"
    p = platform()
    with p.db.session() as session:
        service.update_subscription(session, p.vault, sub_id, {"enabled": wanted}, **target_rules())
    return redirect(url_for("console.subscription", sub_id=sub_id), 303)


@bp.post("/subscriptions/<sub_id>/recover")
def subscription_recover(sub_id: str) -> tuple[str, int] | BaseResponse:
    """Send again what failed since a time (``POST /api/v1/subscriptions/{id}/recover``)."""
    require("write")
    load_subscription(sub_id)
    try:
        since = parse_time(request.form.get("since", "").strip())
    except ValueError:
        problem = "a date (2024-05-01) or date and time (2024-05-01T12:30), UTC"
        return render_subscription(sub_id, recover_error=problem, status=422)
    reopened = recover(sub_id, since)
    return redirect(url_for("console.subscription", sub_id=sub_id, recovered=len(reopened)), 303)


@bp.post("/subscriptions/<sub_id>/rotate-secret")
def subscription_rotate(sub_id: str) -> tuple[str, int]:
    """A new signing secret, shown this once; the old one also signs for the grace period
    (``POST /api/v1/subscriptions/{id}/rotate-secret``)."""
    require("write")
    load_subscription(sub_id)
    form: dict[str, Any] = {}
    grace = request.form.get("grace_seconds", "").strip()
    if grace:
        # The API's schema takes JSON numbers only; a form's are text.
        form["grace_seconds"] = int(grace) if grace.lstrip("-").isdigit() else grace
    body, errors = load(SubscriptionRotateSchema(), form)
    if body is None:
        problem = errors.get("grace_seconds", "a whole number of seconds")
        return render_subscription(sub_id, rotate_error=problem, status=422)
    p = platform()
    with p.db.session() as session:
        sub, secret = service.rotate_secret(session, p.vault, sub_id, **body)
        context = {"sub": sub, "secret": secret, "grace": body["grace_seconds"]}
    return render_template("console/subscription_secret.html", **context), 200


@bp.post("/subscriptions/<sub_id>/delete")
def subscription_delete(sub_id: str) -> BaseResponse:
    """Delete the subscription and its delivery log (``DELETE /api/v1/subscriptions/{id}``)."""
    require("write")
    load_subscription(sub_id)
    with platform().db.session() as session:
        service.delete_subscription(session, sub_id)
    return redirect(url_for("console.subscriptions", deleted=1), 303)
