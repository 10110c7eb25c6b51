"""What the platform lends one run: its connectors and a way to publish events."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import select

from connectors import RecordsConnector, build_connector
from ihook.errors import Invalid
from ihook.models import Connector, Event, Run
from ihook.platform import Platform
from ihook.services.connectors import full_config
from ihook.services.event_types import check_data
from ihook.services.events import store_event
from ihook.services.records import SqlRecordStore
from workflows import Resources

MAX_EMIT_DEPTH = 8
"""How many emits may chain (a run emits, the event's run emits, …) before one is refused."""
DEPTH_HEADER = "ihook-emit-depth"
"""Header of an emitted event that counts the chain it belongs to."""


def run_resources(p: Platform, run: Run, event: Event) -> Resources:
    """The resources of one attempt of ``run``.

    No http_client: the outbound guard's pooled keep-alive transport (no proxies from the
    environment, no cookies kept between targets) serves every request.
    """
    return Resources(
        connectors=RunConnectors(p),
        outbound=p.outbound,
        events=RunEvents(p, run, event),
    )


class RunConnectors(Mapping[str, Any]):
    """A run's connectors by name, each read and built when a step first asks for it.

    Lazily, so a run that uses no connector costs no query, and one misconfigured
    connector fails only the steps that use it, as a step error in the run log.
    """

    def __init__(self, p: Platform):
        self._platform = p
        records = RecordsConnector(SqlRecordStore(p.db, p.dispatch))
        self._built: dict[str, Any] = {"records": records}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            with self._platform.db.read() as session:
                row = session.scalar(select(Connector).where(Connector.name == name))
            if row is None:
                raise KeyError(name)
            config = full_config(row, self._platform.vault)
            self._built[name] = build_connector(row.kind, config, policy=self._platform.outbound)
        return self._built[name]

    def _names(self) -> set[str]:
        with self._platform.db.read() as session:
            return {"records", *session.scalars(select(Connector.name))}

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class RunEvents:
    """Publishes a run's emits: stored with their runs, then enqueued.

    Each emit of a run has a dedupe key from the run id and its place in the run, so a
    retried attempt that emits again publishes nothing twice.
    """

    def __init__(self, p: Platform, run: Run, event: Event):
        self._platform = p
        self._run_id = run.id
        self._depth = int((event.headers or {}).get(DEPTH_HEADER, "0")) + 1
        self._count = 0

    def publish(self, type: str, data: Any) -> dict[str, Any]:
        """Store the event and queue what it triggers; ``{"event_id", "runs", "duplicate"}``."""
        if self._depth > MAX_EMIT_DEPTH:
            raise RuntimeError(
                f"emit refused: {MAX_EMIT_DEPTH} emits already chain to this run "
                "(a workflow that triggers itself?)"
            )
        self._count += 1
        with self._platform.db.read() as session:
            try:
                check_data(session, type, data)
            except Invalid as exc:
                problems = "; ".join(exc.errors.get("data", []))
                raise ValueError(f"emit refused: {exc.message}: {problems}") from None
        accepted = store_event(
            self._platform.db,
            type=type,
            source=f"run:{self._run_id}",
            data=data,
            headers={DEPTH_HEADER: str(self._depth)},
            dedupe_key=f"emit:{self._run_id}:{self._count}",
        )
        self._platform.dispatch(accepted)
        return {
            "event_id": accepted.event_id,
            "runs": accepted.run_ids,
            "duplicate": accepted.duplicate,
        }
