"""``transform``: reshape data with a jmespath expression or a mapping, plus fixed values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, jmespath_field, jmespath_map


class TransformConfig(StepConfig):
    """``expression`` or ``mapping``; ``values`` are merged over the result."""

    expression = jmespath_field()
    mapping = jmespath_map()
    values = fields.Dict(keys=fields.String(), values=fields.Raw(allow_none=True))

    # Judged on the original input so a field that is present but invalid is not "missing".
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_source(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        if "expression" in original and "mapping" in original:
            raise ValidationError("Use expression or mapping, not both.", "mapping")
        if not original.keys() & {"expression", "mapping", "values"}:
            raise ValidationError("Give expression, mapping or values.", "mapping")


@register_step
class Transform(Step):
    """Reshape data with a jmespath expression or a mapping."""

    type = "transform"
    Config = TransformConfig

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        if "expression" in config:
            result = ctx.search(config["expression"])
        else:
            mapping = config.get("mapping") or {}
            result = {name: ctx.search(expr) for name, expr in mapping.items()}
        values = config.get("values")
        if not values:
            return result
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise StepFailed(
                ctx.step_id, f"cannot merge values into a {type(result).__name__} result"
            )
        return {**result, **values}
