"""What the platform lends one run: its connectors and a way to publish events."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from connectors import RecordsConnector, build_connector
from ihook.errors import Invalid
from ihook.models import Event, Run
from ihook.platform import Platform
from ihook.routing import Snapshot
from ihook.services.connectors import full_config
from ihook.services.event_types import check_data
from ihook.services.events import store_event
from ihook.services.records import SqlRecordStore
from workflows import Resources

MAX_EMIT_DEPTH = 8
"""How many emits may chain (a run emits, the event's run emits, …) before one is refused."""
DEPTH_HEADER = "ihook-emit-depth"
"""Header of an emitted event that counts the chain it belongs to."""


def run_resources(p: Platform, run: Run, event: Event, snapshot: Snapshot) -> Resources:
    """The resources of one attempt of ``run``, its connectors as of ``snapshot``.

    No http_client: the outbound guard's pooled keep-alive transport (no proxies from the
    environment, no cookies kept between targets) serves every request.
    """
    return Resources(
        connectors=RunConnectors(p, snapshot),
        outbound=p.outbound,
        events=RunEvents(p, run, event),
    )


_built: dict[str, tuple[tuple[str, Any], Any]] = {}
"""Connectors this process has built, by name, with the row version they were built from."""


class RunConnectors(Mapping[str, Any]):
    """A run's connectors by name, each built when a step first asks for it.

    A connector is built (its secrets decrypted, its config checked) once per process and
    version of its row, then shared by the runs that use it. One misconfigured connector
    fails only the steps that use it, as a step error in the run log.
    """

    def __init__(self, p: Platform, snapshot: Snapshot):
        self._platform = p
        self._rows = snapshot.connectors
        self._records = RecordsConnector(SqlRecordStore(p.db, p.dispatch))

    def __getitem__(self, name: str) -> Any:
        if name == "records":
            return self._records
        row = self._rows.get(name)
        if row is None:
            raise KeyError(name)
        version = (row.id, row.updated_at)
        built = _built.get(name)
        if built is None or built[0] != version:
            config = full_config(row, self._platform.vault)
            connector = build_connector(row.kind, config, policy=self._platform.outbound)
            _built[name] = built = (version, connector)
        return built[1]

    def __iter__(self) -> Iterator[str]:
        return iter({"records", *self._rows})

    def __len__(self) -> int:
        return len({"records", *self._rows})


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
