"""What every event reads, kept in memory per process: endpoints, triggers, subscriptions.

Each webhook reads the endpoint it came to, the workflows it triggers and the
subscriptions that may want it; each run reads its connectors and, finished, asks
whether anything listens for ``run.*``. These change rarely, so a process keeps a
``Snapshot`` of them for as long as the *configuration generation* stays the same: a
counter in the database (``config_generation``) that the transaction of every change to
endpoints, workflows, bindings, subscriptions, event types or connectors increments
(``note_changes`` hooks that into every session, so no service can forget it). Reading
the counter is one single-row query per transaction, instead of a query per endpoint,
trigger and subscription lookup. A snapshot is reloaded after ``MAX_AGE`` seconds
whatever the counter says, so even a change made by hand in the database is seen within
a minute.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from ihook.db import driver_cursor
from ihook.models import (
    ConfigGeneration,
    Connector,
    Endpoint,
    EndpointWorkflow,
    Subscription,
    Workflow,
)
from ihook.services.subscriptions import matches

CONFIG_TABLES = frozenset(
    {
        "endpoints",
        "workflows",
        "workflow_versions",
        "endpoint_workflows",
        "subscriptions",
        "event_types",
        "connectors",
    }
)
"""Tables whose changes increment the configuration generation."""
MAX_AGE = 60.0
"""Seconds after which a snapshot is reloaded even if the counter has not moved."""
GENERATION_SQL = "SELECT value FROM config_generation WHERE id = 1"
CHANGED = "ihook_config_changed"
SNAPSHOT = "ihook_snapshot"
ROUTING = "ihook_routing"
"""Keys of ``Session.info``."""

Trigger = tuple[str, int]
"""A workflow to queue a run of: ``(workflow id, version)``."""


@dataclass(frozen=True)
class Snapshot:
    """The configuration every event reads, as of one generation.

    Its ORM objects are detached copies: read them, never change or attach them.
    """

    generation: int
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    """By key hash, enabled or not."""
    bound: dict[str, list[Trigger]] = field(default_factory=dict)
    """Enabled workflows bound to each endpoint id."""
    by_type: dict[str, list[Trigger]] = field(default_factory=dict)
    """Enabled workflows triggered by each event type."""
    by_poller: dict[str, list[Trigger]] = field(default_factory=dict)
    """Enabled workflows triggered by each poller name."""
    subscriptions: list[Subscription] = field(default_factory=list)
    """Enabled subscriptions, in the order of their ids."""
    connectors: dict[str, Connector] = field(default_factory=dict)
    """Every connector, by name."""
    loaded_at: float = 0.0

    @cached_property
    def subscription_by_id(self) -> dict[str, Subscription]:
        """Enabled subscriptions by their id."""
        return {sub.id: sub for sub in self.subscriptions}

    def endpoint(self, key_hash: str) -> Endpoint | None:
        """The endpoint whose key hashes to ``key_hash``."""
        return self.endpoints.get(key_hash)

    def triggered(
        self, endpoint_id: str | None, event_type: str, poller: str | None
    ) -> list[Trigger]:
        """Enabled workflows bound to the endpoint, triggered by the type or by the poller."""
        found = list(self.by_type.get(event_type, ()))
        if endpoint_id is not None:
            found += self.bound.get(endpoint_id, ())
        if poller is not None:
            found += self.by_poller.get(poller, ())
        return sorted(set(found))

    def subscribers(self, environment: str, event_type: str) -> list[Subscription]:
        """Enabled subscriptions of the environment whose patterns match the type."""
        return [
            sub
            for sub in self.subscriptions
            if sub.environment == environment and matches(sub, event_type)
        ]

    def has_listeners(self, event_type: str) -> bool:
        """Whether an enabled workflow or subscription would act on an event of this type."""
        return bool(self.by_type.get(event_type)) or any(
            matches(sub, event_type) for sub in self.subscriptions
        )


class ConfigChanged(Exception):
    """The configuration changed since the snapshot a decision was made with."""


class Routing:
    """A process's current snapshot, shared by its threads."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def last(self) -> Snapshot | None:
        """The snapshot last loaded, if younger than ``MAX_AGE``; read without a query.

        It may be behind the database: whoever decides with it checks its generation in
        the transaction that acts on the decision (``check_generation``).
        """
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() - snapshot.loaded_at >= MAX_AGE:
            return None
        return snapshot

    def current(self, session: Session) -> Snapshot:
        """The snapshot for ``session``'s transaction (one counter read per transaction)."""
        held = session.info.get(SNAPSHOT)
        if held is not None and not session.info.get(CHANGED):
            return held
        generation = read_generation(session)
        snapshot = self._snapshot
        fresh = snapshot is not None and time.monotonic() - snapshot.loaded_at < MAX_AGE
        if snapshot is None or snapshot.generation != generation or not fresh:
            snapshot = load(session, generation)
            with self._lock:
                self._snapshot = snapshot
        if not session.info.get(CHANGED):
            session.info[SNAPSHOT] = snapshot
        return snapshot


def snapshot_of(session: Session) -> Snapshot:
    """The snapshot for ``session``: cached when the session comes from ``Database``."""
    routing = session.info.get(ROUTING)
    if routing is None:
        return load(session, read_generation(session))
    return routing.current(session)


def check_generation(session: Session, generation: int) -> Snapshot:
    """``session``'s snapshot; ``ConfigChanged`` unless it is of ``generation``."""
    snapshot = snapshot_of(session)
    if snapshot.generation != generation:
        raise ConfigChanged(f"configuration generation {generation} -> {snapshot.generation}")
    return snapshot


def read_generation(session: Session) -> int:
    """The configuration generation, read in ``session``'s transaction.

    On the driver's cursor: every webhook reads it, and through SQLAlchemy the read cost
    ten times the query.
    """
    with driver_cursor(session) as cursor:
        cursor.execute(GENERATION_SQL)
        row = cursor.fetchone()
    return (row[0] if row else 0) or 0


def load(session: Session, generation: int) -> Snapshot:
    """Read the configuration every event needs."""
    endpoints = list(session.scalars(select(Endpoint)))
    workflows = session.execute(
        select(Workflow.id, Workflow.version, Workflow.event_type, Workflow.poller).where(
            Workflow.enabled.is_(True)
        )
    ).all()
    enabled = {wf_id: version for wf_id, version, _, _ in workflows}
    bound: dict[str, list[Trigger]] = {}
    for endpoint_id, wf_id in session.execute(
        select(EndpointWorkflow.endpoint_id, EndpointWorkflow.workflow_id)
    ):
        if wf_id in enabled:
            bound.setdefault(endpoint_id, []).append((wf_id, enabled[wf_id]))
    by_type: dict[str, list[Trigger]] = {}
    by_poller: dict[str, list[Trigger]] = {}
    for wf_id, version, event_type, poller in workflows:
        if event_type:
            by_type.setdefault(event_type, []).append((wf_id, version))
        if poller:
            by_poller.setdefault(poller, []).append((wf_id, version))
    subscriptions = list(
        session.scalars(
            select(Subscription).where(Subscription.enabled.is_(True)).order_by(Subscription.id)
        )
    )
    connectors = list(session.scalars(select(Connector)))
    for obj in (*endpoints, *subscriptions, *connectors):
        session.expunge(obj)
    return Snapshot(
        generation=generation,
        endpoints={e.key_hash: e for e in endpoints},
        bound=bound,
        by_type=by_type,
        by_poller=by_poller,
        subscriptions=subscriptions,
        connectors={c.name: c for c in connectors},
        loaded_at=time.monotonic(),
    )


# -- noticing changes ----------------------------------------------------------------------


def note_changes(sessions: sessionmaker[Session], routing: Routing) -> None:
    """Make every session of ``sessions`` count its configuration changes and use ``routing``."""
    sessions.configure(info={ROUTING: routing})
    event.listen(sessions, "after_flush", _after_flush)
    event.listen(sessions, "do_orm_execute", _on_execute)
    event.listen(sessions, "before_commit", _before_commit)
    event.listen(sessions, "after_commit", _forget)
    event.listen(sessions, "after_rollback", _forget)


def _tables(objects: Iterable[Any]) -> set[str]:
    return {getattr(obj, "__tablename__", "") for obj in objects}


def _after_flush(session: Session, _context: Any) -> None:
    touched = _tables(session.new) | _tables(session.dirty) | _tables(session.deleted)
    if touched & CONFIG_TABLES:
        session.info[CHANGED] = True


def _on_execute(state: ORMExecuteState) -> Any:
    if not (state.is_update or state.is_delete or state.is_insert):
        return None
    mapper = state.bind_mapper
    if mapper is None or mapper.local_table.name not in CONFIG_TABLES:
        return None
    result = state.invoke_statement()
    if state.is_insert or getattr(result, "rowcount", 1):
        state.session.info[CHANGED] = True
    return result


def _before_commit(session: Session) -> None:
    session.flush()  # changes still pending would be flushed after this hook
    if session.info.get(CHANGED):
        session.execute(
            update(ConfigGeneration)
            .where(ConfigGeneration.id == 1)
            .values(value=ConfigGeneration.value + 1)
            .execution_options(synchronize_session=False)
        )


def _forget(session: Session) -> None:
    session.info.pop(CHANGED, None)
    session.info.pop(SNAPSHOT, None)
