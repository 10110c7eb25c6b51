"""``/api/v1/subscriptions``: outgoing webhooks."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import (
    SubscriptionPatchSchema,
    SubscriptionRotateSchema,
    SubscriptionSchema,
    SubscriptionSecretSchema,
)
from ihook.models import Subscription
from ihook.services import subscriptions as service

blp = Blueprint(
    "subscriptions",
    __name__,
    url_prefix="/api/v1/subscriptions",
    description="Outgoing webhooks: events sent, signed, to the systems that subscribe.",
)

SHOWN = (
    "id name description enabled environment event_types filter url auth mapping fixed_data "
    "error_emails retry_schedule disabled_reason failing_since created_at updated_at"
).split()
"""What an answer shows; secrets never (header values read ``***``)."""


def present(sub: Subscription, secret: str | None = None) -> dict[str, Any]:
    """A subscription as the API shows it; the signing secret only after creation/rotation."""
    body: dict[str, Any] = {name: getattr(sub, name) for name in SHOWN}
    body["headers"] = {name: service.REDACTED for name in sub.header_names}
    if secret is not None:
        body["secret"] = secret
    return body


def _target_rules() -> dict[str, Any]:
    p = platform()
    return {"allow_http": p.settings.allow_http, "policy": p.outbound}


@blp.route("")
class Subscriptions(MethodView):
    @blp.response(200, SubscriptionSchema(many=True))
    def get(self) -> list[dict]:
        """List subscriptions"""
        with platform().db.session() as session:
            return [present(s) for s in service.list_subscriptions(session)]

    @blp.arguments(SubscriptionSchema)
    @blp.response(201, SubscriptionSecretSchema)
    @errors(blp, 409)
    def post(self, body: dict) -> dict:
        """Create a subscription

        The URL must be https unless the subscription is `sandbox` or the install allows
        http, and may not reach private addresses unless the install allows them. The
        answer holds the `whsec_` signing `secret`: it is shown this once.
        """
        p = platform()
        with p.db.session() as session:
            created = service.create_subscription(session, p.vault, body, **_target_rules())
            return present(created.subscription, created.secret)


@blp.route("/<sub_id>")
class SubscriptionById(MethodView):
    @blp.response(200, SubscriptionSchema)
    @errors(blp, 404)
    def get(self, sub_id: str) -> dict:
        """Get a subscription (its secrets left out)"""
        with platform().db.session() as session:
            return present(service.get_subscription(session, sub_id))

    @blp.arguments(SubscriptionSchema)
    @blp.response(200, SubscriptionSchema)
    @errors(blp, 404, 409)
    def put(self, body: dict, sub_id: str) -> dict:
        """Replace a subscription's settings

        Settings left out get their defaults, except `enabled`, `auth` and `headers`,
        which keep their values: secrets cannot be read back to send again. A header value
        of `***` keeps the stored value, as does an auth of the same type without its
        password or token.
        """
        p = platform()
        fields = {**service.DEFAULTS, **body}
        with p.db.session() as session:
            sub = service.update_subscription(session, p.vault, sub_id, fields, **_target_rules())
            return present(sub)

    @blp.arguments(SubscriptionPatchSchema)
    @blp.response(200, SubscriptionSchema)
    @errors(blp, 404, 409)
    def patch(self, body: dict, sub_id: str) -> dict:
        """Change some of a subscription's settings (enabling it clears `disabled_reason`)"""
        p = platform()
        with p.db.session() as session:
            sub = service.update_subscription(session, p.vault, sub_id, body, **_target_rules())
            return present(sub)

    @blp.response(204)
    @errors(blp, 404)
    def delete(self, sub_id: str) -> None:
        """Delete a subscription and its deliveries"""
        with platform().db.session() as session:
            service.delete_subscription(session, sub_id)


@blp.route("/<sub_id>/rotate-secret")
class RotateSecret(MethodView):
    @blp.arguments(SubscriptionRotateSchema)
    @blp.response(200, SubscriptionSecretSchema)
    @errors(blp, 404)
    def post(self, body: dict, sub_id: str) -> dict:
        """Rotate a subscription's signing secret

        Deliveries are signed with both the new and the previous secret for
        `grace_seconds` (default one day), so receivers can switch over; the new secret
        is shown this once.
        """
        p = platform()
        with p.db.session() as session:
            sub, secret = service.rotate_secret(session, p.vault, sub_id, **body)
            return present(sub, secret)
