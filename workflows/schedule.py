"""Schedules: when a time-triggered workflow (and later a poller) is due.

A schedule is ``{cron: "0 2 * * *"}`` (five fields or an ``@alias``, evaluated in
``timezone``, UTC by default) or ``{interval_seconds: 600}`` (slots on multiples of the
interval since the Unix epoch, so every process computes the same ones). A *slot* is the
moment a firing is for; :meth:`Schedule.latest` gives the newest slot at or before a
time, which is how missed slots after downtime collapse into one firing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MIN_INTERVAL = 5
"""Shortest ``interval_seconds`` a schedule may have."""

MAX_INTERVAL = 366 * 24 * 3600
"""Longest ``interval_seconds`` (a year and a day)."""

_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_KEYS = ({"cron"}, {"cron", "timezone"}, {"interval_seconds"})


class ScheduleError(ValueError):
    """A schedule that cannot be used; ``field`` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; build it with :func:`parse_schedule`."""

    cron: str | None = None
    timezone: str = "UTC"
    interval_seconds: int | None = None

    def latest(self, now: datetime) -> datetime:
        """The newest slot at or before ``now`` (aware, in UTC)."""
        now = _utc(now)
        if self.interval_seconds is not None:
            step = self.interval_seconds
            return datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)
        local = now.astimezone(ZoneInfo(self.timezone)).replace(microsecond=0)
        # croniter's get_prev is strictly before its start; start a second later so a
        # slot falling exactly on ``now`` counts as reached.
        it = croniter(self.cron, local + timedelta(seconds=1))
        return _utc(it.get_prev(datetime))

    def before(self, slot: datetime) -> datetime:
        """The slot just before ``slot``."""
        slot = _utc(slot)
        if self.interval_seconds is not None:
            return slot - timedelta(seconds=self.interval_seconds)
        it = croniter(self.cron, slot.astimezone(ZoneInfo(self.timezone)))
        return _utc(it.get_prev(datetime))

    def after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment``."""
        moment = _utc(moment)
        if self.interval_seconds is not None:
            step = self.interval_seconds
            return datetime.fromtimestamp((int(moment.timestamp()) // step + 1) * step, UTC)
        it = croniter(self.cron, moment.astimezone(ZoneInfo(self.timezone)))
        return _utc(it.get_next(datetime))


def parse_schedule(spec: Any) -> Schedule:
    """The schedule ``spec`` describes, or ScheduleError naming the field at fault."""
    if not isinstance(spec, Mapping) or set(spec) not in _KEYS:
        raise ScheduleError(
            "schedule", "Must be {cron: <expression>, timezone: <zone>} or {interval_seconds: <n>}."
        )
    if "interval_seconds" in spec:
        seconds = spec["interval_seconds"]
        if type(seconds) is not int or not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise ScheduleError(
                "schedule.interval_seconds",
                f"Must be a whole number of seconds from {MIN_INTERVAL} to {MAX_INTERVAL}.",
            )
        return Schedule(interval_seconds=seconds)
    cron = spec["cron"]
    if not _cron_ok(cron):
        raise ScheduleError("schedule.cron", "Not a valid cron expression (5 fields or an @alias).")
    zone = spec.get("timezone", "UTC")
    try:
        ZoneInfo(zone) if isinstance(zone, str) and zone else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if not isinstance(zone, str) or not zone:
        raise ScheduleError("schedule.timezone", "Not a known time zone (e.g. Europe/Paris).")
    return Schedule(cron=cron, timezone=zone)


def _cron_ok(cron: Any) -> bool:
    if not isinstance(cron, str):
        return False
    parts = cron.split()
    if len(parts) == 1:
        return parts[0] in _ALIASES
    return len(parts) == 5 and croniter.is_valid(cron)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
