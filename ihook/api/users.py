"""``/api/v1/users``: the people who sign in to the console with a password (``admin``)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import UserSchema, UserUpdateSchema
from ihook.models import User
from ihook.services import users as service

blp = Blueprint(
    "users",
    __name__,
    url_prefix="/api/v1/users",
    description="Console users (the `admin` scope): create, list, change, disable, delete. "
    "Passwords are write-only and stored as salted scrypt hashes.",
)


@blp.route("")
class Users(MethodView):
    @blp.response(200, UserSchema(many=True))
    def get(self) -> list[User]:
        """List users, by name (never their passwords)"""
        with platform().db.read() as session:
            return service.list_users(session)

    @blp.arguments(UserSchema)
    @blp.response(201, UserSchema)
    @errors(blp, 409)
    def post(self, body: dict[str, Any]) -> User:
        """Create a user; 409 when the name is taken, whatever its case"""
        with platform().db.session() as session:
            return service.create_user(
                session,
                body["username"],
                body["password"],
                body["scopes"],
                body.get("display_name"),
                body["enabled"],
            )


@blp.route("/<user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    @errors(blp, 404)
    def get(self, user_id: str) -> User:
        """Get a user (never the password)"""
        with platform().db.read() as session:
            return service.get_user(session, user_id)

    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    @errors(blp, 404)
    def patch(self, changes: dict[str, Any], user_id: str) -> User:
        """Change a user's display name, scopes, enabled or password; a new password or
        disabling signs the user's console sessions out"""
        with platform().db.session() as session:
            return service.update_user(session, user_id, changes)

    @blp.response(204)
    @errors(blp, 404)
    def delete(self, user_id: str) -> None:
        """Delete a user; its console sessions end at their next page"""
        with platform().db.session() as session:
            service.delete_user(session, user_id)
