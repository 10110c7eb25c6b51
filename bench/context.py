"""What every scenario gets (options, a log, a stack factory) and what it gives back."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.stack import Stack

API_WORKERS = 2
"""gunicorn workers of ``ihook api`` and of the bare endpoint (ihook's default)."""


@dataclass(frozen=True)
class Options:
    """The command line, as scenarios read it."""

    quick: bool = False
    duration: float | None = None
    """Seconds of each timed load run (default: 5 quick, 20 full)."""
    database: str = "sqlite"
    """``sqlite`` or a PostgreSQL URL the bench may wipe."""
    keep: bool = False
    generator: str = "wrk"
    """``wrk`` or ``python``: the load generator of timed runs."""
    scheduler: bool = True
    """Run ``ihook scheduler`` beside the workers, as ``ihook up`` does."""

    def seconds(self) -> float:
        return self.duration or (5.0 if self.quick else 20.0)

    def size(self, quick: int, full: int) -> int:
        """A count for this mode; ``--duration`` scales the full one."""
        return quick if self.quick else full


@dataclass
class Row:
    """One line of the results table: ihook beside its baseline."""

    scenario: str
    case: str
    unit: str
    ihook: float | None
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    """The ratio the issue asks for, e.g. ``>= 0.75``; empty when there is none."""
    ratio: float | None = None
    ok: bool | None = None
    note: str = ""

    @classmethod
    def versus(
        cls,
        scenario: str,
        case: str,
        unit: str,
        ihook: float | None,
        baseline: float | None,
        baseline_name: str,
        target: str = "",
        note: str = "",
    ) -> Row:
        """A row with its ratio ihook / baseline, judged against ``target`` if any."""
        r = ratio(ihook, baseline)
        return cls(
            scenario, case, unit, ihook, baseline, baseline_name, target, r, meets(r, target), note
        )


@dataclass
class Outcome:
    """What a scenario measured: table rows, count checks, and its raw numbers."""

    rows: list[Row] = field(default_factory=list)
    lost: int = 0
    doubled: int = 0
    checks: list[str] = field(default_factory=list)
    """Human-readable count checks, each ``ok: ...`` or ``FAIL: ...``."""
    metrics: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append(("ok: " if ok else "FAIL: ") + text)


@dataclass
class Context:
    """Options plus the means to start a stack and say what is going on."""

    options: Options
    started: float = field(default_factory=time.monotonic)

    def stack(self) -> Stack:
        return Stack(database=self.options.database, keep=self.options.keep)

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)


def ratio(ihook: float | None, baseline: float | None) -> float | None:
    if not ihook or not baseline:
        return None
    return round(ihook / baseline, 3)


def meets(value: float | None, target: str) -> bool | None:
    """Whether ``value`` meets ``target`` (``>= x`` or ``<= x``)."""
    if value is None or not target:
        return None
    op, number = target.split()
    return value >= float(number) if op == ">=" else value <= float(number)
