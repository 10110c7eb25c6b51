"""The polling side: pollers, the items each has seen, and the log of its polls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ihook.models.base import Base, JSONType, UTCDateTime, utcnow


class Poller(Base):
    """A scheduled request to a system that cannot push; its new items become events."""

    __tablename__ = "pollers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """The validated definition: request, schedule, items, id, cursor, pagination, mode,
    event_type and workflows (secrets stay in the connector it names)."""
    event_type: Mapped[str] = mapped_column(String(200))
    cursor: Mapped[Any] = mapped_column(JSONType, nullable=True)
    """The watermark the next poll starts from (``state.cursor`` in its request)."""
    schedule_from: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    """Set while enabled: no earlier slot is polled."""
    last_slot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The newest slot a poll was queued for."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Polls failed in a row; sets the back-off."""
    retry_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """After a failure: no scheduled poll before this time."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PollerItem(Base):
    """An item a poller has already turned into an event, by its identity."""

    __tablename__ = "poller_items"
    poller_id: Mapped[str] = mapped_column(
        ForeignKey("pollers.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(32))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Cleanup(Base):
    """One retention clean-up: what it removed, so totals stay known after the rows go."""

    __tablename__ = "cleanups"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime)
    """Rows older than this went."""
    counts: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    """Rows removed per table: events, runs, deliveries, delivery_attempts, polls."""
    duration_ms: Mapped[float | None] = mapped_column(Float)


class Poll(Base):
    """One poll: when, how it went, what it found, where the cursor went."""

    __tablename__ = "polls"
    __table_args__ = (Index("ix_polls_poller_started", "poller_id", "started_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    poller_id: Mapped[str] = mapped_column(ForeignKey("pollers.id", ondelete="CASCADE"))
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The scheduled slot it was for; null for ``poll-now``."""
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")
    status: Mapped[str] = mapped_column(String(16))
    """``succeeded`` or ``failed``."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    items_seen: Mapped[int] = mapped_column(Integer, default=0)
    items_new: Mapped[int] = mapped_column(Integer, default=0)
    cursor_before: Mapped[Any] = mapped_column(JSONType, nullable=True)
    cursor_after: Mapped[Any] = mapped_column(JSONType, nullable=True)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(Text)
