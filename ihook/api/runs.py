"""``/api/v1/runs``: executions and their step logs."""

from __future__ import annotations

from flask.views import MethodView

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import RunDetailSchema, RunListArgs, RunSchema
from ihook.models import Run
from ihook.services import runs as service

blp = Blueprint(
    "runs",
    __name__,
    url_prefix="/api/v1/runs",
    description="Runs: one workflow version executed for one event, with every step logged.",
)


@blp.route("")
class Runs(MethodView):
    @blp.arguments(RunListArgs, location="query")
    @blp.response(200, RunSchema(many=True))
    def get(self, args: dict) -> list[Run]:
        """List runs, newest first (filter by workflow_id, event_id, status, since/until)"""
        with platform().db.session() as session:
            return service.list_runs(session, **args)


@blp.route("/<run_id>")
class RunById(MethodView):
    @blp.response(200, RunDetailSchema)
    @errors(blp, 404)
    def get(self, run_id: str) -> Run:
        """Get a run with its step log"""
        with platform().db.session() as session:
            return service.get_run(session, run_id)


@blp.route("/<run_id>/retry")
class Retry(MethodView):
    @blp.response(202, RunSchema)
    @errors(blp, 404, 409)
    def post(self, run_id: str) -> Run:
        """Run a finished run again, on the same workflow version"""
        p = platform()
        with p.db.session() as session:
            run = service.retry_run(session, run_id)
        p.queue.wake()
        return run
