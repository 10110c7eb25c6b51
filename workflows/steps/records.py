"""``insert`` / ``update`` / ``upsert`` / ``delete``: write records or rows by key.

The same step writes to a ``records`` collection or a ``sql`` table: both connectors take
``make_key(key, data)`` and ``write(target, key, data, mode)``. ``collection`` names the
target (``table`` is accepted too when the connector is ``sql``); ``key`` names the key
fields of ``data`` (records join their values with ':'; sql matches those columns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.registry import Step, register_step
from workflows.schema import KeySpec, StepConfig, jmespath_field

COLLECTION = r"^[a-z0-9_.-]{1,64}$"
"""Collection names the records store accepts."""

TABLE_NAME_LENGTH = 128
"""Longest table name accepted; the sql connector checks it against the database."""

RECORDS = "records"
"""The built-in records connector's name, the default of ``connector``."""


def table_field() -> fields.String:
    """A sql table name; whether the table exists is the connector's to say at run time."""
    return fields.String(validate=validate.Length(min=1, max=TABLE_NAME_LENGTH))


def check_target(original: Mapping[str, Any]) -> None:
    """Exactly one of ``collection`` / ``table``, and ``table`` only off the records store."""
    if ("collection" in original) == ("table" in original):
        raise ValidationError("Give collection or table (exactly one).", "collection")
    if "table" in original and original.get("connector", RECORDS) == RECORDS:
        raise ValidationError(
            "table is for sql connectors; the records connector takes collection.", "table"
        )


class WriteConfig(StepConfig):
    """Where to write and what: ``data`` selects the record, ``key`` names its key fields."""

    connector = fields.String(load_default=RECORDS)
    collection = fields.String(
        validate=validate.Regexp(COLLECTION, error="Not a valid collection name.")
    )
    table = table_field()
    key = KeySpec(required=True)
    data = jmespath_field(load_default="data")

    # Judged on the original input so a field that is present but invalid is not "missing".
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_target(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        check_target(original)


def target_field(config: Mapping[str, Any]) -> str:
    """The config field naming the write's target: "table" or "collection"."""
    return "table" if "table" in config else "collection"


class _Write(Step):
    """Shared by the write steps; ``type`` is the write mode."""

    Config = WriteConfig
    connector_kinds = ("records", "sql")

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        data = ctx.search(config["data"])
        if not isinstance(data, dict):
            raise StepFailed(ctx.step_id, f"data must select an object, got {type(data).__name__}")
        connector = ctx.connector(config["connector"])
        key = connector.make_key(config["key"], data)
        field = target_field(config)
        return self.apply(connector, field, config[field], key, data)

    def apply(self, connector: Any, field: str, target: str, key: Any, data: dict[str, Any]) -> Any:
        return connector.write(target, key, data, self.type)


@register_step
class Upsert(_Write):
    """Create the record or replace it."""

    type = "upsert"


@register_step
class Insert(_Write):
    """Create the record; fails if the key exists."""

    type = "insert"


@register_step
class Update(_Write):
    """Replace the record; fails if the key does not exist."""

    type = "update"


@register_step
class Delete(_Write):
    """Delete the record the key points at."""

    type = "delete"

    def apply(self, connector: Any, field: str, target: str, key: Any, data: dict[str, Any]) -> Any:
        return {field: target, "key": key, "deleted": connector.delete(target, key)}
