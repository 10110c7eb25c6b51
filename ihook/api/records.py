"""``/api/v1/records``: read the built-in record store."""

from __future__ import annotations

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import RecordListArgs, RecordSchema
from ihook.models import Record
from ihook.services import records as service

blp = Blueprint(
    "records",
    __name__,
    url_prefix="/api/v1/records",
    description="Records: JSON documents that workflows insert, update and upsert by key.",
)


@blp.route("/<collection>")
class Records(MethodView):
    @blp.arguments(RecordListArgs, location="query")
    @blp.response(200, RecordSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND", description="the collection name cannot exist")
    def get(self, args: dict, collection: str) -> list[Record]:
        """List a collection's records in key order"""
        with platform().db.session() as session:
            return service.list_records(session, collection, **args)


@blp.route("/<collection>/<path:key>")
class RecordByKey(MethodView):
    @blp.response(200, RecordSchema)
    @errors(blp, 404)
    def get(self, collection: str, key: str) -> Record:
        """Get one record"""
        with platform().db.session() as session:
            return service.get_record(session, collection, key)
