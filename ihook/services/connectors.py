"""Connectors: named, configured connections; their secret fields encrypted at rest.

The whole loaded config is stored encrypted (``secrets_enc``) for the workers; the
``config`` column holds what the kind's schema dumps — its ``load_only`` (secret)
fields left out — and is all the API ever shows.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import ConfigError, connector_class
from connectors.base import flatten_messages
from ihook.errors import Invalid
from ihook.ids import new_id
from ihook.models import Connector, utcnow
from ihook.secrets import Vault
from ihook.services.common import fetch, flush_unique

RESERVED = {"records"}
"""Names taken by built-in connectors."""


def get_connector(session: Session, connector_id: str) -> Connector:
    """The connector, or NotFound."""
    return fetch(session, Connector, connector_id, f"connector {connector_id} not found")


def list_connectors(session: Session) -> list[Connector]:
    """Every connector, oldest first."""
    return list(session.scalars(select(Connector).order_by(Connector.id)))


def create_connector(session: Session, vault: Vault, fields: dict[str, Any]) -> Connector:
    """Validate a connector's config against its kind and store it."""
    if fields["name"] in RESERVED:
        raise Invalid("reserved name", {"name": [f"{fields['name']!r} is built in"]})
    row = Connector(id=new_id("con"), name=fields["name"], kind=fields["kind"])
    _set_config(row, vault, fields.get("config") or {})
    session.add(row)
    flush_unique(session, "connector", row.name)
    return row


def update_connector(
    session: Session, vault: Vault, connector_id: str, fields: dict[str, Any]
) -> Connector:
    """Rename or reconfigure; ``config`` is merged into the stored one (secrets kept)."""
    row = get_connector(session, connector_id)
    if "name" in fields:
        if fields["name"] in RESERVED:
            raise Invalid("reserved name", {"name": [f"{fields['name']!r} is built in"]})
        row.name = fields["name"]
    if "config" in fields:
        _set_config(row, vault, _merge(full_config(row, vault), fields["config"]))
    row.updated_at = utcnow()
    flush_unique(session, "connector", row.name)
    return row


def delete_connector(session: Session, connector_id: str) -> None:
    """Delete a connector (workflows naming it fail validation when next saved)."""
    session.delete(get_connector(session, connector_id))


def full_config(row: Connector, vault: Vault) -> dict[str, Any]:
    """The config with its secrets, for building the connector in a worker."""
    if row.secrets_enc is None:
        return dict(row.config)
    return json.loads(vault.decrypt(row.secrets_enc))  # type: ignore[no-any-return]


def _set_config(row: Connector, vault: Vault, config: dict[str, Any]) -> None:
    try:
        schema = connector_class(row.kind).Config()
    except ConfigError as exc:
        raise Invalid("unknown connector kind", {"kind": [exc.message]}) from None
    try:
        loaded = schema.load(config)
    except ValidationError as exc:
        errors = {f"config.{k}": v for k, v in flatten_messages(exc.messages).items()}
        raise Invalid(f"invalid {row.kind} connector config", errors) from None
    row.config = schema.dump(loaded)
    row.secrets_enc = vault.encrypt(json.dumps(loaded))


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
