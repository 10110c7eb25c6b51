"""``emit``: publish an event, so subscriptions and event-triggered workflows hear of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import validate

from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, jmespath_field, template_field


class EmitConfig(StepConfig):
    """The event's ``event_type`` (jinja2) and ``data`` (jmespath, default the run's data)."""

    event_type = template_field(required=True, validate=validate.Length(min=1, max=200))
    data = jmespath_field(load_default="data")


@register_step
class Emit(Step):
    """Publish an event; the output is ``{"event_id", "runs"}``."""

    type = "emit"
    Config = EmitConfig

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        sink = ctx.resources.events
        if sink is None:
            raise StepFailed(ctx.step_id, "emit needs a platform to publish events")
        event_type = ctx.render(config["event_type"]).strip()
        if not event_type or len(event_type) > 200:
            raise StepFailed(ctx.step_id, f"event type must be 1-200 characters: {event_type!r}")
        return sink.publish(event_type, ctx.search(config["data"]))
