"""Connector classes found by kind.

A class registers with ``kind``, a ``Config`` marshmallow schema (secrets ``load_only``)
and a constructor ``cls(config, *, policy, client)`` taking the loaded config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from marshmallow import Schema

from connectors.base import Connector, load_config
from connectors.errors import ConfigError
from connectors.outbound import OutboundPolicy

_CONNECTORS: dict[str, type[Any]] = {}

C = TypeVar("C", bound=type)


def register_connector(cls: C) -> C:
    """Class decorator: make ``cls`` available under ``cls.kind``."""
    kind = getattr(cls, "kind", None)
    if not isinstance(kind, str) or not kind:
        raise TypeError(f"{cls.__qualname__} must declare a non-empty string `kind`")
    config = getattr(cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, Schema)):
        raise TypeError(f"{cls.__qualname__} must declare `Config`, a marshmallow Schema")
    existing = _CONNECTORS.get(kind)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"connector kind {kind!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    _CONNECTORS[kind] = cls
    return cls


def connector_kinds() -> list[str]:
    """The registered kinds, sorted."""
    return sorted(_CONNECTORS)


def connector_class(kind: str) -> type[Any]:
    """The class registered for ``kind``; ConfigError names the known kinds otherwise."""
    try:
        return _CONNECTORS[kind]
    except (KeyError, TypeError):
        known = ", ".join(connector_kinds()) or "none"
        raise ConfigError(f"unknown connector kind {kind!r} (known: {known})") from None


def build_connector(
    kind: str,
    config: Mapping[str, Any],
    *,
    policy: OutboundPolicy,
    client: httpx.Client | None = None,
) -> Connector:
    """Load ``config`` through the kind's schema and return a ready connector."""
    cls = connector_class(kind)
    loaded = load_config(cls.Config, config, kind=kind)
    connector: Connector = cls(loaded, policy=policy, client=client)
    return connector
