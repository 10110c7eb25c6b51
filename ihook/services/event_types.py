"""The event-type catalogue: built-in types defined here, the user's own stored, each with
the JSON Schema its data must meet when published.

Types outside the catalogue may still be published: the catalogue documents and checks,
it does not gate.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from referencing import Registry
from referencing.exceptions import Unresolvable
from sqlalchemy import select
from sqlalchemy.orm import Session

from ihook.errors import Conflict, Invalid, NotFound
from ihook.models import EventType, utcnow
from ihook.services.common import flush_unique

MAX_NAME = 200
"""Longest type name (the events column's size)."""
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
"""What a custom type's name looks like: no '*', which is for subscriptions' patterns."""
MAX_MESSAGES = 20
"""Most schema violations a refused publish lists."""
MAX_MESSAGE_LENGTH = 300
"""Longest violation message: jsonschema quotes the offending value, which may be huge."""
MAX_CACHED = 1000
"""Compiled validators kept per process before the cache starts over."""

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TEXT = {"type": ["string", "null"]}


def _object(title: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A built-in schema: every property required, more allowed (data may grow)."""
    return {
        "$schema": DRAFT,
        "title": title,
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": True,
    }


def _record(action: str) -> tuple[str, dict[str, Any]]:
    what = "its data before deletion" if action == "deleted" else "its data now"
    schema = _object(
        f"record.{action}",
        {
            "collection": {"type": "string", "minLength": 1, "maxLength": 64},
            "key": {"type": "string", "minLength": 1, "maxLength": 500},
            "data": {"type": "object", "description": what},
        },
    )
    return f"A record of the built-in store was {action}.", schema


def _run(status: str) -> tuple[str, dict[str, Any]]:
    schema = _object(
        f"run.{status}",
        {
            "run_id": {"type": "string"},
            "workflow_id": {"type": "string"},
            "workflow_name": {"type": "string"},
            "workflow_version": {"type": "integer", "minimum": 1},
            "event_id": {"type": "string", "description": "the event the run was for"},
            "event_type": {"type": "string"},
            "status": {"const": status},
            "attempt": {"type": "integer", "minimum": 1},
            "error": _NULLABLE_TEXT,
            "failed_step": {**_NULLABLE_TEXT, "description": "id of the step that failed"},
            "finished_at": _DATE_TIME,
        },
    )
    return f"A workflow run finished: {status}.", schema


BUILTIN: dict[str, tuple[str, dict[str, Any]]] = {
    "record.created": _record("created"),
    "record.updated": _record("updated"),
    "record.deleted": _record("deleted"),
    "run.succeeded": _run("succeeded"),
    "run.failed": _run("failed"),
    "ihook.test": (
        "Sent by a subscription's test: it checks the receiver, nothing happened.",
        _object(
            "ihook.test",
            {"message": {"type": "string"}, "subscription_id": {"type": "string"}},
        ),
    ),
    "schedule.fired": (
        "A scheduled workflow's slot came; the window is the time since the slot before.",
        _object(
            "schedule.fired",
            {
                "slot": _DATE_TIME,
                "window": {
                    "type": "object",
                    "required": ["start", "end"],
                    "properties": {"start": _DATE_TIME, "end": _DATE_TIME},
                },
            },
        ),
    ),
}
"""Types ihook itself publishes: ``name → (description, schema)``; never stored."""

# Schemas reach only what they hold and the meta-schemas: jsonschema would otherwise fetch
# any remote $ref from this process.
_NO_REMOTE = Registry()


@dataclass(frozen=True)
class Catalogued:
    """An event type as the catalogue shows it; built-ins have no times."""

    name: str
    description: str
    schema: dict[str, Any] | None
    builtin: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None


def list_event_types(session: Session) -> list[Catalogued]:
    """Built-in types, then the stored ones, each by name."""
    rows = session.scalars(select(EventType).order_by(EventType.name))
    stored = [_stored(row) for row in rows if row.name not in BUILTIN]
    return [_builtin(name) for name in sorted(BUILTIN)] + stored


def get_event_type(session: Session, name: str) -> Catalogued:
    """A built-in or stored type, or NotFound."""
    if name in BUILTIN:
        return _builtin(name)
    return _stored(_row(session, name))


def create_event_type(session: Session, fields: dict[str, Any]) -> Catalogued:
    """Store a custom type; Conflict when the name is built-in or taken."""
    name = fields["name"]
    _check_name(name)
    _refuse_builtin(name, "created")
    schema = fields.get("schema")
    check_schema(schema)
    row = EventType(name=name, description=fields.get("description") or "", schema=schema)
    session.add(row)
    flush_unique(session, "event type", name)
    return _stored(row)


def update_event_type(session: Session, name: str, fields: dict[str, Any]) -> Catalogued:
    """Change a custom type's description and schema; the fields left out keep their values."""
    _refuse_builtin(name, "changed")
    row = _row(session, name)
    if fields.get("name", name) != name:
        raise Invalid("an event type cannot be renamed", {"name": ["must be the name in the URL"]})
    if "schema" in fields:
        check_schema(fields["schema"])
        row.schema = fields["schema"]
    if "description" in fields:
        row.description = fields["description"] or ""
    row.updated_at = utcnow()
    session.flush()
    return _stored(row)


def delete_event_type(session: Session, name: str) -> None:
    """Delete a custom type; events of that type stay, and may still be published."""
    _refuse_builtin(name, "deleted")
    session.delete(_row(session, name))


def check_schema(schema: Any) -> None:
    """Invalid naming ``schema`` unless it is a usable JSON Schema (draft 2020-12) or None."""
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise Invalid("invalid event type", {"schema": ["must be a JSON object"]})
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        problem = f"invalid JSON Schema: {exc.message}"
        raise Invalid("invalid event type", {"schema": [problem]}) from None


def check_data(session: Session, type_name: str, data: Any) -> None:
    """Invalid listing ``data``'s violations when its type has a schema and data breaks it.

    Types outside the catalogue, and types without a schema, take any data.
    """
    validator = _validator(session, type_name)
    if validator is None:
        return
    try:
        errors = list(islice(validator.iter_errors(data), MAX_MESSAGES * 5))
    except Unresolvable as exc:
        raise Invalid(
            f"the schema of event type {type_name!r} cannot be used",
            {"data": [f"$: the schema has a $ref that cannot be resolved ({exc.ref})"]},
        ) from None
    if not errors:
        return
    best = best_match(errors)
    messages = [_describe(best)]
    for error in errors:
        text = _describe(error)
        if text not in messages:
            messages.append(text)
    raise Invalid(
        f"data does not match the schema of event type {type_name!r}",
        {"data": messages[:MAX_MESSAGES]},
    )


# name → (updated_at of the schema compiled, or None for a built-in; its validator).
# Checked against the row on every use, so a change made by another process is seen.
_validators: dict[str, tuple[datetime | None, Draft202012Validator]] = {}


def _validator(session: Session, name: str) -> Draft202012Validator | None:
    if name in BUILTIN:
        version, schema = None, BUILTIN[name][1]
    else:
        row = session.get(EventType, name) if len(name) <= MAX_NAME else None
        if row is None or row.schema is None:
            return None
        version, schema = row.updated_at, row.schema
    cached = _validators.get(name)
    if cached is not None and cached[0] == version:
        return cached[1]
    if len(_validators) >= MAX_CACHED:
        _validators.clear()
    validator = Draft202012Validator(schema, registry=_NO_REMOTE)
    _validators[name] = (version, validator)
    return validator


def _describe(error: Any) -> str:
    message = error.message
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
    return f"{error.json_path}: {message}"


def _check_name(name: str) -> None:
    if "*" in name:
        problem = "'*' matches types in subscriptions; a type's own name cannot hold one"
    elif not 1 <= len(name) <= MAX_NAME:
        problem = f"1 to {MAX_NAME} characters"
    elif not re.fullmatch(NAME_PATTERN, name):
        problem = "letters, digits, '_', '.', ':', '-'; starting with a letter or digit"
    else:
        return
    raise Invalid("invalid event type name", {"name": [problem]})


def _refuse_builtin(name: str, action: str) -> None:
    if name in BUILTIN:
        raise Conflict(
            f"{name!r} is a built-in event type: it cannot be {action}",
            {"name": ["built-in"]},
        )


def _row(session: Session, name: str) -> EventType:
    row = session.get(EventType, name) if len(name) <= MAX_NAME else None
    if row is None:
        raise NotFound(f"event type {name!r} not found")
    return row


def _builtin(name: str) -> Catalogued:
    description, schema = BUILTIN[name]
    return Catalogued(name, description, copy.deepcopy(schema), builtin=True)


def _stored(row: EventType) -> Catalogued:
    return Catalogued(
        name=row.name,
        description=row.description,
        schema=row.schema,
        builtin=False,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
