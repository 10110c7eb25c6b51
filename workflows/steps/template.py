"""``template``: render jinja2 text, or JSON parsed from the rendered text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from marshmallow import fields, validate

from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, template_field


class TemplateConfig(StepConfig):
    """The template and what it renders."""

    template = template_field(required=True)
    format = fields.String(load_default="text", validate=validate.OneOf(["text", "json"]))


@register_step
class Template(Step):
    """Render jinja2 text or JSON."""

    type = "template"
    Config = TemplateConfig

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        text = ctx.render(config["template"])
        if config.get("format") != "json":
            return text
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StepFailed(ctx.step_id, f"template did not render valid JSON: {exc}") from None
