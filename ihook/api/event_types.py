"""``/api/v1/event-types``: the catalogue of event types and the schemas of their data."""

from __future__ import annotations

import json

from flask import Response
from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import EventTypeSchema, EventTypeUpdateSchema
from ihook.errors import NotFound
from ihook.services import event_types as service
from ihook.services.event_types import Catalogued

SCHEMA_MEDIA_TYPE = "application/schema+json"
"""The media type of a downloaded schema."""

blp = Blueprint(
    "event-types",
    __name__,
    url_prefix="/api/v1/event-types",
    description="Event types: what events are called and the JSON Schema their data meets.",
)


@blp.route("")
class EventTypes(MethodView):
    @blp.response(200, EventTypeSchema(many=True))
    def get(self) -> list[Catalogued]:
        """List event types: the built-in ones, then yours, each by name"""
        with platform().db.session() as session:
            return service.list_event_types(session)

    @blp.arguments(EventTypeSchema)
    @blp.response(201, EventTypeSchema)
    @errors(blp, 409)
    def post(self, body: dict) -> Catalogued:
        """Create an event type

        Its `schema` must be a valid JSON Schema (draft 2020-12); events published with
        this type must then meet it. A built-in or taken name is 409.
        """
        with platform().db.session() as session:
            return service.create_event_type(session, body)


@blp.route("/<name>")
class EventTypeByName(MethodView):
    @blp.response(200, EventTypeSchema)
    @errors(blp, 404)
    def get(self, name: str) -> Catalogued:
        """Get an event type"""
        with platform().db.session() as session:
            return service.get_event_type(session, name)

    @blp.arguments(EventTypeUpdateSchema)
    @blp.response(200, EventTypeSchema)
    @errors(blp, 404, 409)
    def put(self, body: dict, name: str) -> Catalogued:
        """Change an event type's description or schema (built-in ones are 409)

        Fields left out keep their values; `"schema": null` removes the schema.
        """
        with platform().db.session() as session:
            return service.update_event_type(session, name, body)

    @blp.response(204)
    @errors(blp, 404, 409)
    def delete(self, name: str) -> None:
        """Delete an event type (built-in ones are 409); its events are kept"""
        with platform().db.session() as session:
            service.delete_event_type(session, name)


@blp.route("/<name>/schema")
class EventTypeSchemaFile(MethodView):
    @blp.response(
        200,
        {"type": "object", "description": "a JSON Schema (draft 2020-12)"},
        content_type=SCHEMA_MEDIA_TYPE,
        description="the schema, as a file named `<name>.schema.json`",
    )
    @errors(blp, 404)
    def get(self, name: str) -> Response:
        """Download an event type's JSON Schema (404 when it has none)"""
        return schema_file(name)


def schema_file(name: str) -> Response:
    """An event type's JSON Schema as a file to download; NotFound when it has none."""
    with platform().db.read() as session:
        event_type = service.get_event_type(session, name)
    if event_type.schema is None:
        raise NotFound(f"event type {name!r} has no schema")
    body = json.dumps(event_type.schema, indent=2, ensure_ascii=False) + "\n"
    return Response(
        body,
        mimetype=SCHEMA_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.schema.json"'},
    )
