"""``lookup``: read a record or rows to enrich the run's data.

Records (the default connector) are found by ``collection`` and ``key``, a jinja2
template that renders the record's key string; compound keys are written the way the
write steps make them, values joined with ':'::

    - {id: member, type: lookup, collection: members, key: "{{ data.member_id }}"}
    - {id: done, type: lookup, collection: activities,
       key: "{{ data.member_id }}:{{ data.course }}"}

The output is the record's data, or null when there is none.

Sql connectors are read by ``table`` and ``where``, with ``limit`` (default 1) and
``order_by`` (column names, ``-name`` for descending). ``where`` gives per column a
jmespath (equality; a null value matches NULL) or ``{operator: jmespath}`` with operators
``eq ne gt gte lt lte in``, all of which must hold. With ``one`` (the default) the output
is the first row or null; with ``one: false`` it is the list of rows::

    - {id: member, type: lookup, connector: crm_db, table: members,
       where: {email: data.email}}
    - {id: paid, type: lookup, connector: crm_db, table: orders, one: false, limit: 100,
       where: {status: "'paid'", created_at: {gt: data.window.start, lte: data.window.end}}}

``required: true`` makes "nothing found" a step failure instead of a null output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, template_field, where_map, where_values
from workflows.steps.records import COLLECTION, RECORDS, check_target, table_field

MAX_LOOKUP_ROWS = 1000
"""Most rows one sql lookup may return."""

_SQL_ONLY = ("where", "limit", "one", "order_by")


class LookupConfig(StepConfig):
    """A records ``collection`` + ``key``, or a sql ``table`` + ``where``."""

    connector = fields.String(load_default=RECORDS)
    collection = fields.String(
        validate=validate.Regexp(COLLECTION, error="Not a valid collection name.")
    )
    key = template_field()
    table = table_field()
    where = where_map(load_default=dict)
    limit = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_LOOKUP_ROWS))
    one = fields.Boolean(load_default=True)
    order_by = fields.List(fields.String(validate=validate.Length(min=1)))
    required = fields.Boolean(load_default=False)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _shape(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        check_target(original)
        errors: dict[str, list[str]] = {}
        if "collection" in original:
            if "key" not in original:
                errors["key"] = ["Required with collection."]
            for name in _SQL_ONLY:
                if name in original:
                    errors[name] = ["Only with table (sql connectors)."]
        elif "key" in original:
            errors["key"] = ["Only with collection; sql lookups use where."]
        if errors:
            raise ValidationError(errors)


@register_step
class Lookup(Step):
    """Read a record or rows; the output is what was found, or null."""

    type = "lookup"
    Config = LookupConfig
    connector_kinds = ("records", "sql")

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        name = config["connector"]
        connector = ctx.connector(name)
        if "table" in config:
            self._expect(connector, "sql", name, ctx, "collection and key")
            where = where_values(config["where"], ctx.search)
            rows = connector.select(
                config["table"], where, limit=config["limit"], order_by=config.get("order_by")
            )
            found: Any = (rows[0] if rows else None) if config["one"] else rows
            what = f"row in {config['table']!r} where {where!r}"
        else:
            self._expect(connector, "records", name, ctx, "table and where")
            key = ctx.render(config["key"])
            found = connector.get(config["collection"], key)
            what = f"record {config['collection']}/{key}"
        if config["required"] and not found:
            raise StepFailed(ctx.step_id, f"no {what}")
        return found

    @staticmethod
    def _expect(connector: Any, kind: str, name: str, ctx: StepContext, instead: str) -> None:
        actual = getattr(connector, "kind", None)
        if actual != kind:
            raise StepFailed(
                ctx.step_id, f"connector {name!r} is {actual}; a {actual} lookup takes {instead}"
            )
