"""``send``: an HTTP request through an ``http`` connector or to a templated URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from connectors.registry import build_connector
from workflows.context import StepContext
from workflows.registry import Step, register_step
from workflows.schema import StepConfig, jmespath_field, template_field, template_map

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
"""HTTP methods a send step may use."""


class SendConfig(StepConfig):
    """Target (``connector`` or ``url``), method, path, headers, params and body."""

    connector = fields.String()
    url = template_field()
    method = fields.String(load_default="POST", validate=validate.OneOf(METHODS))
    path = template_field(load_default="")
    headers = template_map(load_default=dict)
    params = template_map(load_default=dict)
    body = jmespath_field()

    # Judged on the original input so a field that is present but invalid is not "missing".
    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _one_target(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        if ("connector" in original) == ("url" in original):
            raise ValidationError("Give connector or url (exactly one).", "connector")


@register_step
class Send(Step):
    """Send an HTTP request; the response is the output."""

    type = "send"
    Config = SendConfig
    connector_kinds = ("http",)

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        request: dict[str, Any] = {
            "headers": {name: ctx.render(t) for name, t in config.get("headers", {}).items()},
            "params": {name: ctx.render(t) for name, t in config.get("params", {}).items()},
        }
        if config.get("body") is not None:
            request["json"] = ctx.search(config["body"])
        path = ctx.render(config.get("path") or "")
        if "connector" in config:
            return ctx.connector(config["connector"]).request(config["method"], path, **request)
        resources = ctx.resources
        connector: Any = build_connector(
            "http",
            {"base_url": ctx.render(config["url"])},
            policy=resources.outbound,
            client=resources.http_client,
        )
        try:
            return connector.request(config["method"], path, **request)
        finally:
            connector.close()
