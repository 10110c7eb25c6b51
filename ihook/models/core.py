"""The core tables: tokens, users, endpoints, workflows, events, runs, records, connectors.

JSON columns are JSONB on PostgreSQL; times are stored in UTC and come back aware.
Statuses are ``str`` enums so they read well in the database and the API.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ihook.models.base import Base, JSONType, UTCDateTime, utcnow


class RunStatus(enum.StrEnum):
    """Where a run is in its life."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"


FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.skipped)
"""Statuses a run does not leave (except by an explicit retry)."""


class ApiToken(Base):
    """A management API token, stored as a SHA-256 hash."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=lambda: ["admin"])
    """What the token may do: ``read``, ``publish``, ``write``, ``admin`` (see tokens)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A person who signs in to the console with a password, stored as a slow salted hash."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    """As it was created; it matches whatever its case."""
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    """``username`` in lower case: one user per name, whatever its case."""
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(Text)
    """werkzeug's ``method$salt$hash``; never shown, never logged."""
    generation: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped by a new password or a disabling: console sessions of an older one end."""
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=lambda: ["read"])
    """What the user may do: the scopes of API tokens (``ihook.services.tokens``)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Endpoint(Base):
    """An incoming webhook: secret URL, auth rule, schema, dedupe rule, rate limit."""

    __tablename__ = "endpoints"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_hint: Mapped[str] = mapped_column(String(16))
    auth: Mapped[dict[str, Any]] = mapped_column(JSONType)
    secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    allow_ips: Mapped[list[str]] = mapped_column(JSONType, default=list)
    schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    dedupe: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str | None] = mapped_column(Text)
    rate_limit: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    response_mode: Mapped[str] = mapped_column(String(8), default="async")
    sync_timeout: Mapped[float] = mapped_column(default=10.0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Workflow(Base):
    """A named workflow; its definition is versioned in ``workflow_versions``."""

    __tablename__ = "workflows"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    event_type: Mapped[str | None] = mapped_column(String(200), index=True)
    """The trigger's ``event_type`` (kept in a column so publishing finds workflows fast)."""
    poller: Mapped[str | None] = mapped_column(String(100), index=True)
    """The trigger's ``poller`` name: the poller's events run this workflow."""
    schedule_from: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    """Set while the trigger is a schedule (and the workflow enabled): no earlier slot fires."""
    last_slot: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The newest schedule slot that fired."""
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WorkflowVersion(Base):
    """One saved version of a workflow's definition; runs point at the one they ran."""

    __tablename__ = "workflow_versions"
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EndpointWorkflow(Base):
    """The trigger relation: an endpoint starts these workflows."""

    __tablename__ = "endpoint_workflows"
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    workflow_id: Mapped[str] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Event(Base):
    """One thing that happened, stored before anyone is told about it."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "dedupe_key", name="uq_events_dedupe"),
        # NULLs are distinct in a unique constraint: events of no endpoint (published,
        # emitted, scheduled) need their own index to stay unique by key.
        Index(
            "uq_events_dedupe_unbound",
            "dedupe_key",
            unique=True,
            sqlite_where=text("endpoint_id IS NULL"),
            postgresql_where=text("endpoint_id IS NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    type: Mapped[str] = mapped_column(String(200), index=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("endpoints.id", ondelete="SET NULL"))
    data: Mapped[Any] = mapped_column(JSONType, nullable=True)
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(500))
    environment: Mapped[str] = mapped_column(String(16), default="live", server_default="live")
    """Which subscriptions it goes to: ``live`` or ``sandbox`` ones."""
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Run(Base):
    """One execution of one workflow version for one event, with its step log."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status_due", "status", "next_attempt_at"),
        Index("ix_runs_workflow_created", "workflow_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    status: Mapped[RunStatus] = mapped_column(String(16), default=RunStatus.queued)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    failed_step: Mapped[str | None] = mapped_column(String(100))
    output: Mapped[Any] = mapped_column(JSONType, nullable=True)
    response: Mapped[Any] = mapped_column(JSONType, nullable=True)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)


class Record(Base):
    """A JSON document in the built-in record store, keyed within its collection."""

    __tablename__ = "records"
    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Connector(Base):
    """A named connection to an external system; secret fields encrypted at rest."""

    __tablename__ = "connectors"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    secrets_enc: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Rejection(Base):
    """A refused ingress request, kept (without secrets) so users can see why."""

    __tablename__ = "rejections"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    headers: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)


class ConfigGeneration(Base):
    """One row: a counter every change to the configuration increments (``ihook.routing``)."""

    __tablename__ = "config_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
