"""What a step sees while it runs: the expression context and the run's resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx

from connectors.errors import ConfigError
from connectors.outbound import OutboundPolicy
from workflows import expressions


class EventSink(Protocol):
    """Where ``emit`` publishes: the platform stores the event and runs what it triggers."""

    def publish(self, type: str, data: Any) -> dict[str, Any]:
        """Publish one event; returns at least ``{"event_id", "runs"}``."""
        ...


@dataclass
class Resources:
    """What the platform lends a run: connectors by name, the outbound policy, a client."""

    connectors: Mapping[str, Any]
    """Connector instances by name ("records" included)."""
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    """The policy for requests to plain URLs (``send`` with ``url``)."""
    http_client: httpx.Client | None = None
    """An httpx client for those requests; None: the guard's pooled keep-alive transport."""
    events: EventSink | None = None
    """Publishes what ``emit`` steps emit; None where no platform runs the workflow."""


class SkipRun(Exception):
    """Raised by a step to end the run as ``skipped`` (a filter that did not pass)."""


@dataclass
class StepContext:
    """One step's view of the run; ``data`` is the context every expression sees."""

    step_id: str
    data: dict[str, Any]
    resources: Resources
    input: Any = None

    def search(self, expr: str) -> Any:
        """Evaluate jmespath against the context."""
        return expressions.search(expr, self.data)

    def render(self, template: str) -> str:
        """Render a jinja2 template against the context."""
        return expressions.render(template, self.data)

    def connector(self, name: str) -> Any:
        """The run's connector called ``name``."""
        try:
            return self.resources.connectors[name]
        except KeyError:
            known = ", ".join(sorted(self.resources.connectors)) or "none"
            raise ConfigError(f"no connector named {name!r} (known: {known})") from None

    def for_item(self, item: Any) -> StepContext:
        """The same context with ``item`` set, for one ``foreach`` pass."""
        return replace(self, data={**self.data, "item": item}, input=item)
