"""``/api/v1/workflows``: definitions, versions and manual validation."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy.orm import Session

from ihook.api.context import platform
from ihook.api.parsing import Blueprint
from ihook.api.responses import errors
from ihook.api.schemas import (
    ManualRunSchema,
    QueuedSchema,
    WorkflowPatchSchema,
    WorkflowSchema,
    WorkflowVersionSchema,
)
from ihook.models import Workflow
from ihook.services import workflows as service
from ihook.services.events import Accepted, store_event

blp = Blueprint(
    "workflows",
    __name__,
    url_prefix="/api/v1/workflows",
    description="Workflows: versioned lists of steps run for each event of their trigger.",
)


def present(session: Session, workflow: Workflow, definition: dict | None = None) -> dict:
    """A workflow as the API shows it: its (current or given) definition and trigger."""
    body = dict(definition or workflow.definition)
    body.update(
        id=workflow.id,
        version=workflow.version,
        enabled=workflow.enabled,
        trigger=service.trigger_of(session, workflow),
        endpoints=service.endpoint_names(session, workflow.id),
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )
    return body


@blp.route("")
class Workflows(MethodView):
    @blp.response(200, WorkflowSchema(many=True))
    def get(self) -> list[dict]:
        """List workflows"""
        with platform().db.session() as session:
            return [present(session, w) for w in service.list_workflows(session)]

    @blp.arguments(WorkflowSchema)
    @blp.response(201, WorkflowSchema)
    @errors(blp, 409)
    def post(self, body: dict) -> dict:
        """Create a workflow (validated; 422 names the step and field at fault)"""
        enabled = body.pop("enabled", True)
        with platform().db.session() as session:
            return present(session, service.create_workflow(session, body, enabled=enabled))


@blp.route("/validate")
class Validate(MethodView):
    @blp.arguments(WorkflowSchema)
    @blp.response(200, WorkflowSchema)
    def post(self, body: dict) -> dict:
        """Validate a definition without saving it; answers it normalized"""
        body.pop("enabled", None)
        with platform().db.session() as session:
            return service.validate(session, body)


@blp.route("/<workflow_id>")
class WorkflowById(MethodView):
    @blp.response(200, WorkflowSchema)
    @errors(blp, 404)
    def get(self, workflow_id: str) -> dict:
        """Get a workflow's current version"""
        with platform().db.session() as session:
            return present(session, service.get_workflow(session, workflow_id))

    @blp.arguments(WorkflowSchema)
    @blp.response(200, WorkflowSchema)
    @errors(blp, 404, 409)
    def put(self, body: dict, workflow_id: str) -> dict:
        """Replace a workflow's definition: a changed one becomes a new version"""
        enabled = body.pop("enabled", None)
        with platform().db.session() as session:
            workflow = service.update_workflow(session, workflow_id, body, enabled=enabled)
            return present(session, workflow)

    @blp.arguments(WorkflowPatchSchema)
    @blp.response(200, WorkflowSchema)
    @errors(blp, 404, 409)
    def patch(self, body: dict, workflow_id: str) -> dict:
        """Enable or disable a workflow (no new version)"""
        with platform().db.session() as session:
            workflow = service.set_enabled(session, workflow_id, body["enabled"])
            return present(session, workflow)

    @blp.response(204)
    @errors(blp, 404)
    def delete(self, workflow_id: str) -> None:
        """Delete a workflow with its versions and runs"""
        with platform().db.session() as session:
            service.delete_workflow(session, workflow_id)


@blp.route("/<workflow_id>/versions")
class WorkflowVersions(MethodView):
    @blp.response(200, WorkflowVersionSchema(many=True))
    @errors(blp, 404)
    def get(self, workflow_id: str) -> list[dict]:
        """List a workflow's stored versions, oldest first"""
        with platform().db.session() as session:
            current = service.get_workflow(session, workflow_id).version
            return [
                {
                    "version": row.version,
                    "name": row.definition.get("name"),
                    "created_at": row.created_at,
                    "current": row.version == current,
                }
                for row in service.list_versions(session, workflow_id)
            ]


@blp.route("/<workflow_id>/versions/<int:version>")
class WorkflowVersion(MethodView):
    @blp.response(200, WorkflowSchema)
    @errors(blp, 404)
    def get(self, workflow_id: str, version: int) -> dict:
        """Get one stored version of a workflow"""
        with platform().db.session() as session:
            workflow = service.get_workflow(session, workflow_id)
            stored = service.get_version(session, workflow_id, version)
            body = present(session, workflow, stored.definition)
            body["version"] = version
            return body


@blp.route("/<workflow_id>/runs")
class ManualRun(MethodView):
    @blp.arguments(ManualRunSchema)
    @blp.response(202, QueuedSchema)
    @errors(blp, 404)
    def post(self, body: dict, workflow_id: str) -> dict:
        """Run the workflow now for a payload (stored as an event of source `manual`)"""
        accepted = run_now(workflow_id, body["type"], body["data"])
        return {"event_id": accepted.event_id, "runs": accepted.run_ids}


def run_now(workflow_id: str, event_type: str, data: Any) -> Accepted:
    """Store a ``manual`` event for the workflow alone and wake the workers; the event and
    its run (NotFound for an unknown workflow)."""
    p = platform()
    accepted = store_event(
        p.db, type=event_type, source="manual", data=data, headers={}, workflow_id=workflow_id
    )
    p.dispatch(accepted)
    return accepted
