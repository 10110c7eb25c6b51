"""The event-type catalogue in the console: the list and each type's schema to download."""

from __future__ import annotations

import json

from flask import Response, abort, render_template

from ihook.api.context import platform
from ihook.api.event_types import SCHEMA_MEDIA_TYPE
from ihook.console.blueprint import bp
from ihook.errors import NotFound
from ihook.services import event_types as event_type_service
from ihook.storable import storable


@bp.get("/event-types")
def event_types() -> str:
    """The catalogue: built-in and stored types, each with its schema to download."""
    with platform().db.read() as session:
        rows = event_type_service.list_event_types(session)
    return render_template("console/event_types.html", rows=rows)


@bp.get("/event-types/<name>/schema")
def event_type_schema(name: str) -> Response:
    """An event type's JSON Schema as a file, as ``GET /api/v1/event-types/{name}/schema``."""
    if not storable(name):
        abort(404)
    with platform().db.read() as session:
        found = event_type_service.get_event_type(session, name)
    if found.schema is None:
        raise NotFound(f"event type {name!r} has no schema")
    body = json.dumps(found.schema, indent=2, ensure_ascii=False) + "\n"
    return Response(
        body,
        mimetype=SCHEMA_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.schema.json"'},
    )
