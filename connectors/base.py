"""What every connector is, and how its config is loaded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from marshmallow import Schema, ValidationError

from connectors.errors import ConfigError


@runtime_checkable
class Connector(Protocol):
    """A configured connection to an external system, found by ``kind`` in the registry."""

    kind: str

    def close(self) -> None:
        """Release what the connector holds (clients, pools); safe to call twice."""


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into ``{"auth.token": [...]}``."""
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for name, sub in messages.items():
            flat.update(flatten_messages(sub, f"{prefix}.{name}" if prefix else str(name)))
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def load_config(schema: type[Schema], config: Mapping[str, Any], *, kind: str) -> dict[str, Any]:
    """Load ``config`` through ``schema``; ConfigError lists every field's messages."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{kind} connector config must be an object")
    try:
        loaded: dict[str, Any] = schema().load(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}: {' '.join(msgs)}" for field, msgs in flatten_messages(exc.messages).items()
        )
        raise ConfigError(f"invalid {kind} connector config: {problems}") from None
    return loaded
