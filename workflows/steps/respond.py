"""``respond``: the answer a ``sync`` endpoint gives its caller (n8n: "respond to webhook")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import fields, validate

from workflows.context import StepContext
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, jmespath_field, template_map


class RespondConfig(StepConfig):
    """HTTP status, headers (templates) and body (jmespath) of the answer."""

    status = fields.Integer(load_default=200, validate=validate.Range(min=200, max=599))
    headers = template_map(load_default=dict)
    body = jmespath_field()


@register_step
class Respond(Step):
    """Set the answer of a sync endpoint; the run goes on (the last respond wins)."""

    type = "respond"
    Config = RespondConfig
    responds = True

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        return {
            "status": config["status"],
            "headers": {name: ctx.render(t) for name, t in config.get("headers", {}).items()},
            "body": ctx.search(config["body"]) if config.get("body") else None,
        }
