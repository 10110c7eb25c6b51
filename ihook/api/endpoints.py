"""``/api/v1/endpoints``: incoming webhooks."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView
from sqlalchemy.orm import Session

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import (
    EndpointPatchSchema,
    EndpointSchema,
    EndpointSecretsSchema,
    ListArgs,
    RejectionSchema,
    RotateSchema,
)
from ihook.models import Endpoint, Rejection
from ihook.services import endpoints as service

blp = Blueprint(
    "endpoints",
    __name__,
    url_prefix="/api/v1/endpoints",
    description="Incoming webhooks: secret URLs that turn callbacks into events and runs.",
)


def present(session: Session, endpoint: Endpoint, created: service.Created | None = None) -> dict:
    """An endpoint as the API shows it; key and secret only right after creation/rotation."""
    body: dict[str, Any] = {
        name: getattr(endpoint, name)
        for name in (
            "id name description enabled auth allow_ips schema dedupe event_type rate_limit "
            "response_mode sync_timeout key_hint created_at updated_at"
        ).split()
    }
    body["workflows"] = service.workflow_ids(session, endpoint.id)
    if created is not None:
        if created.key:
            path = url_for("ingress.receive", key=created.key)
            body["ingest_url"] = platform().settings.public_url + path
        if created.secret:
            body["secret"] = created.secret
    return body


@blp.route("")
class Endpoints(MethodView):
    @blp.response(200, EndpointSchema(many=True))
    def get(self) -> list[dict]:
        """List endpoints"""
        with platform().db.session() as session:
            return [present(session, e) for e in service.list_endpoints(session)]

    @blp.arguments(EndpointSchema)
    @blp.response(201, EndpointSecretsSchema)
    @errors(blp, 409)
    def post(self, body: dict) -> dict:
        """Create an endpoint

        The answer holds `ingest_url` and, for secret-based auth, `secret`: both are
        shown this once (they are stored hashed or encrypted).
        """
        p = platform()
        with p.db.session() as session:
            created = service.create_endpoint(session, p.vault, body)
            return present(session, created.endpoint, created)


@blp.route("/<endpoint_id>")
class EndpointById(MethodView):
    @blp.response(200, EndpointSchema)
    @errors(blp, 404)
    def get(self, endpoint_id: str) -> dict:
        """Get an endpoint"""
        with platform().db.session() as session:
            return present(session, service.get_endpoint(session, endpoint_id))

    @blp.arguments(EndpointPatchSchema)
    @blp.response(200, EndpointSchema)
    @errors(blp, 404, 409)
    def patch(self, body: dict, endpoint_id: str) -> dict:
        """Change an endpoint (its secret changes only through rotate-secret)"""
        with platform().db.session() as session:
            return present(session, service.update_endpoint(session, endpoint_id, body))

    @blp.response(204)
    @errors(blp, 404)
    def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint (its events are kept)"""
        with platform().db.session() as session:
            service.delete_endpoint(session, endpoint_id)


@blp.route("/<endpoint_id>/rotate-secret")
class RotateSecret(MethodView):
    @blp.arguments(RotateSchema)
    @blp.response(200, EndpointSecretsSchema)
    @errors(blp, 404)
    def post(self, body: dict, endpoint_id: str) -> dict:
        """Rotate an endpoint's secret (and optionally its URL key)

        The previous secret keeps working for `grace_seconds` (default one day) so the
        sender can switch over; the new secret is shown this once.
        """
        p = platform()
        with p.db.session() as session:
            created = service.rotate_secret(session, p.vault, endpoint_id, **body)
            return present(session, created.endpoint, created)


@blp.route("/<endpoint_id>/rejections")
class Rejections(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, RejectionSchema(many=True))
    @errors(blp, 404)
    def get(self, args: dict, endpoint_id: str) -> list[Rejection]:
        """List requests the endpoint refused (newest first; secrets redacted)"""
        with platform().db.session() as session:
            return service.list_rejections(session, endpoint_id, **args)
