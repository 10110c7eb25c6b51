"""``/api/v1/tokens``: management API tokens, their scopes, expiry and revocation."""

from __future__ import annotations

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import NewTokenSchema, TokenSchema
from ihook.models import ApiToken
from ihook.services import tokens as service

blp = Blueprint(
    "tokens",
    __name__,
    url_prefix="/api/v1/tokens",
    description="API tokens (the `admin` scope): create, list, revoke. Stored hashed.",
)


@blp.route("")
class Tokens(MethodView):
    @blp.response(200, TokenSchema(many=True))
    def get(self) -> list[ApiToken]:
        """List tokens, revoked ones included (never their values)"""
        with platform().db.session() as session:
            return service.list_tokens(session)

    @blp.arguments(TokenSchema)
    @blp.response(201, NewTokenSchema)
    def post(self, body: dict) -> dict:
        """Create a token; its value is in this answer and never again"""
        with platform().db.session() as session:
            row, value = service.create_token(
                session, body["name"], body["scopes"], body.get("expires_at")
            )
            shown = {field: getattr(row, field) for field in TokenSchema().fields}
            return {**shown, "token": value}


@blp.route("/<token_id>")
class TokenById(MethodView):
    @blp.response(200, TokenSchema)
    @errors(blp, 404)
    def get(self, token_id: str) -> ApiToken:
        """Get a token (never its value)"""
        with platform().db.session() as session:
            return service.get_token(session, token_id)

    @blp.response(200, TokenSchema)
    @errors(blp, 404, 409)
    def delete(self, token_id: str) -> ApiToken:
        """Revoke a token: every request with it is refused (401) from now on; kept, for
        the record"""
        with platform().db.session() as session:
            return service.revoke_token(session, token_id)
