"""A delivery in the console: its page (event, status, every attempt) and resend."""

from __future__ import annotations

import json

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ihook.api.context import platform
from ihook.api.deliveries import resend
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.models import DeliveryStatus
from ihook.services import deliveries as delivery_service
from ihook.storable import storable

BODY_SHOWN = 4000
"""Characters of a delivery's body its page shows."""


@bp.get("/deliveries/<delivery_id>")
def delivery(delivery_id: str) -> str:
    """One delivery: its event, status and every attempt's request and answer."""
    if not storable(delivery_id):
        abort(404)
    with platform().db.read() as session:
        found = delivery_service.get_delivery(session, delivery_id)
        sub = delivery_service.subscription_of(session, found)
        attempts = delivery_service.attempts_of(session, delivery_id)
    body = json.dumps(found.body, indent=2, ensure_ascii=False) if found.body is not None else ""
    return render_template(
        "console/delivery.html",
        delivery=found,
        sub=sub,
        attempts=attempts,
        body=body[:BODY_SHOWN] + ("…" if len(body) > BODY_SHOWN else ""),
        finished=found.status in (DeliveryStatus.succeeded, DeliveryStatus.failed),
        resent=request.args.get("resent") == "1",
    )


@bp.post("/deliveries/<delivery_id>/retry")
def delivery_retry(delivery_id: str) -> BaseResponse:
    """Resend a finished delivery now (``POST /api/v1/deliveries/{id}/retry``)."""
    require("write")
    if not storable(delivery_id):
        abort(404)
    resend(delivery_id)
    return redirect(url_for("console.delivery", delivery_id=delivery_id, resent=1), 303)
