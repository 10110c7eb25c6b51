"""The event-type catalogue in the console: the list and each type's schema to download."""

from __future__ import annotations

from flask import Response, abort, render_template

from ihook.api.context import platform
from ihook.api.event_types import schema_file
from ihook.console.blueprint import bp
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
    """An event type's JSON Schema as a file: ``GET /api/v1/event-types/{name}/schema``."""
    if not storable(name):
        abort(404)
    return schema_file(name)
