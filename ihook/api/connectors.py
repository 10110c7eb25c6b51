"""``/api/v1/connectors``: connections workflows use by name."""

from __future__ import annotations

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import ConnectorPatchSchema, ConnectorSchema
from ihook.models import Connector
from ihook.services import connectors as service

blp = Blueprint(
    "connectors",
    __name__,
    url_prefix="/api/v1/connectors",
    description="Connectors: named connections (http, …); secret fields are write-only.",
)


@blp.route("")
class Connectors(MethodView):
    @blp.response(200, ConnectorSchema(many=True))
    def get(self) -> list[Connector]:
        """List connectors"""
        with platform().db.session() as session:
            return service.list_connectors(session)

    @blp.arguments(ConnectorSchema)
    @blp.response(201, ConnectorSchema)
    @errors(blp, 409)
    def post(self, body: dict) -> Connector:
        """Create a connector (its config is checked against its kind)"""
        p = platform()
        with p.db.session() as session:
            return service.create_connector(session, p.vault, body)


@blp.route("/<connector_id>")
class ConnectorById(MethodView):
    @blp.response(200, ConnectorSchema)
    @errors(blp, 404)
    def get(self, connector_id: str) -> Connector:
        """Get a connector (secret fields left out)"""
        with platform().db.session() as session:
            return service.get_connector(session, connector_id)

    @blp.arguments(ConnectorPatchSchema)
    @blp.response(200, ConnectorSchema)
    @errors(blp, 404, 409)
    def patch(self, body: dict, connector_id: str) -> Connector:
        """Rename or reconfigure; `config` is merged into the stored one, secrets kept"""
        p = platform()
        with p.db.session() as session:
            return service.update_connector(session, p.vault, connector_id, body)

    @blp.response(204)
    @errors(blp, 404)
    def delete(self, connector_id: str) -> None:
        """Delete a connector"""
        with platform().db.session() as session:
            service.delete_connector(session, connector_id)
