"""Validate a workflow definition and return it normalized, or list every problem."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError

from connectors.base import flatten_messages
from workflows.errors import DefinitionError, WorkflowError
from workflows.expressions import referenced_steps
from workflows.registry import Step, step_class, step_types
from workflows.schedule import ScheduleError, parse_schedule
from workflows.schema import STEP_ID, StepConfig, iter_expressions

MAX_STEPS = 50
"""Most steps a workflow may have."""

TRIGGERS = ("endpoint", "event_type", "poller", "schedule", "manual")
"""Trigger kinds; a definition without a trigger is manual."""

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_STEP_ID = re.compile(STEP_ID)
_TOP_LEVEL = {"name", "description", "trigger", "vars", "steps"}
_REQUIRED = "Missing data for required field."

Errors = dict[str, dict[str, list[str]]]


class _Collector:
    """Gathers problems as ``where -> field -> messages``."""

    def __init__(self) -> None:
        self.errors: Errors = {}

    def add(self, where: str, field: str, message: str) -> None:
        self.errors.setdefault(where, {}).setdefault(field, []).append(message)


def validate_definition(
    doc: Mapping[str, Any], *, connectors: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Return the definition with defaults filled, or raise DefinitionError listing all problems.

    ``connectors`` maps connector names to kinds; "records" is always there. With None,
    connector names are not checked (e.g. a YAML file validated before its connectors exist).
    """
    if not isinstance(doc, Mapping):
        raise DefinitionError({"definition": {"definition": ["Must be an object."]}})
    out = _Collector()
    for key in sorted(doc.keys() - _TOP_LEVEL, key=str):
        out.add(str(key), str(key), "Unknown field.")
    name = doc.get("name")
    if name is None:
        out.add("name", "name", _REQUIRED)
    elif not isinstance(name, str) or not NAME.match(name):
        out.add(
            "name",
            "name",
            "Use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit.",
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        out.add("description", "description", "Not a valid string.")
    variables = doc.get("vars", {})
    if not isinstance(variables, Mapping):
        out.add("vars", "vars", "Must be an object.")
    trigger = _check_trigger(doc.get("trigger"), out)
    steps = _check_steps(doc.get("steps"), connectors, out)
    if out.errors:
        raise DefinitionError(out.errors)
    return {
        "name": name,
        "description": description,
        "trigger": trigger,
        "vars": dict(variables),
        "steps": steps,
    }


def _check_trigger(trigger: Any, out: _Collector) -> dict[str, Any]:
    if trigger is None:
        return {"manual": True}
    if not isinstance(trigger, Mapping):
        out.add("trigger", "trigger", "Must be an object such as {endpoint: <name>}.")
        return {}
    for key in sorted(trigger.keys() - set(TRIGGERS), key=str):
        out.add("trigger", str(key), f"Unknown trigger; use one of {', '.join(TRIGGERS)}.")
    kinds = [kind for kind in TRIGGERS if kind in trigger]
    if len(kinds) != 1:
        out.add("trigger", "trigger", f"Give exactly one of {', '.join(TRIGGERS)}.")
    value = {kind: trigger[kind] for kind in kinds}
    for kind, setting in value.items():
        problem = _trigger_problem(kind, setting)
        if problem:
            out.add("trigger", problem[0], problem[1])
    return value


def _trigger_problem(kind: str, value: Any) -> tuple[str, str] | None:
    def name_ok(v: Any) -> bool:
        return isinstance(v, str) and bool(v.strip())

    if kind == "endpoint":
        if name_ok(value) or (isinstance(value, list) and value and all(map(name_ok, value))):
            return None
        return kind, "Must be an endpoint name or a non-empty list of names."
    if kind in ("event_type", "poller"):
        return None if name_ok(value) else (kind, "Must be a non-empty string.")
    if kind == "manual":
        return None if value is True else (kind, "Must be true.")
    try:
        parse_schedule(value)
    except ScheduleError as exc:
        return exc.field, str(exc)
    return None


def _check_steps(
    steps: Any, connectors: Mapping[str, str] | None, out: _Collector
) -> list[dict[str, Any]]:
    if steps is None:
        out.add("steps", "steps", _REQUIRED)
        return []
    if not isinstance(steps, list):
        out.add("steps", "steps", "Must be a list.")
        return []
    if not steps:
        out.add("steps", "steps", "Give at least one step.")
    if len(steps) > MAX_STEPS:
        out.add("steps", "steps", f"At most {MAX_STEPS} steps (got {len(steps)}).")
    all_ids = {s["id"] for s in steps if isinstance(s, Mapping) and isinstance(s.get("id"), str)}
    kinds = {"records": "records", **(connectors or {})}
    seen: dict[str, int] = {}
    normalized = []
    for index, raw in enumerate(steps):
        raw_id = raw.get("id") if isinstance(raw, Mapping) else None
        step_id = raw_id if isinstance(raw_id, str) and _STEP_ID.match(raw_id) else None
        where = f"steps.{step_id}" if step_id else f"steps.{index}"
        if not isinstance(raw, Mapping):
            out.add(where, "step", "Must be an object.")
            continue
        if step_id and step_id in seen:
            out.add(where, "id", f"Duplicate step id {step_id!r} (first at index {seen[step_id]}).")
        config = _check_step(raw, where, out)
        if config is not None:
            _check_references(config, where, set(seen), all_ids, out)
            _check_connector(config, where, kinds, connectors is not None, out)
            normalized.append(config)
        if step_id:
            seen.setdefault(step_id, index)
    return normalized


def _check_step(raw: Mapping[str, Any], where: str, out: _Collector) -> dict[str, Any] | None:
    """Load the step through its schema; return what loaded (even partly) for more checks."""
    cls: type[Step] | None = None
    schema: Schema
    if "type" not in raw:
        out.add(where, "type", _REQUIRED)
    else:
        try:
            cls = step_class(raw["type"])
        except WorkflowError:
            known = ", ".join(step_types())
            out.add(where, "type", f"Unknown step type {raw['type']!r} (known: {known}).")
    # An unknown type still gets its shared fields (id, when, foreach) checked.
    schema = cls.Config() if cls else StepConfig(unknown=INCLUDE)
    try:
        config: dict[str, Any] = schema.load(dict(raw))
    except ValidationError as exc:
        for field, messages in flatten_messages(exc.messages).items():
            for message in messages:
                out.add(where, field, message)
        config = exc.valid_data if isinstance(exc.valid_data, dict) else {}
    for field, messages in (cls or Step)().validate(config).items():
        for message in messages:
            out.add(where, field, message)
    return config


def _check_references(
    config: dict[str, Any], where: str, earlier: set[str], all_ids: set[str], out: _Collector
) -> None:
    cls = _class_or_base(config.get("type"))
    for field, _kind, src in iter_expressions(cls.Config(), config):
        for ref in sorted(referenced_steps(src) - earlier):
            if ref == config.get("id"):
                why = "is this step itself"
            elif ref in all_ids:
                why = "runs later"
            else:
                why = "does not exist"
            out.add(where, field, f"References steps.{ref}, which {why}.")


def _check_connector(
    config: dict[str, Any],
    where: str,
    kinds: Mapping[str, str],
    check_names: bool,
    out: _Collector,
) -> None:
    cls = _class_or_base(config.get("type"))
    for field, name, allowed in cls.connector_refs(config):
        if not isinstance(name, str):
            continue
        kind = kinds.get(name)
        if kind is None:
            if check_names:
                known = ", ".join(sorted(kinds))
                out.add(where, field, f"Unknown connector {name!r} (known: {known}).")
        elif kind not in allowed:
            need = " or ".join(allowed)
            out.add(where, field, f"Connector {name!r} is {kind}; {cls.type} needs {need}.")


def _class_or_base(step_type: Any) -> type[Step]:
    try:
        return step_class(step_type)
    except WorkflowError:
        return Step
