"""``/api/v1/health``: is the database up, is Redis up, do workers and schedulers run."""

from __future__ import annotations

from flask.views import MethodView
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from ihook import __version__
from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.schemas import HealthSchema
from ihook.models import Delivery, DeliveryStatus, Run, RunStatus
from ihook.scheduler import schedulers_alive

blp = Blueprint("health", __name__, url_prefix="/api/v1/health", description="Health (no token).")


@blp.route("")
class Health(MethodView):
    @blp.doc(security=[])
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="the database is down")
    def get(self) -> tuple[dict, int]:
        """Report the state of the database, Redis, workers and queues"""
        p = platform()
        body: dict = {"version": __version__, "database": "ok", "redis": "ok"}
        try:
            with p.db.session() as session:
                session.execute(text("SELECT 1"))
                queued = select(func.count()).where(Run.status == RunStatus.queued)
                body["queued_runs"] = session.scalar(queued)
                pending = select(func.count()).where(Delivery.status == DeliveryStatus.pending)
                body["pending_deliveries"] = session.scalar(pending)
        except SQLAlchemyError as exc:
            body["database"] = f"error: {type(exc).__name__}"
        try:
            body["queue_depth"] = p.queue.depth()
            body["delivery_queue_depth"] = p.deliveries.depth()
            body["workers"] = Worker.count(connection=p.redis)
            body["schedulers"], body["scheduler_last_tick_seconds"] = schedulers_alive(p)
        except (RedisError, ValueError) as exc:
            body["redis"] = f"error: {type(exc).__name__}"
        up = body["database"] == "ok"
        body["status"] = "ok" if up and body["redis"] == "ok" else ("degraded" if up else "down")
        return body, 200 if up else 503
