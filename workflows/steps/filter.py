"""``filter``: end the run as skipped unless a condition holds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.context import SkipRun, StepContext
from workflows.expressions import truthy
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, jmespath_field

# ``if`` is a keyword, so the schema is built from a dict to keep the author's field name.
FilterConfig = StepConfig.from_dict({"if": jmespath_field(required=True)}, name="FilterConfig")


@register_step
class Filter(Step):
    """End the run as ``skipped`` unless ``if`` is true."""

    type = "filter"
    Config = FilterConfig

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        if not truthy(ctx.search(config["if"])):
            raise SkipRun(f"filter {ctx.step_id!r}: {config['if']} was false")
        return True
