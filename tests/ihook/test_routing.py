"""The per-process configuration snapshot: every change is seen at once by every process."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from ihook import routing
from ihook.models import ConfigGeneration, Subscription
from ihook.platform import Platform
from ihook.services.events import add_event, store_event

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


def generation(platform) -> int:
    with platform.db.read() as session:
        return session.scalar(select(ConfigGeneration.value))


def make_flow(client, name: str = "flow", **trigger) -> dict:
    body = {
        "name": name,
        "trigger": trigger or {"event_type": "member.joined"},
        "steps": [{"id": "t", "type": "transform", "expression": "data"}],
    }
    answer = client.post("/api/v1/workflows", json=body)
    assert answer.status_code == 201, answer.json
    return answer.json


def publish(platform: Platform, type: str = "member.joined"):
    return store_event(platform.db, type=type, source="test", data={}, headers={})


@both_backends
def test_changes_to_the_configuration_move_the_generation_and_events_do_not(client, platform):
    start = generation(platform)
    flow = make_flow(client)
    after_create = generation(platform)
    assert after_create > start
    publish(platform)
    assert generation(platform) == after_create  # storing events changes no configuration
    answer = client.patch(f"/api/v1/workflows/{flow['id']}", json={"enabled": False})
    assert answer.status_code == 200, answer.json
    assert generation(platform) > after_create


@both_backends
def test_another_process_sees_a_change_on_its_next_event(client, platform, settings):
    other = Platform(settings)  # another process: its own cache
    try:
        assert publish(other).run_ids == []  # caches a snapshot with no workflow
        flow = make_flow(client)
        assert len(publish(other).run_ids) == 1
        client.patch(f"/api/v1/workflows/{flow['id']}", json={"enabled": False})
        assert publish(other).run_ids == []
    finally:
        other.close()


def test_a_core_update_of_a_subscription_counts_only_when_it_changes_a_row(client, platform):
    answer = client.post(
        "/api/v1/subscriptions",
        json={"name": "crm", "url": "https://127.0.0.1/hooks", "event_types": ["member.*"]},
    )
    assert answer.status_code == 201, answer.json
    before = generation(platform)
    with platform.db.session() as session:  # matches no row: nothing changed
        session.execute(update(Subscription).where(Subscription.id == "sub_none").values(name="x"))
    assert generation(platform) == before
    with platform.db.session() as session:
        session.execute(update(Subscription).values(enabled=False))
    assert generation(platform) == before + 1
    assert publish(platform).delivery_ids == []


def test_one_transaction_reads_the_generation_once(client, platform):
    make_flow(client)
    reads = []

    def count(statement: str) -> None:  # what SQLite runs, through SQLAlchemy or not
        if "config_generation" in statement:
            reads.append(statement)

    with platform.db.session() as session:
        driver = session.connection().connection.driver_connection
        driver.set_trace_callback(count)
        try:
            runs = [
                add_event(session, type="member.joined", source="t", data={}, headers={})
                for _ in range(5)
            ]
        finally:
            driver.set_trace_callback(None)
    assert all(len(accepted.run_ids) == 1 for accepted in runs)
    assert len(reads) == 1


def test_a_change_made_by_hand_is_seen_after_the_snapshot_ages(client, platform, monkeypatch):
    flow = make_flow(client)
    assert len(publish(platform).run_ids) == 1
    with platform.db.session() as session:  # behind ihook's back: no generation moves
        session.connection().execute(
            text("UPDATE workflows SET enabled = :off WHERE id = :id"),
            {"off": False, "id": flow["id"]},
        )
    assert len(publish(platform).run_ids) == 1  # still the cached snapshot
    monkeypatch.setattr(routing, "MAX_AGE", 0.0)
    assert publish(platform).run_ids == []
