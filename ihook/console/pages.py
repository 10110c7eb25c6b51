"""The read-only lists: incoming endpoints, workflows, subscriptions and pollers."""

from __future__ import annotations

from flask import render_template, url_for

from ihook.api.context import platform
from ihook.console.blueprint import bp
from ihook.console.stats import WINDOW, endpoint_traffic
from ihook.models import Endpoint, utcnow
from ihook.services import endpoints as endpoint_service
from ihook.services import pollers as poller_service
from ihook.services import subscriptions as subscription_service
from ihook.services import workflows as workflow_service


def ingest_url(endpoint: Endpoint) -> str:
    """The endpoint's ingest URL with all but the first characters of its key hidden."""
    path = url_for("ingress.receive", key=endpoint.key_hint)
    return f"{platform().settings.public_url}{path}…"


@bp.get("/endpoints")
def endpoints() -> str:
    """Incoming endpoints, with the last day's accepted and rejected requests."""
    with platform().db.read() as session:
        rows = endpoint_service.list_endpoints(session)
        traffic = endpoint_traffic(session, utcnow() - WINDOW)
        shown = [
            {
                "endpoint": ep,
                "auth": (ep.auth or {}).get("type", "none"),
                "url": ingest_url(ep),
                "accepted": traffic.get(ep.id, (0, 0))[0],
                "rejected": traffic.get(ep.id, (0, 0))[1],
            }
            for ep in rows
        ]
    return render_template("console/endpoints.html", rows=shown)


@bp.get("/workflows")
def workflows() -> str:
    """Workflows: name, trigger, enabled, current version."""
    with platform().db.read() as session:
        shown = [
            {"workflow": wf, "trigger": workflow_service.trigger_of(session, wf)}
            for wf in workflow_service.list_workflows(session)
        ]
    return render_template("console/workflows.html", rows=shown)


@bp.get("/subscriptions")
def subscriptions() -> str:
    """Outgoing webhooks: where each sends which event types, and whether it is failing."""
    with platform().db.read() as session:
        rows = subscription_service.list_subscriptions(session)
    return render_template("console/subscriptions.html", rows=rows)


@bp.get("/pollers")
def pollers() -> str:
    """Pollers: what each requests, how often, and how its last polls went."""
    with platform().db.read() as session:
        shown = [
            {"poller": poller, "definition": poller_service.definition(poller)}
            for poller in poller_service.list_pollers(session)
        ]
    return render_template("console/pollers.html", rows=shown)
