"""``insert`` / ``update`` / ``upsert`` / ``delete``: write records by key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields, validate

from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.registry import Step, register_step
from workflows.schema import KeySpec, StepConfig, jmespath_field

COLLECTION = r"^[a-z0-9_.-]{1,64}$"
"""Collection names the records store accepts."""


class WriteConfig(StepConfig):
    """Where to write and what: ``data`` selects the record, ``key`` names its key fields."""

    connector = fields.String(load_default="records")
    collection = fields.String(
        required=True, validate=validate.Regexp(COLLECTION, error="Not a valid collection name.")
    )
    key = KeySpec(required=True)
    data = jmespath_field(load_default="data")


class _Write(Step):
    """Shared by the write steps; ``type`` is the write mode."""

    Config = WriteConfig
    connector_kinds = ("records",)  # "sql" joins when its connector lands

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        data = ctx.search(config["data"])
        if not isinstance(data, dict):
            raise StepFailed(ctx.step_id, f"data must select an object, got {type(data).__name__}")
        connector = ctx.connector(config["connector"])
        key = connector.make_key(config["key"], data)
        return self.apply(connector, config["collection"], key, data)

    def apply(self, connector: Any, collection: str, key: str, data: dict[str, Any]) -> Any:
        return connector.write(collection, key, data, self.type)


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

    def apply(self, connector: Any, collection: str, key: str, data: dict[str, Any]) -> Any:
        return {"collection": collection, "key": key, "deleted": connector.delete(collection, key)}
