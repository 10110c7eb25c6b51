"""Definitions as files: YAML documents of connectors and workflows, applied and exported.

A file holds one or more documents (``---``), each ``{kind: Connector|Workflow, ...}``::

    kind: Connector                     kind: Workflow
    name: crm                           name: lms-course-completion
    type: http                          enabled: true          # optional
    config:                             trigger: {endpoint: lms}
      base_url: ${CRM_URL}              steps: [...]
      auth: {type: bearer, token: ${CRM_TOKEN}}

``apply`` matches by name and goes through the same services as the API, so a file is
validated exactly like a request. It checks every document before reporting, and raises
one Invalid naming each bad one; the caller's transaction then applies nothing. Reading the
files and resolving ``${NAME}`` references is :mod:`ihook.services.manifest_documents`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml
from marshmallow import Schema, fields
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import ConfigError, connector_class
from ihook.errors import IhookError, Invalid
from ihook.models import Connector, Workflow
from ihook.secrets import Vault
from ihook.services.connectors import create_connector, full_config, update_connector
from ihook.services.manifest_documents import (
    KINDS,
    Document,
    label_documents,
    load_documents,
    resolve_references,
    shape_problems,
)
from ihook.services.workflows import create_workflow, list_workflows, trigger_of, update_workflow

__all__ = ["Action", "Change", "Document", "apply", "error_lines", "export", "load_documents"]


class Action(StrEnum):
    """What ``apply`` did to one connector or workflow."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class Change:
    """One line of the plan: ``workflow lms-course-completion: created (v1)``."""

    kind: str
    name: str
    action: Action
    version: int | None = None

    def __str__(self) -> str:
        version = f" (v{self.version})" if self.version is not None else ""
        return f"{self.kind} {self.name}: {self.action.value}{version}"


def apply(
    session: Session, vault: Vault, docs: Iterable[Document], env: Mapping[str, str]
) -> list[Change]:
    """Create or update what the documents describe; ``${NAME}`` in connector configs
    comes from ``env``. Raises Invalid listing every bad document (nothing is flushed
    for them; the caller rolls back the transaction)."""
    errors: dict[str, Any] = {}
    labelled = label_documents(docs)
    first: dict[tuple[str, str], str] = {}
    todo: list[tuple[str, dict[str, Any]]] = []
    for label, doc in labelled:
        problems = shape_problems(doc)
        name = doc.get("name") if isinstance(doc, Mapping) else None
        if not problems and isinstance(name, str):
            seen = first.setdefault((doc["kind"], name), label)
            if seen != label:
                problems = {"name": [f"Also defined by {seen}."]}
        if problems:
            errors[label] = problems
        else:
            todo.append((label, dict(doc)))
    todo.sort(key=lambda entry: KINDS.index(entry[1]["kind"]))
    changes = []
    for label, doc in todo:
        try:
            with session.begin_nested():
                if doc["kind"] == "Connector":
                    changes.append(_apply_connector(session, vault, doc, env))
                else:
                    changes.append(_apply_workflow(session, doc))
        except IhookError as exc:
            errors[label] = exc.errors or {"document": [exc.message]}
    if errors:
        raise Invalid(f"{len(errors)} invalid document(s); nothing was applied", errors)
    return changes


def error_lines(errors: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """Nested ``where -> field -> messages`` as indented lines for a terminal."""
    lines: list[str] = []
    for key, value in errors.items():
        if isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines.extend(indent + line for line in error_lines(value, indent))
        else:
            messages = value if isinstance(value, list) else [value]
            lines.append(f"{key}: {' '.join(str(m) for m in messages)}")
    return lines


def export(session: Session) -> str:
    """YAML of every connector (public config only), then every workflow (current version)."""
    parts = ["# ihook export: connectors, then workflows. Apply with: ihook apply -f FILE\n"]
    for row in session.scalars(select(Connector).order_by(Connector.name)):
        connector = {"kind": "Connector", "name": row.name, "type": row.kind, "config": row.config}
        parts.append(_secrets_note(row.kind) + _dump(connector))
    for wf in sorted(list_workflows(session), key=lambda w: w.name):
        definition = wf.definition
        doc: dict[str, Any] = {"kind": "Workflow", "name": wf.name}
        if definition.get("description"):
            doc["description"] = definition["description"]
        doc.update(enabled=wf.enabled, trigger=trigger_of(session, wf))
        if definition.get("vars"):
            doc["vars"] = definition["vars"]
        doc["steps"] = definition["steps"]
        parts.append(_dump(doc))
    return "---\n".join(parts)


def _apply_connector(
    session: Session, vault: Vault, doc: dict[str, Any], env: Mapping[str, str]
) -> Change:
    missing: dict[str, list[str]] = {}
    config = resolve_references(doc.get("config") or {}, env, "config", missing)
    if missing:
        raise Invalid("unset environment variables", missing)
    name, kind = doc["name"], doc["type"]
    row = session.scalar(select(Connector).where(Connector.name == name))
    if row is None:
        create_connector(session, vault, {"name": name, "kind": kind, "config": config})
        return Change("connector", name, Action.CREATED)
    if row.kind != kind:
        why = f"Connector {name!r} is {row.kind}; its type cannot change (delete it first)."
        raise Invalid("connector type changed", {"type": [why]})
    before = full_config(row, vault)
    # The service merges the config into the stored one, so secrets left out (as in an
    # export) are kept; an update that ends where it began is undone, keeping updated_at.
    nested = session.begin_nested()
    try:
        update_connector(session, vault, row.id, {"config": config})
        same = full_config(row, vault) == before
    except BaseException:
        nested.rollback()
        raise
    if same:
        nested.rollback()
        return Change("connector", name, Action.UNCHANGED)
    nested.commit()
    return Change("connector", name, Action.UPDATED)


def _apply_workflow(session: Session, doc: dict[str, Any]) -> Change:
    enabled = doc.pop("enabled", None)
    doc.pop("kind")
    name = doc.get("name")
    found = select(Workflow).where(Workflow.name == name)
    row = session.scalar(found) if isinstance(name, str) else None
    if row is None:
        created = create_workflow(session, doc, enabled=True if enabled is None else enabled)
        return Change("workflow", created.name, Action.CREATED, created.version)
    if _bound_elsewhere(session, row, doc.get("trigger")):
        # The endpoints were bound from their side and the file repeats what the API shows
        # (an export does): keep the stored trigger so neither version nor binding changes.
        del doc["trigger"]
    before = (row.version, row.enabled, trigger_of(session, row))
    nested = session.begin_nested()
    try:
        update_workflow(session, row.id, doc, enabled=enabled)
        same = (row.version, row.enabled, trigger_of(session, row)) == before
    except BaseException:
        nested.rollback()
        raise
    if same:
        nested.rollback()
        return Change("workflow", row.name, Action.UNCHANGED, row.version)
    nested.commit()
    return Change("workflow", row.name, Action.UPDATED, row.version)


def _bound_elsewhere(session: Session, row: Workflow, trigger: Any) -> bool:
    """True when the stored trigger is manual yet ``trigger`` names the bound endpoints."""
    if row.definition.get("trigger") != {"manual": True} or not isinstance(trigger, Mapping):
        return False
    if set(trigger) != {"endpoint"}:
        return False
    return _names(trigger["endpoint"]) == _names(trigger_of(session, row).get("endpoint"))


def _names(value: Any) -> set[str] | None:
    if isinstance(value, str):
        return {value}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return set(value)
    return None


def _secrets_note(kind: str) -> str:
    try:
        secret = _secret_fields(connector_class(kind).Config())
    except ConfigError:
        return f"# connector type {kind!r} is not installed here; its secret fields are unknown\n"
    if not secret:
        return ""
    return (
        f"# secret fields, where set, are left out: {', '.join(secret)}.\n"
        "# Applying this file keeps the stored ones; for a new install add them under\n"
        "# config as references to the environment, e.g. token: ${CRM_TOKEN}\n"
    )


def _secret_fields(schema: Schema, prefix: str = "") -> list[str]:
    """Dotted names of a config schema's write-only (``load_only``) fields."""
    found = []
    for name, field in schema.fields.items():
        path = prefix + (field.data_key or name)
        if field.load_only:
            found.append(path)
        elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            found.extend(_secret_fields(field.schema, path + "."))
    return found


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
