"""The workflow editor's YAML: read as JSON sees it, loaded by the API's schema, checked by
the service, each problem pinned to its step, field and line; written back for the editor,
with the step palette's templates and the diff of two versions.

Imports no Flask: the views in ``workflow_pages`` call these.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml
from sqlalchemy.orm import Session

from ihook.api.schemas import WorkflowSchema
from ihook.console import forms
from ihook.errors import Conflict, Invalid
from ihook.services import workflows as service
from ihook.storable import REASON, unstorable_at
from workflows.registry import step_class, step_types

PALETTE: dict[str, dict[str, Any]] = {
    "filter": {"if": "data.status == 'paid'"},
    "transform": {"mapping": {"id": "data.id", "email": "lower(data.email)"}},
    "template": {"format": "text", "template": "Order {{ data.id }} is {{ data.status }}"},
    "insert": {"collection": "orders", "key": "id", "data": "data"},
    "update": {"collection": "orders", "key": "id", "data": "data"},
    "upsert": {"collection": "orders", "key": "id", "data": "data"},
    "delete": {"collection": "orders", "key": "id", "data": "data"},
    "lookup": {"collection": "members", "key": "{{ data.member_id }}"},
    "transfer": {
        "source": {"connector": "records", "collection": "orders"},
        "target": {"collection": "orders_copy", "key": "id"},
    },
    "send": {"url": "https://example.com", "method": "POST", "path": "/orders", "body": "data"},
    "respond": {"status": 200, "body": "{received: `true`}"},
    "emit": {"event_type": "order.{{ data.status }}", "data": "data"},
}
"""Each step type's palette template (besides ``id`` and ``type``): valid as it is."""
NOT_JSON = "holds a value JSON cannot (quote dates, use text keys, no .nan or .inf)"
"""Why a YAML value that has no JSON equivalent is refused."""


class _Loader(yaml.SafeLoader):
    """YAML read as JSON sees it: an unquoted date stays text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Dumper(yaml.SafeDumper):
    """Block YAML with list items indented under their key (``steps:`` then ``  - id: …``)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def to_yaml(value: Any) -> str:
    """``value`` as the editor shows it."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


@dataclass
class Problem:
    """One thing wrong with a definition, pinned to its step (from 1), field and line."""

    message: str
    field: str | None = None
    step: int | None = None
    step_name: str | None = None
    step_type: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def text(self) -> str:
        """The problem in one line: ``Step 2 `map` (transform) · expression: reason``."""
        where = f"Step {self.step}" if self.step else ""
        where += f" `{self.step_name}`" if self.step and self.step_name else ""
        where += f" ({self.step_type})" if self.step and self.step_type else ""
        if self.field:
            where = f"{where} · {self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message

    def as_json(self) -> dict[str, Any]:
        """The problem as the validate route answers it."""
        return {**asdict(self), "text": self.text}


@dataclass
class Draft:
    """A definition typed in the editor: what its YAML holds and what is wrong with it."""

    doc: dict[str, Any] | None = None
    tree: yaml.Node | None = None
    problems: list[Problem] = field(default_factory=list)

    def pin(self, where: str, name: str, message: str) -> None:
        """Add a problem of ``where`` (``steps.<id or index>`` or a top-level key)."""
        steps = (self.doc or {}).get("steps")
        steps = steps if isinstance(steps, list) else []
        if not where.startswith("steps."):
            shown = where if name == where else f"{where}.{name}"
            path = shown.split(".")
            self.problems.append(Problem(message, shown, line=line_of(self.tree, path)))
            return
        key = where.removeprefix("steps.")
        ids = [s.get("id") if isinstance(s, dict) else None for s in steps]
        index = int(key) if key.isdigit() else ids.index(key) if key in ids else None
        step = steps[index] if index is not None and index < len(steps) else {}
        step = step if isinstance(step, dict) else {}
        path = ["steps", str(index)] + ([] if name == "step" else name.split("."))
        self.problems.append(
            Problem(
                message,
                name,
                step=None if index is None else index + 1,
                step_name=step.get("id") if isinstance(step.get("id"), str) else None,
                step_type=step.get("type") if isinstance(step.get("type"), str) else None,
                line=line_of(self.tree, path),
            )
        )

    def pin_path(self, path: str, message: str) -> None:
        """Add a problem at a dotted path of the document (``steps.1.when``)."""
        parts = path.split(".")
        if parts[0] == "steps" and len(parts) > 1:
            self.pin(f"steps.{parts[1]}", ".".join(parts[2:]) or "step", message)
        else:
            self.pin(parts[0], path, message)

    def refuse(self, refused: Invalid | Conflict) -> None:
        """Pin a service's refusal: ``where -> field -> messages`` or ``field -> messages``."""
        for where, inner in (refused.errors or {"definition": [refused.message]}).items():
            named = inner if isinstance(inner, dict) else {where: inner}
            for name, message in forms.flatten(named).items():
                self.pin(str(where), name, message)


def line_of(node: yaml.Node | None, path: list[str]) -> int | None:
    """The line (from 1) of the deepest part of ``path`` found in a composed YAML tree."""
    line = None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not pairs:
                break
            line, node = pairs[0][0].start_mark.line + 1, pairs[0][1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit():
            if int(part) >= len(node.value):
                break
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def not_json_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first value JSON cannot hold (a date, a set, a number key,
    NaN); None when every value is JSON."""
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            found = inner if not isinstance(key, str) else not_json_at(item, inner)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        return next(
            (p for i, v in enumerate(value) if (p := not_json_at(v, f"{path}.{i}")) is not None),
            None,
        )
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    return None if value is None or isinstance(value, str | int) else path


def read_draft(text: str) -> Draft:
    """Parse the editor's YAML and load it by the API's schema; ``doc`` is None unless
    the service may check it."""
    draft = Draft()
    try:
        draft.tree = yaml.compose(text, Loader=_Loader)
        loaded = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        message = f"Not valid YAML: {where}{problem}."
        draft.problems.append(
            Problem(message, line=mark and mark.line + 1, column=mark and mark.column + 1)
        )
        return draft
    if not isinstance(loaded, dict):
        draft.problems.append(Problem("Give a YAML mapping: name, trigger, steps, …"))
        return draft
    draft.doc = loaded
    if "enabled" in loaded:
        draft.pin("enabled", "enabled", "Set it with the Enabled checkbox, not in the YAML.")
    for path, why in ((not_json_at(loaded), NOT_JSON), (unstorable_at(loaded), REASON)):
        if path:
            draft.pin_path(path, why)
    body, errors = forms.load(WorkflowSchema(), {} if draft.problems else loaded)
    for path, message in errors.items():
        draft.pin_path(path, message)
    draft.doc = body if not draft.problems else None
    return draft


def check(session: Session, draft: Draft) -> None:
    """Pin what ``service.validate`` (``POST /api/v1/workflows/validate``) refuses."""
    if draft.doc is not None:
        try:
            service.validate(session, dict(draft.doc))
        except Invalid as refused:
            draft.refuse(refused)


def palette() -> list[dict[str, str]]:
    """Each registered step type with its summary and YAML template (a list item)."""
    shown = []
    for kind in step_types():
        doc = (step_class(kind).__doc__ or "").strip().splitlines()
        template = {"id": kind, "type": kind, **PALETTE.get(kind, {})}
        # ``if`` in a docstring reads as 'if' on the page.
        summary = re.sub(r"``(.+?)``", r"'\1'", doc[0]) if doc else ""
        shown.append({"type": kind, "summary": summary, "yaml": to_yaml([template])})
    return shown


def readable(definition: dict[str, Any], trigger: dict[str, Any] | None = None) -> str:
    """A stored definition as YAML, empty description and vars left out."""
    doc: dict[str, Any] = {"name": definition["name"]}
    if definition.get("description"):
        doc["description"] = definition["description"]
    doc["trigger"] = trigger or definition.get("trigger") or {"manual": True}
    if definition.get("vars"):
        doc["vars"] = definition["vars"]
    doc["steps"] = definition["steps"]
    return to_yaml(doc)


def diff_lines(older: str, newer: str, labels: tuple[str, str]) -> list[tuple[str, str]]:
    """A unified diff of two YAML texts as ``(kind, line)``; kind is file, hunk, add, del or
    same (the line keeps its ``+``/``-`` so it reads without colour)."""
    lines = difflib.unified_diff(older.splitlines(), newer.splitlines(), *labels, lineterm="", n=3)
    marked = []
    for index, line in enumerate(lines):
        if index < 2:
            kind = "file"
        else:
            kind = {"@": "hunk", "+": "add", "-": "del"}.get(line[:1], "same")
        marked.append((kind, line))
    return marked
