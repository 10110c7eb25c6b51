"""The outgoing side: event types, subscriptions, deliveries and their attempts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ihook.models.base import Base, JSONType, UTCDateTime, utcnow


class EventType(Base):
    """A named kind of event with the JSON Schema its data must meet."""

    __tablename__ = "event_types"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """An outgoing webhook: which events, where to, how to sign and shape them."""

    __tablename__ = "subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    environment: Mapped[str] = mapped_column(String(16), default="live")
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    filter: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    auth: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """The auth without its secrets: ``{type}`` and, for basic, ``username``."""
    header_names: Mapped[list[str]] = mapped_column(JSONType, default=list)
    secrets_enc: Mapped[str | None] = mapped_column(Text)
    """Encrypted ``{"auth": {...}, "headers": {...}}``: passwords, tokens, header values."""
    mapping: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    fixed_data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error_emails: Mapped[list[str]] = mapped_column(JSONType, default=list)
    retry_schedule: Mapped[list[int]] = mapped_column(JSONType, default=list)
    secret_enc: Mapped[str] = mapped_column(Text)
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DeliveryStatus(enum.StrEnum):
    """Where a delivery is in its life."""

    pending = "pending"
    sending = "sending"
    succeeded = "succeeded"
    failed = "failed"


class Delivery(Base):
    """One event sent to one subscription; ``id`` is the ``webhook-id`` of every attempt."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_subscription_created", "subscription_id", "created_at"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(200))
    status: Mapped[DeliveryStatus] = mapped_column(String(16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[Any] = mapped_column(JSONType, nullable=True)
    """The payload ``{type, timestamp, data}``, made once so every attempt sends the same."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    alert: Mapped[str | None] = mapped_column(Text)
    """What became of the error e-mail sent when the delivery failed."""


class DeliveryAttempt(Base):
    """One try at a delivery, as it was sent and as it was answered."""

    __tablename__ = "delivery_attempts"
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    url: Mapped[str] = mapped_column(Text)
    request_headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)

    @property
    def succeeded(self) -> bool:
        """A 2xx answer."""
        return self.status_code is not None and 200 <= self.status_code < 300
