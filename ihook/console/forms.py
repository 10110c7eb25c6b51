"""Console forms: a form's fields loaded by the API's own schema, and the reasons of a
refusal (the schema's or a service's) as one message per field for the page to pin."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

from ihook.errors import IhookError

FORM = "_form"
"""The key of a message about the whole form rather than one field."""


def flatten(messages: Any, prefix: str = "") -> dict[str, str]:
    """Nested marshmallow/service messages as ``{"auth.type": "reason; reason"}``."""
    if isinstance(messages, dict):
        flat: dict[str, str] = {}
        for key, value in messages.items():
            name = FORM if key == "_schema" else str(key)
            flat.update(flatten(value, f"{prefix}.{name}" if prefix else name))
        return flat
    if isinstance(messages, list | tuple):
        if all(isinstance(item, str) for item in messages):
            return {prefix or FORM: "; ".join(messages)}
        flat = {}
        for index, item in enumerate(messages):
            flat.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or FORM: str(messages)}


def load(schema: Schema, data: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """``data`` loaded by the API's ``schema`` (the same rules as the API call), or None and
    a message per field at fault."""
    try:
        return schema.load(data), {}
    except ValidationError as error:
        return None, flatten(error.messages)


def refusal(error: IhookError) -> dict[str, str]:
    """A service's refusal as messages per field; its message alone when it names none."""
    flat = flatten(error.errors) if error.errors else {}
    return flat or {FORM: error.message}
