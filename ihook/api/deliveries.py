"""Deliveries: each event sent to a subscription, its attempts, tests and re-sends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from ihook import sender
from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import ListArgs, SubscriptionTestSchema
from ihook.models import Delivery
from ihook.services import deliveries as service
from ihook.services.subscriptions import get_subscription

blp = Blueprint(
    "deliveries",
    __name__,
    url_prefix="/api/v1",
    description="Deliveries: one event sent to one subscription, every attempt logged.",
)

STATUSES = ["pending", "sending", "succeeded", "failed"]


class AttemptSchema(Schema):
    """One try at a delivery."""

    number = fields.Int()
    started_at = fields.DateTime()
    url = fields.Str()
    request_headers = fields.Dict(metadata={"description": "as sent, secrets redacted"})
    status_code = fields.Int(allow_none=True)
    response_excerpt = fields.Str(allow_none=True, metadata={"description": "first 2,000 chars"})
    duration_ms = fields.Float(allow_none=True)
    error = fields.Str(allow_none=True)


class DeliverySchema(Schema):
    """One event sent to one subscription; its id is the ``webhook-id`` header."""

    id = fields.Str()
    subscription_id = fields.Str()
    event_id = fields.Str()
    event_type = fields.Str()
    status = fields.Str(metadata={"description": " / ".join(STATUSES)})
    attempts = fields.Int()
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime(metadata={"description": "when pending: the next try"})
    finished_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Int(allow_none=True)
    last_error = fields.Str(allow_none=True)
    alert = fields.Str(allow_none=True, metadata={"description": "the error e-mail's fate"})


class DeliveryDetailSchema(DeliverySchema):
    """A delivery with its body and every attempt."""

    body = fields.Raw(metadata={"description": "the payload, the same on every attempt"})
    attempt_log = fields.List(fields.Nested(AttemptSchema), data_key="attempt_log")


class DeliveryListArgs(ListArgs):
    """Filters of a subscription's delivery log."""

    status = fields.Str(validate=validate.OneOf(STATUSES))
    event_type = fields.Str()


class RecoverArgs(Schema):
    """Which failed deliveries to send again."""

    since = fields.AwareDateTime(
        required=True, default_timezone=UTC, metadata={"description": "failed since this time"}
    )


class RecoveredSchema(Schema):
    """What a recover call queued."""

    deliveries = fields.List(fields.Str())


class TestResultSchema(Schema):
    """The receiver's answer to a test event."""

    delivery_id = fields.Str()
    succeeded = fields.Bool()
    status_code = fields.Int(allow_none=True)
    duration_ms = fields.Float(allow_none=True)
    response_excerpt = fields.Str(allow_none=True)
    error = fields.Str(allow_none=True)


@blp.route("/subscriptions/<sub_id>/deliveries")
class SubscriptionDeliveries(MethodView):
    @blp.arguments(DeliveryListArgs, location="query")
    @blp.response(200, DeliverySchema(many=True))
    @errors(blp, 404)
    def get(self, args: dict, sub_id: str) -> list[Delivery]:
        """A subscription's delivery log, newest first (status, event_type, since/until)"""
        with platform().db.session() as session:
            get_subscription(session, sub_id)
            return service.list_deliveries(session, sub_id, **args)


@blp.route("/subscriptions/<sub_id>/test")
class TestDelivery(MethodView):
    @blp.arguments(SubscriptionTestSchema, required=False)
    @blp.response(200, TestResultSchema)
    @errors(blp, 404)
    def post(self, body: dict, sub_id: str) -> sender.AttemptResult:
        """Send a test event now and answer with the receiver's status and body

        With no body, an `ihook.test` event is sent as is (no mapping). With
        `event_type` (one the subscription takes) and/or `data`, a sample event of that
        type is sent through the mapping and fixed data, as a real one would be; without
        `data`, its data is made from the type's schema. Either way it is one attempt,
        not retried, that does not count towards disabling the subscription.
        """
        return send_test(sub_id, **body)


def send_test(sub_id: str, **sample: Any) -> sender.AttemptResult:
    """Store a test delivery for the subscription, make its one attempt now, answer how it went."""
    p = platform()
    with p.db.session() as session:
        sub = get_subscription(session, sub_id)
        delivery_id = service.add_test_delivery(session, sub, **sample)
    sender.send_delivery(p, delivery_id, single=True)
    return sender.attempt_result(p, delivery_id)


@blp.route("/subscriptions/<sub_id>/recover")
class Recover(MethodView):
    @blp.arguments(RecoverArgs, location="query")
    @blp.response(202, RecoveredSchema)
    @errors(blp, 404)
    def post(self, args: dict, sub_id: str) -> dict:
        """Send again every delivery of the subscription that failed since a time"""
        return {"deliveries": recover(sub_id, args["since"])}


def recover(sub_id: str, since: datetime) -> list[str]:
    """Reopen the subscription's deliveries that failed since ``since``, wake the senders;
    the ids reopened."""
    p = platform()
    with p.db.session() as session:
        get_subscription(session, sub_id)
        todo = service.recover(session, sub_id, since)
    if todo:
        p.deliveries.wake()
    return todo


@blp.route("/deliveries/<delivery_id>")
class DeliveryById(MethodView):
    @blp.response(200, DeliveryDetailSchema)
    @errors(blp, 404)
    def get(self, delivery_id: str) -> dict:
        """Get a delivery with its body and every attempt"""
        with platform().db.session() as session:
            delivery = service.get_delivery(session, delivery_id)
            shown = {name: getattr(delivery, name) for name in DeliverySchema().fields}
            return {
                **shown,
                "body": delivery.body,
                "attempt_log": service.attempts_of(session, delivery_id),
            }


@blp.route("/deliveries/<delivery_id>/retry")
class RetryDelivery(MethodView):
    @blp.response(202, DeliverySchema)
    @errors(blp, 404, 409)
    def post(self, delivery_id: str) -> Delivery:
        """Send a finished delivery once more, now"""
        return resend(delivery_id)


def resend(delivery_id: str) -> Delivery:
    """Reopen a finished delivery for one more attempt now and wake the senders; the
    delivery as committed (a worker may be sending it already)."""
    p = platform()
    with p.db.session() as session:
        delivery = service.retry_delivery(session, delivery_id)
    p.deliveries.wake()
    return delivery
