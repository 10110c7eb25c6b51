"""The secret sweep of the whole suite's logs.

Every log record any test's process emits (at INFO and above) and every log file of the
ihook processes tests start (api with its access log, worker, scheduler, up) is searched
for what must never be logged: a ``whsec_`` secret, an ``Authorization`` value, a bearer
or basic credential, an endpoint's ingest key in a ``/hooks/`` path, the suite's own admin
token and secret key. ``tests/conftest.py`` wires it up; the suite fails at its end when
anything is found, naming the place and the line (with the value cut short).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REDACTED = r"\[redacted\]"
PATTERNS = {
    "a whsec_ secret": re.compile(r"whsec_[A-Za-z0-9+/]{16,}"),
    "an Authorization value": re.compile(
        rf"(?i)\b(?:proxy-)?authorization\b['\"]?\s*[:=]\s*['\"]?(?!{REDACTED})\w"
    ),
    "a bearer or basic credential": re.compile(r"\b(?:Bearer|Basic) [A-Za-z0-9+/=._~-]{8,}"),
    "an endpoint key": re.compile(rf"/hooks/(?!{REDACTED})[A-Za-z0-9_-]{{16,}}"),
}
"""What no log line may hold, by what it is."""


@dataclass
class Sweep:
    """What the sweep found: (where, what, the line cut short)."""

    constants: tuple[str, ...] = ()
    """Secrets the suite itself uses (the admin token, the secret key)."""
    log_dirs: list[Path] = field(default_factory=list)
    found: list[tuple[str, str, str]] = field(default_factory=list)

    def check(self, where: str, text: str) -> None:
        """Record each forbidden value in ``text``."""
        for line in text.splitlines():
            for what, pattern in PATTERNS.items():
                if pattern.search(line):
                    self.found.append((where, what, _cut(line)))
            for constant in self.constants:
                if constant in line:
                    self.found.append((where, "a secret the suite uses", _cut(line)))

    def check_files(self) -> None:
        """Check every log file of every directory registered so far."""
        for directory in self.log_dirs:
            for path in sorted(directory.glob("*.log")):
                self.check(str(path), path.read_text(errors="replace"))

    def report(self, limit: int = 20) -> str:
        lines = [f"{where}: {what}: {line}" for where, what, line in self.found[:limit]]
        more = len(self.found) - limit
        return "\n".join(lines + ([f"… and {more} more"] if more > 0 else []))


class SweepHandler(logging.Handler):
    """A logging handler that checks every record it is given."""

    def __init__(self, sweep: Sweep):
        super().__init__(logging.INFO)
        self.sweep = sweep
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sweep.check(f"log record of {record.name}", self.format(record))
        except Exception:  # a record that cannot be formatted is the logging module's concern
            self.handleError(record)


def _cut(line: str, keep: int = 160) -> str:
    """The line, shortened, with each long token's middle hidden (the report is logged too)."""
    line = re.sub(r"([A-Za-z0-9+/=_-]{6})[A-Za-z0-9+/=_-]{6,}", r"\1…", line)
    return line[:keep]


def found_in(texts: Iterable[str]) -> list[str]:
    """The kinds of forbidden value in ``texts`` (for testing the sweep itself)."""
    sweep = Sweep()
    for text in texts:
        sweep.check("text", text)
    return [what for _, what, _ in sweep.found]
