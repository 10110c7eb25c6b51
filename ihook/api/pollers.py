"""``/api/v1/pollers``: scheduled requests to systems that cannot push, and their polls."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import (
    ListArgs,
    PollDetailSchema,
    PollerBodySchema,
    PollerPatchSchema,
    PollerSchema,
    PollNowSchema,
    PollSchema,
)
from ihook.models import Poll, Poller
from ihook.services import pollers as service
from ihook.services import polls

blp = Blueprint(
    "pollers",
    __name__,
    url_prefix="/api/v1/pollers",
    description="Pollers: scheduled requests whose new items become events.",
)

STATE = "cursor failures retry_after last_slot schedule_from created_at updated_at".split()
"""What an answer shows besides the definition: where the poller stands."""


def present(poller: Poller, workflows: list[str]) -> dict[str, Any]:
    """A poller as the API shows it: its own ``id`` and ``cursor``, the expressions renamed."""
    body = service.definition(poller)
    body["id_expression"] = body.pop("id")
    body["cursor_expression"] = body.pop("cursor")
    body.update({name: getattr(poller, name) for name in STATE})
    body["id"] = poller.id
    body["workflows"] = workflows
    return body


def _present(session: Any, poller: Poller) -> dict[str, Any]:
    return present(poller, service.fed_workflows(session, poller.name))


@blp.route("")
class Pollers(MethodView):
    @blp.response(200, PollerSchema(many=True))
    def get(self) -> list[dict]:
        """List pollers"""
        with platform().db.session() as session:
            return [_present(session, p) for p in service.list_pollers(session)]

    @blp.arguments(PollerBodySchema)
    @blp.response(201, PollerSchema)
    @errors(blp, 409)
    def post(self, body: dict) -> dict:
        """Create a poller

        `request` names an http connector or gives a URL (a literal one must pass the
        outbound guard now); exactly one of `interval_seconds` (at least 5) and `cron`.
        `initial_cursor` is the cursor the first poll starts from.
        """
        p = platform()
        with p.db.session() as session:
            poller = service.create_poller(session, body, policy=p.outbound)
            return _present(session, poller)


@blp.route("/<poller_id>")
class PollerById(MethodView):
    @blp.response(200, PollerSchema)
    @errors(blp, 404)
    def get(self, poller_id: str) -> dict:
        """Get a poller"""
        with platform().db.session() as session:
            return _present(session, service.get_poller(session, poller_id))

    @blp.arguments(PollerBodySchema)
    @blp.response(200, PollerSchema)
    @errors(blp, 404, 409)
    def put(self, body: dict, poller_id: str) -> dict:
        """Replace a poller's definition

        Fields left out get their defaults, except `enabled` and the cursor, which keep
        their values (`initial_cursor` sets the cursor). A changed schedule counts its
        slots from now.
        """
        p = platform()
        with p.db.session() as session:
            poller = service.update_poller(session, poller_id, body, policy=p.outbound)
            return _present(session, poller)

    @blp.arguments(PollerPatchSchema)
    @blp.response(200, PollerSchema)
    @errors(blp, 404, 409)
    def patch(self, body: dict, poller_id: str) -> dict:
        """Change some of a poller's fields (`request` and `pagination` are given whole)"""
        p = platform()
        with p.db.session() as session:
            poller = service.update_poller(
                session, poller_id, body, policy=p.outbound, partial=True
            )
            return _present(session, poller)

    @blp.response(204)
    @errors(blp, 404)
    def delete(self, poller_id: str) -> None:
        """Delete a poller with its poll log (its events are kept)"""
        with platform().db.session() as session:
            service.delete_poller(session, poller_id)


@blp.route("/<poller_id>/poll-now")
class PollNow(MethodView):
    @blp.response(202, PollNowSchema)
    @errors(blp, 404, 503)
    def post(self, poller_id: str) -> dict:
        """Queue a poll now, outside the schedule"""
        p = platform()
        with p.db.session() as session:
            job_id = service.poll_now(session, p.polls, poller_id)
        return {"poller_id": poller_id, "job_id": job_id}


@blp.route("/<poller_id>/polls")
class Polls(MethodView):
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, PollSchema(many=True))
    @errors(blp, 404)
    def get(self, args: dict, poller_id: str) -> list[Poll]:
        """List a poller's polls, newest first (since/until on the start time)"""
        with platform().db.session() as session:
            return polls.list_polls(session, poller_id, **args)


@blp.route("/<poller_id>/polls/<poll_id>")
class PollById(MethodView):
    @blp.response(200, PollDetailSchema)
    @errors(blp, 404)
    def get(self, poller_id: str, poll_id: str) -> Poll:
        """Get one poll, with the ids of the events it stored"""
        with platform().db.session() as session:
            service.get_poller(session, poller_id)
            return polls.get_poll(session, poll_id, poller_id=poller_id)
