"""Workflows: validated on save, versioned on every update, bound to their triggers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ihook.errors import Invalid, NotFound
from ihook.ids import new_id
from ihook.models import Connector, Endpoint, EndpointWorkflow, Workflow, WorkflowVersion, utcnow
from ihook.services.common import fetch, flush_unique
from ihook.services.schedules import schedule_of, track_schedule
from workflows import DefinitionError, validate_definition

MAX_EVENT_TYPE = 200
"""Longest event type a trigger may name (the events column's size)."""


def get_workflow(session: Session, workflow_id: str) -> Workflow:
    """The workflow, or NotFound."""
    return fetch(session, Workflow, workflow_id, f"workflow {workflow_id} not found")


def list_workflows(session: Session) -> list[Workflow]:
    """Every workflow, oldest first."""
    return list(session.scalars(select(Workflow).order_by(Workflow.id)))


def validate(session: Session, doc: dict[str, Any]) -> dict[str, Any]:
    """The normalized definition, or Invalid naming each step and field at fault."""
    kinds = dict(session.execute(select(Connector.name, Connector.kind)).all())
    try:
        definition = validate_definition(doc, connectors=kinds)
    except DefinitionError as exc:
        raise Invalid("invalid workflow definition", exc.errors) from None
    _endpoint_ids(session, definition.get("trigger") or {})  # names must exist
    if len(_event_type(definition) or "") > MAX_EVENT_TYPE:
        raise Invalid(
            "event type too long",
            {"trigger": {"event_type": [f"at most {MAX_EVENT_TYPE} characters"]}},
        )
    return definition


def create_workflow(session: Session, doc: dict[str, Any], *, enabled: bool = True) -> Workflow:
    """Validate and store version 1 of a workflow, binding its trigger."""
    definition = validate(session, doc)
    workflow = Workflow(
        id=new_id("wf"),
        name=definition["name"],
        description=definition.get("description") or "",
        version=1,
        enabled=enabled,
        definition=definition,
        event_type=_event_type(definition),
        poller=_trigger_name(definition, "poller"),
    )
    track_schedule(workflow, changed=True)
    session.add(workflow)
    flush_unique(session, "workflow", workflow.name)
    session.add(WorkflowVersion(workflow_id=workflow.id, version=1, definition=definition))
    _bind_trigger(session, workflow.id, definition.get("trigger"))
    return workflow


def update_workflow(
    session: Session, workflow_id: str, doc: dict[str, Any], *, enabled: bool | None = None
) -> Workflow:
    """Store a new version (runs in flight finish on theirs) and rebind the trigger."""
    workflow = get_workflow(session, workflow_id)
    definition = validate(session, doc)
    was_enabled, old_schedule = workflow.enabled, schedule_of(workflow.definition)
    if definition != workflow.definition:
        workflow.version += 1
        workflow.definition = definition
        workflow.event_type = _event_type(definition)
        workflow.poller = _trigger_name(definition, "poller")
        workflow.name = definition["name"]
        workflow.description = definition.get("description") or ""
        session.add(
            WorkflowVersion(
                workflow_id=workflow.id, version=workflow.version, definition=definition
            )
        )
    if enabled is not None:
        workflow.enabled = enabled
    changed = schedule_of(definition) != old_schedule or (workflow.enabled and not was_enabled)
    track_schedule(workflow, changed=changed)
    workflow.updated_at = utcnow()
    flush_unique(session, "workflow", workflow.name)
    if "trigger" in doc:
        _bind_trigger(session, workflow.id, definition.get("trigger"))
    return workflow


def set_enabled(session: Session, workflow_id: str, enabled: bool) -> Workflow:
    """Enable or disable a workflow without a new version."""
    workflow = get_workflow(session, workflow_id)
    changed = enabled and not workflow.enabled
    workflow.enabled = enabled
    track_schedule(workflow, changed=changed)
    return workflow


def _event_type(definition: dict[str, Any]) -> str | None:
    return _trigger_name(definition, "event_type")


def _trigger_name(definition: dict[str, Any], kind: str) -> str | None:
    value = (definition.get("trigger") or {}).get(kind)
    return value if isinstance(value, str) else None


def delete_workflow(session: Session, workflow_id: str) -> None:
    """Delete a workflow with its versions and runs."""
    session.delete(get_workflow(session, workflow_id))


def get_version(session: Session, workflow_id: str, version: int) -> WorkflowVersion:
    """One stored version of a workflow, or NotFound."""
    row = session.get(WorkflowVersion, (workflow_id, version))
    if row is None:
        raise NotFound(f"workflow {workflow_id} has no version {version}")
    return row


def list_versions(session: Session, workflow_id: str) -> list[WorkflowVersion]:
    """Every stored version of a workflow, oldest first; NotFound without the workflow."""
    get_workflow(session, workflow_id)
    query = (
        select(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow_id)
        .order_by(WorkflowVersion.version)
    )
    return list(session.scalars(query))


def endpoint_names(session: Session, workflow_id: str) -> list[str]:
    """Names of the endpoints that trigger a workflow."""
    rows = session.scalars(
        select(Endpoint.name)
        .join(EndpointWorkflow, EndpointWorkflow.endpoint_id == Endpoint.id)
        .where(EndpointWorkflow.workflow_id == workflow_id)
        .order_by(Endpoint.name)
    )
    return list(rows)


def trigger_of(session: Session, workflow: Workflow) -> dict[str, Any]:
    """The trigger as both sides of the relation see it: bound endpoints win."""
    names = endpoint_names(session, workflow.id)
    if names:
        return {"endpoint": names[0] if len(names) == 1 else names}
    trigger = dict(workflow.definition.get("trigger") or {"manual": True})
    trigger.pop("endpoint", None)
    return trigger or {"manual": True}


def _endpoint_ids(session: Session, trigger: dict[str, Any]) -> list[str]:
    names = trigger.get("endpoint")
    if not names:
        return []
    names = [names] if isinstance(names, str) else list(dict.fromkeys(names))
    found = dict(
        session.execute(select(Endpoint.name, Endpoint.id).where(Endpoint.name.in_(names))).all()
    )
    unknown = [n for n in names if n not in found]
    if unknown:
        raise Invalid(
            "unknown endpoint in trigger",
            {"trigger": {"endpoint": [f"no endpoint named {n!r}" for n in unknown]}},
        )
    return [found[n] for n in names]


def _bind_trigger(session: Session, workflow_id: str, trigger: dict[str, Any] | None) -> None:
    ids = _endpoint_ids(session, trigger or {})
    session.execute(delete(EndpointWorkflow).where(EndpointWorkflow.workflow_id == workflow_id))
    session.add_all(EndpointWorkflow(endpoint_id=i, workflow_id=workflow_id) for i in ids)
    session.flush()
