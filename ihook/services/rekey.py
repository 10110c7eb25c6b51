"""Re-encryption of stored secrets under the newest ``IHOOK_SECRET_KEY``."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ihook.models import Connector, Endpoint, Subscription
from ihook.secrets import Vault

ENCRYPTED = (
    (Endpoint, ("secret_enc", "previous_secret_enc")),
    (Connector, ("secrets_enc",)),
    (Subscription, ("secret_enc", "previous_secret_enc", "secrets_enc")),
)
"""Every model column that holds a value encrypted by the vault."""


def reencrypt_all(session: Session, vault: Vault) -> int:
    """Re-encrypt every stored secret with the vault's first key; returns how many.

    Raises SecretError (and changes nothing, the transaction rolls back) when a value
    is readable by none of the configured keys.
    """
    count = 0
    for model, columns in ENCRYPTED:
        for row in session.scalars(select(model)):
            for column in columns:
                value = getattr(row, column)
                if value:
                    setattr(row, column, vault.rotate(value))
                    count += 1
    return count
