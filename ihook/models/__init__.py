"""SQLAlchemy models: the platform's tables.

JSON columns are JSONB on PostgreSQL; times are stored in UTC and come back aware.
Statuses are ``str`` enums so they read well in the database and the API.
"""

from ihook.models.base import Base, JSONType, UTCDateTime, utcnow
from ihook.models.core import (
    FINISHED,
    ApiToken,
    ConfigGeneration,
    Connector,
    Endpoint,
    EndpointWorkflow,
    Event,
    Record,
    Rejection,
    Run,
    RunStatus,
    User,
    Workflow,
    WorkflowVersion,
)
from ihook.models.outgoing import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    EventType,
    Subscription,
)
from ihook.models.polling import Cleanup, Poll, Poller, PollerItem

__all__ = [
    "FINISHED",
    "ApiToken",
    "Cleanup",
    "ConfigGeneration",
    "Base",
    "Connector",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Endpoint",
    "EndpointWorkflow",
    "Event",
    "EventType",
    "JSONType",
    "Poll",
    "Poller",
    "PollerItem",
    "Record",
    "Rejection",
    "Run",
    "RunStatus",
    "Subscription",
    "User",
    "UTCDateTime",
    "Workflow",
    "WorkflowVersion",
    "utcnow",
]
