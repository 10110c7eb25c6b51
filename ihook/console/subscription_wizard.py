"""Outgoing webhooks in the console: the wizard, event types, the delivery log.

The wizard's first three steps (General, Authentication, Data mapping) keep what was typed
in a *draft*: the form's state, sealed by the vault (encrypted, so a password or token
never travels in clear, and tamper-proof) in one hidden field. The end of step 3 creates
the subscription disabled, as ``POST /api/v1/subscriptions`` would; step 4 sends test
events (``POST …/test``); step 5 enables it (``PATCH enabled=true``), offered only after
a test the receiver answered with 2xx since the settings last changed. Steps of a
subscription that exists read and change it (``PATCH``) instead of a draft.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from ihook.api.context import platform
from ihook.api.deliveries import send_test
from ihook.api.schemas import SubscriptionPatchSchema, SubscriptionSchema
from ihook.api.subscriptions import present
from ihook.console import forms
from ihook.console.auth import require
from ihook.console.blueprint import bp
from ihook.console.subscription_form import (
    blank_state,
    body_of,
    change_rows,
    pin,
    read_step,
    shown_on,
    state_of,
)
from ihook.console.subscription_pages import load_subscription, target_rules
from ihook.errors import IhookError, Invalid
from ihook.models import Delivery, DeliveryStatus, Event, Subscription, utcnow
from ihook.secrets import SecretError
from ihook.sender import AttemptResult, attempt_result
from ihook.services import deliveries as delivery_service
from ihook.services import event_types as event_type_service
from ihook.services import subscriptions as service
from ihook.services.subscription_fields import REDACTED, validate
from ihook.storable import storable
from workflows.errors import WorkflowError

STEPS = (
    ("general", "General"),
    ("auth", "Authentication"),
    ("mapping", "Data mapping"),
    ("test", "Test"),
    ("save", "Save"),
)
"""The wizard's steps, in order: (key, title)."""
FORM_STEPS = ("general", "auth", "mapping")
"""The steps whose fields a draft carries until the subscription is created."""
DRAFT_SECONDS = 86_400
"""How long a draft stays usable: an older one is refused as out of date."""
SCHEME = (
    "Standard Webhooks: each request carries webhook-id, webhook-timestamp and "
    "webhook-signature, v1,<base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}'>, "
    "keyed by the secret's base64 part decoded."
)
"""The signature scheme, said next to the secret shown once."""


# The draft, sealed in a hidden field, and its steps checked ------------------------------


def seal(state: dict[str, Any]) -> str:
    """The draft as the hidden field carries it: encrypted and signed by the vault."""
    return platform().vault.encrypt(json.dumps({"made": time.time(), "state": state}))


def unseal(sealed: str) -> dict[str, Any]:
    """The form state of a sealed draft; 400 when it was tampered with or is too old."""
    try:
        kept = json.loads(platform().vault.decrypt(sealed))
    except (SecretError, ValueError):
        kept = None
    if not isinstance(kept, dict) or time.time() - kept.get("made", 0) > DRAFT_SECONDS:
        abort(400, description="The draft was out of date: start the new subscription again.")
    return {**blank_state(), **kept["state"]}


def check_draft_step(step: str, state: dict[str, Any]) -> dict[str, str]:
    """A draft step's fields checked by the API's schema and the service's rules (a name
    taken included); the errors by form field."""
    body, errors = body_of(state, (step,))
    loaded, refused = forms.load(SubscriptionPatchSchema(), body)
    if loaded is None:
        return {**errors, **pin(dict(refused), state)}
    p = platform()
    # Steps after the first are checked on their own, against a subscription with nothing
    # stored (the first step's required fields were checked there).
    against = None if step == "general" else Subscription(auth={}, url="", environment="live")
    try:
        validate(loaded, against, p.vault, allow_http=p.settings.allow_http, policy=p.outbound)
    except Invalid as exc:
        errors.update(pin(exc.errors, state))
    if step == "general" and state["name"] and "name" not in errors:
        with p.db.read() as session:
            if service.name_taken(session, state["name"]):
                errors["name"] = "already taken"
    return errors


# Rendering the wizard ---------------------------------------------------------------------


def sample_type(event_types: list[str]) -> str:
    """The type of the sample event previews and tests use: the first one named exactly."""
    return next((t for t in event_types if "*" not in t), delivery_service.TEST_EVENT)


def preview(state: dict[str, Any], sub_id: str | None) -> dict[str, Any]:
    """The ``data`` a sample event's payload would carry with the mapping and fixed data as
    typed, built by the sender's own ``payload``; or why it cannot be built."""
    body, errors = body_of(state, ("general", "mapping"))
    kind = sample_type(body["event_types"])
    with platform().db.read() as session:
        data = delivery_service.sample_event_data(session, kind, sub_id or "sub_…")
    event = Event(
        id="evt_sample", type=kind, source="test", environment=state["environment"], data=data
    )
    event.received_at = utcnow()
    fixed = body["fixed_data"] if isinstance(body["fixed_data"], dict) else None
    shown: dict[str, Any] = {"type": kind, "data": None, "error": None}
    try:
        document = delivery_service.event_document(event)
        built = delivery_service.payload(
            Subscription(mapping=body["mapping"], fixed_data=fixed), document
        )
        shown["data"] = json.dumps(built["data"], indent=2, ensure_ascii=False)
    except (WorkflowError, ValueError, TypeError) as exc:
        shown["error"] = f"cannot build the payload: {exc}"
    if "fixed_data" in errors:
        shown["error"] = "the fixed data is not JSON: it is left out of the preview"
    return shown


def catalogue_of(session: Session) -> list[event_type_service.Catalogued]:
    """The event-type catalogue, minus the test event (it is not subscribed to)."""
    return [
        t
        for t in event_type_service.list_event_types(session)
        if t.name != delivery_service.TEST_EVENT
    ]


def render_step(
    step: str,
    state: dict[str, Any],
    errors: dict[str, str] | None = None,
    *,
    sub: Subscription | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """A form step of the wizard: a draft's (``sub`` None) or a stored subscription's."""
    with platform().db.read() as session:
        catalogue = catalogue_of(session)
    stored_auth = sub.auth.get("type") if sub is not None else None
    context = {
        "step": step,
        "steps": STEPS,
        "state": state,
        "errors": shown_on(step, errors or {}),
        "sub": sub,
        "draft": seal(state) if sub is None else None,
        "action": (
            url_for("console.subscription_new")
            if sub is None
            else url_for("console.subscription_setup", sub_id=sub.id, step=step)
        ),
        "catalogue": catalogue,
        "has_password": bool(state["password"]) or stored_auth == "basic",
        "has_token": bool(state["token"]) or stored_auth == "bearer",
        "redacted": REDACTED,
        "preview": preview(state, sub.id if sub else None) if step == "mapping" else None,
    }
    return render_template("console/subscription_wizard.html", **context), status


def test_refusal(session: Session, sub: Subscription, delivery_id: str | None) -> str | None:
    """None when ``delivery_id`` is a test of ``sub`` its receiver answered with 2xx since
    its settings last changed; else why Save is not offered."""
    delivery = None
    if delivery_id and storable(delivery_id):
        delivery = session.get(Delivery, delivery_id)
    event = session.get(Event, delivery.event_id) if delivery is not None else None
    if delivery is None or delivery.subscription_id != sub.id or event is None:
        return "Send a test event first: Save is offered once the receiver answers one with 2xx."
    if event.source != "test":
        return "That delivery was not a test: send a test event."
    if delivery.status != DeliveryStatus.succeeded:
        answer = f"HTTP {delivery.last_status_code}" if delivery.last_status_code else "no answer"
        return (
            f"The receiver did not answer the test with 2xx ({answer}): fix the receiver or "
            "the settings, and test again."
        )
    if delivery.created_at < sub.updated_at:
        return "The settings changed after that test: test again."
    return None


def render_test(
    sub: Subscription,
    *,
    tested: str | None = None,
    secret: str | None = None,
    error: str | None = None,
    step: str = "test",
    status: int = 200,
) -> tuple[str, int]:
    """Step 4 (Test) or 5 (Save) of a subscription: the last test's answer and why Save is
    or is not offered; the signing secret when the subscription was just created."""
    p = platform()
    result: AttemptResult | None = None
    with p.db.read() as session:
        refusal = test_refusal(session, sub, tested)
        delivery = session.get(Delivery, tested) if tested and storable(tested) else None
    if delivery is not None and delivery.subscription_id == sub.id:
        result = attempt_result(p, delivery.id)
    context = {
        "step": step,
        "steps": STEPS,
        "sub": sub,
        "shown": present(sub),
        "secret": secret,
        "scheme": SCHEME,
        "result": result,
        "tested": tested if result else None,
        "refusal": refusal,
        "error": error,
        "sample_type": sample_type(sub.event_types),
    }
    return render_template("console/subscription_test.html", **context), status


# The wizard's routes ----------------------------------------------------------------------


@bp.route("/subscriptions/new", methods=["GET", "POST"])
def subscription_new() -> tuple[str, int]:
    """Steps 1-3 of a new subscription, carried in a sealed draft; the end of step 3
    creates it disabled (``POST /api/v1/subscriptions``) and shows its secret once."""
    require("write")
    if request.method == "GET":
        return render_step("general", blank_state())
    step = request.form.get("step", "")
    if step not in FORM_STEPS:
        abort(400, description="The form named no step of the wizard.")
    state = read_step(step, request.form, unseal(request.form.get("draft", "")))
    action = request.form.get("action", "next")
    if change_rows(action, state) or action == "preview":
        return render_step(step, state)
    index = FORM_STEPS.index(step)
    if action == "back":
        return render_step(FORM_STEPS[max(index - 1, 0)], state)
    errors = check_draft_step(step, state)
    if errors:
        return render_step(step, state, errors, status=422)
    if index + 1 < len(FORM_STEPS):
        return render_step(FORM_STEPS[index + 1], state)
    return create_from_draft(state)


def create_from_draft(state: dict[str, Any]) -> tuple[str, int]:
    """Create the drafted subscription, disabled, through the API's schema and service;
    answer step 4 with the signing secret (this answer is the only one to show it)."""
    body, errors = body_of(state, FORM_STEPS)
    loaded, refused = forms.load(SubscriptionSchema(), {**body, "enabled": False})
    if loaded is None or errors:
        return render_step("mapping", state, {**errors, **pin(dict(refused), state)}, status=422)
    p = platform()
    try:
        with p.db.session() as session:
            created = service.create_subscription(session, p.vault, loaded, **target_rules())
    except IhookError as exc:
        messages = exc.errors or {forms.FORM: [exc.message]}
        return render_step("mapping", state, pin(messages, state), status=422)
    return render_test(created.subscription, secret=created.secret, status=201)


@bp.route("/subscriptions/<sub_id>/setup", methods=["GET", "POST"])
def subscription_setup(sub_id: str) -> tuple[str, int] | BaseResponse:
    """A stored subscription's wizard: steps 1-3 change it (``PATCH``), then Test and Save."""
    require("write")
    step = request.values.get("step", "general")
    if step not in dict(STEPS):
        abort(404)
    sub = load_subscription(sub_id)
    if step not in FORM_STEPS:
        if request.method == "POST":
            abort(405)
        return render_test(sub, tested=request.args.get("tested"), step=step)
    with platform().db.read() as session:
        names = [t.name for t in catalogue_of(session)]
    state = state_of(sub, names)
    if request.method == "GET":
        return render_step(step, state, sub=sub)
    state = read_step(step, request.form, state)
    action = request.form.get("action", "next")
    if change_rows(action, state) or action == "preview":
        return render_step(step, state, sub=sub)
    errors = save_step(sub_id, step, state)
    if errors:
        return render_step(step, state, errors, sub=sub, status=422)
    following = STEPS[[key for key, _ in STEPS].index(step) + 1][0]
    return redirect(url_for("console.subscription_setup", sub_id=sub_id, step=following), 303)


def save_step(sub_id: str, step: str, state: dict[str, Any]) -> dict[str, str]:
    """Change the subscription's fields of ``step`` (``PATCH``); the errors by form field."""
    body, errors = body_of(state, (step,))
    loaded, refused = forms.load(SubscriptionPatchSchema(), body)
    if loaded is None or errors:
        return {**errors, **pin(dict(refused), state)}
    p = platform()
    try:
        with p.db.session() as session:
            service.update_subscription(session, p.vault, sub_id, loaded, **target_rules())
    except IhookError as exc:
        return pin(exc.errors or {forms.FORM: [exc.message]}, state)
    return {}


@bp.post("/subscriptions/<sub_id>/test")
def subscription_test(sub_id: str) -> tuple[str, int] | BaseResponse:
    """Send a sample test event now (``POST /api/v1/subscriptions/{id}/test``)."""
    require("write")
    sub = load_subscription(sub_id)
    try:
        result = send_test(sub_id, event_type=sample_type(sub.event_types))
    except Invalid as exc:
        reasons = [r for rs in exc.errors.values() for r in rs] or [exc.message]
        return render_test(sub, error="; ".join(reasons), status=422)
    target = url_for(
        "console.subscription_setup", sub_id=sub_id, step="test", tested=result.delivery_id
    )
    return redirect(target, 303)


@bp.post("/subscriptions/<sub_id>/save")
def subscription_save(sub_id: str) -> tuple[str, int] | BaseResponse:
    """Step 5: enable the subscription (``PATCH enabled=true``) after a test answered 2xx."""
    require("write")
    tested = request.form.get("tested", "")
    p = platform()
    with p.db.read() as session:
        sub = service.get_subscription(session, sub_id) if storable(sub_id) else None
        if sub is None:
            abort(404)
        refusal = test_refusal(session, sub, tested)
    if refusal:
        return render_test(sub, tested=tested, step="save", status=409)
    with p.db.session() as session:
        service.update_subscription(session, p.vault, sub_id, {"enabled": True}, **target_rules())
    return redirect(url_for("console.subscription", sub_id=sub_id, saved=1), 303)
