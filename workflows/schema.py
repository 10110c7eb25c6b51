"""The fields every step shares and the helpers that mark expression fields.

A field's ``metadata["expr"]`` says what it holds ("jmespath" or "template"), so validation
and the ``steps.<id>`` reference scan work from the schema alone, like n8n's node
descriptions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from connectors.sqlwhere import COMPARE_OPS, Compare

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""What a step id looks like: usable as ``steps.<id>`` in jmespath and jinja2."""

JMESPATH = "jmespath"
TEMPLATE = "template"


def jmespath_field(**kwargs: Any) -> fields.String:
    """A string field holding a jmespath expression."""
    return fields.String(metadata={"expr": JMESPATH}, **kwargs)


def template_field(**kwargs: Any) -> fields.String:
    """A string field holding a jinja2 template."""
    return fields.String(metadata={"expr": TEMPLATE}, **kwargs)


def jmespath_map(**kwargs: Any) -> fields.Dict:
    """An object of ``{name: jmespath}``."""
    return fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"expr": JMESPATH}, **kwargs
    )


def template_map(**kwargs: Any) -> fields.Dict:
    """An object of ``{name: jinja2 template}``."""
    return fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"expr": TEMPLATE}, **kwargs
    )


class WhereMap(fields.Field):
    """``{column: jmespath}`` (equality) or ``{column: {operator: jmespath}}`` per column."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, Mapping):
            raise ValidationError(
                "Must be an object of {column: jmespath or {operator: jmespath}}."
            )
        errors: dict[str, Any] = {}
        for column, spec in value.items():
            if isinstance(spec, str):
                continue
            if not isinstance(spec, Mapping):
                errors[str(column)] = ["Must be a jmespath string or {operator: jmespath}."]
            elif not spec:
                errors[str(column)] = [f"Give at least one operator ({', '.join(COMPARE_OPS)})."]
            else:
                problems = [_operator_problem(op, src) for op, src in spec.items()]
                if any(problems):
                    errors[str(column)] = [p for p in problems if p]
        if errors:
            raise ValidationError(errors)
        return {
            column: spec if isinstance(spec, str) else dict(spec) for column, spec in value.items()
        }


def _operator_problem(op: Any, src: Any) -> str | None:
    if op not in COMPARE_OPS:
        return f"Unknown operator {op!r} (use {', '.join(COMPARE_OPS)})."
    if not isinstance(src, str):
        return f"{op}: must be a jmespath string."
    return None


def where_map(**kwargs: Any) -> WhereMap:
    """An sql filter: per column a jmespath (equality) or ``{operator: jmespath}``."""
    return WhereMap(metadata={"expr": JMESPATH}, **kwargs)


def where_values(where: Mapping[str, Any], search: Callable[[str], Any]) -> dict[str, Any]:
    """A loaded ``where_map`` evaluated: ``{column: value or [Compare, ...]}`` for the connector."""
    return {
        column: search(spec)
        if isinstance(spec, str)
        else [Compare(op, search(src)) for op, src in spec.items()]
        for column, spec in where.items()
    }


class KeySpec(fields.Field):
    """A record key: one field name or a non-empty list of field names."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and value:
            return value
        if (
            isinstance(value, list)
            and value
            and all(isinstance(name, str) and name for name in value)
        ):
            return list(value)
        raise ValidationError("Must be a field name or a non-empty list of field names.")


class StepConfig(Schema):
    """Fields every step takes; each step's ``Config`` extends it."""

    id = fields.String(required=True, validate=validate.Regexp(STEP_ID, error="Not a valid id."))
    type = fields.String(required=True)
    description = fields.String()
    when = jmespath_field()
    foreach = jmespath_field()


def iter_expressions(schema: Schema, config: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """Yield ``(field, kind, source)`` for every expression in a loaded config."""
    for name, field in schema.fields.items():
        kind = field.metadata.get("expr")
        value = config.get(field.data_key or name)
        if kind is None or value is None:
            continue
        if isinstance(value, str):
            yield name, kind, value
        elif isinstance(value, Mapping):
            for sub, src in value.items():
                if isinstance(src, str):
                    yield f"{name}.{sub}", kind, src
                elif isinstance(src, Mapping):  # a where_map's {operator: jmespath}
                    for op, inner in src.items():
                        if isinstance(inner, str):
                            yield f"{name}.{sub}.{op}", kind, inner
