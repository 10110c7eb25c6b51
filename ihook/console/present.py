"""How values look on the console's pages: times, durations, URLs, triggers (Jinja filters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask


def when(value: datetime | str | None) -> str:
    """A time as ``2024-05-01 12:00:03 UTC`` (ISO text is parsed first); empty for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | str | None) -> str:
    """A time as ISO-8601, for ``<time datetime=…>``."""
    if isinstance(value, datetime):
        return value.isoformat()
    return value or ""


def duration(ms: Any) -> str:
    """Milliseconds as ``12 ms`` or ``3.4 s``; empty when unknown."""
    if not isinstance(ms, int | float):
        return ""
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def between(start: datetime | None, end: datetime | None) -> str:
    """The time from ``start`` to ``end`` as ``duration`` shows it."""
    if start is None or end is None:
        return ""
    return duration((end - start).total_seconds() * 1000)


def shown_url(url: str | None) -> str:
    """A URL without user info or query string (either may hold a credential)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    shown = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return shown + ("?…" if parts.query else "")


def trigger(value: dict[str, Any] | None) -> str:
    """A workflow trigger in words: ``endpoint: lms``, ``schedule: 0 2 * * *``, ``manual``."""
    if not value or value.get("manual"):
        return "manual"
    parts = []
    for kind, target in value.items():
        if isinstance(target, list):
            target = ", ".join(str(t) for t in target)
        elif isinstance(target, dict):
            target = target.get("cron") or ", ".join(f"{k} {v}" for k, v in target.items())
        parts.append(f"{kind}: {target}")
    return "; ".join(parts)


def excerpt(text: str | None, limit: int = 160) -> str:
    """The first ``limit`` characters of ``text``, with an ellipsis when cut."""
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


FILTERS = {
    "when": when,
    "iso": iso,
    "duration": duration,
    "between": between,
    "shown_url": shown_url,
    "trigger": trigger,
    "excerpt": excerpt,
}


def register_filters(app: Flask) -> None:
    """Add the console's filters to the app's Jinja environment (names prefixed ``console_``)."""
    for name, func in FILTERS.items():
        app.jinja_env.filters[f"console_{name}"] = func
