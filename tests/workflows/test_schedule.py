"""Schedules: the slots of cron and interval schedules, in UTC and in local time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workflows.schedule import ScheduleError, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_cron_latest_is_the_newest_slot_reached() -> None:
    nightly = parse_schedule({"cron": "0 2 * * *"})
    assert nightly.latest(utc(2026, 11, 22, 1, 59, 59)) == utc(2026, 11, 21, 2, 0)
    assert nightly.latest(utc(2026, 11, 22, 2, 0, 0)) == utc(2026, 11, 22, 2, 0)
    assert nightly.latest(utc(2026, 11, 22, 2, 0, 0, 500_000)) == utc(2026, 11, 22, 2, 0)
    assert nightly.latest(utc(2026, 11, 25, 13, 0)) == utc(2026, 11, 25, 2, 0)  # misses collapse


def test_cron_neighbours() -> None:
    every_minute = parse_schedule({"cron": "* * * * *"})
    assert every_minute.before(utc(2026, 11, 22, 10, 0)) == utc(2026, 11, 22, 9, 59)
    assert every_minute.after(utc(2026, 11, 22, 10, 0)) == utc(2026, 11, 22, 10, 1)
    assert every_minute.after(utc(2026, 11, 22, 10, 0, 30)) == utc(2026, 11, 22, 10, 1)


def test_cron_in_a_time_zone_follows_daylight_saving() -> None:
    toronto = parse_schedule({"cron": "0 2 * * *", "timezone": "America/Toronto"})
    assert toronto.latest(utc(2026, 7, 1, 12, 0)) == utc(2026, 7, 1, 6, 0)  # EDT, UTC-4
    assert toronto.latest(utc(2026, 12, 1, 12, 0)) == utc(2026, 12, 1, 7, 0)  # EST, UTC-5


def test_aliases() -> None:
    assert parse_schedule({"cron": "@hourly"}).latest(utc(2026, 1, 1, 5, 30)) == utc(2026, 1, 1, 5)


def test_interval_slots_are_multiples_since_the_epoch() -> None:
    every_ten_minutes = parse_schedule({"interval_seconds": 600})
    assert every_ten_minutes.latest(utc(2026, 11, 22, 10, 9, 59)) == utc(2026, 11, 22, 10, 0)
    assert every_ten_minutes.latest(utc(2026, 11, 22, 10, 10)) == utc(2026, 11, 22, 10, 10)
    assert every_ten_minutes.before(utc(2026, 11, 22, 10, 10)) == utc(2026, 11, 22, 10, 0)
    assert every_ten_minutes.after(utc(2026, 11, 22, 10, 10)) == utc(2026, 11, 22, 10, 20)


def test_naive_times_are_utc() -> None:
    hourly = parse_schedule({"cron": "0 * * * *"})
    assert hourly.latest(datetime(2026, 1, 1, 5, 30)) == utc(2026, 1, 1, 5)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("0 2 * * *", "schedule"),
        ({}, "schedule"),
        ({"cron": "0 2 * * *", "interval_seconds": 60}, "schedule"),
        ({"cron": "61 2 * * *"}, "schedule.cron"),
        ({"cron": "*/5 * * * * *"}, "schedule.cron"),
        ({"cron": "@sometimes"}, "schedule.cron"),
        ({"cron": 5}, "schedule.cron"),
        ({"cron": "@daily", "timezone": "Nowhere/Special"}, "schedule.timezone"),
        ({"cron": "@daily", "timezone": ""}, "schedule.timezone"),
        ({"interval_seconds": 4}, "schedule.interval_seconds"),
        ({"interval_seconds": True}, "schedule.interval_seconds"),
        ({"interval_seconds": 5.5}, "schedule.interval_seconds"),
    ],
)
def test_bad_schedules_name_the_field(spec: object, field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(spec)
    assert caught.value.field == field
