"""``/api/v1/events``: what happened, and replays."""

from __future__ import annotations

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import EventListArgs, EventSchema, PublishSchema, QueuedSchema
from ihook.models import Event
from ihook.services import events as service
from ihook.services.event_types import check_data

blp = Blueprint(
    "events",
    __name__,
    url_prefix="/api/v1/events",
    description="Events: everything received, stored before it was acknowledged.",
)


@blp.route("")
class Events(MethodView):
    @blp.arguments(PublishSchema)
    @blp.response(202, QueuedSchema)
    @blp.alt_response(200, schema=QueuedSchema, description="seen before (the same `id`)")
    def post(self, body: dict) -> tuple[dict, int]:
        """Publish an event: it is stored, then the workflows its type triggers run

        When the type is in the catalogue with a schema, `data` must meet it: 422 lists
        each violation as `<json path>: <message>` under `data`, and nothing is stored.
        """
        p = platform()
        with p.db.read() as session:
            check_data(session, body["type"], body["data"])
        accepted = service.store_event(
            p.db,
            type=body["type"],
            source=body["source"],
            data=body["data"],
            headers={},
            dedupe_key=body.get("id") or body.get("idempotency_key"),
            environment=body["environment"],
        )
        if accepted.duplicate:
            return {"event_id": accepted.event_id, "runs": [], "duplicate": True}, 200
        p.dispatch(accepted)
        return {"event_id": accepted.event_id, "runs": accepted.run_ids}, 202

    @blp.arguments(EventListArgs, location="query")
    @blp.response(200, EventSchema(many=True))
    def get(self, args: dict) -> list[Event]:
        """List events, newest first (filter by type, source, since/until; page with after)"""
        with platform().db.session() as session:
            return service.list_events(session, **args)


@blp.route("/<event_id>")
class EventById(MethodView):
    @blp.response(200, EventSchema)
    @errors(blp, 404)
    def get(self, event_id: str) -> Event:
        """Get an event"""
        with platform().db.session() as session:
            return service.get_event(session, event_id)


@blp.route("/<event_id>/replay")
class Replay(MethodView):
    @blp.response(202, QueuedSchema)
    @errors(blp, 404)
    def post(self, event_id: str) -> dict:
        """Run an event again through the workflows its endpoint triggers now"""
        p = platform()
        with p.db.session() as session:
            run_ids = service.replay_event(session, event_id)
        if run_ids:
            p.queue.wake()
        return {"event_id": event_id, "runs": run_ids}
