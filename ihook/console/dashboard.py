"""The dashboard: the last day's traffic and failures, a chart by hour, and health."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import render_template, request

from ihook.api.context import platform
from ihook.api.health import Health
from ihook.console.blueprint import bp
from ihook.console.stats import Day, last_day
from ihook.models import utcnow

CHART_WIDTH = 480
"""The chart's viewBox width: 24 hours of 20 units."""
CHART_HEIGHT = 120
"""The chart's viewBox height, bars and hour labels included."""
PLOT_HEIGHT = 100
"""The tallest bar."""


@dataclass
class Bar:
    """One rectangle of the chart, in viewBox units."""

    x: float
    y: float
    width: float
    height: float
    kind: str
    label: str


def chart(day: Day) -> dict[str, Any]:
    """The bars and labels of the events-and-failures chart, scaled to the busiest hour."""
    step = CHART_WIDTH / max(len(day.hours), 1)
    top = max([1] + [max(h.events, h.failures) for h in day.hours])
    bars: list[Bar] = []
    labels = []
    for i, hour in enumerate(day.hours):
        x = i * step
        at = hour.start.strftime("%H:00")
        for offset, kind, value in ((1, "events", hour.events), (10, "failures", hour.failures)):
            height = PLOT_HEIGHT * value / top
            noun = "events received" if kind == "events" else "failures"
            label = f"{at} UTC: {value} {noun}"
            bars.append(Bar(x + offset, PLOT_HEIGHT - height, 8, height, kind, label))
        if i % 6 == 0:
            labels.append({"x": x + 1, "text": at})
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "plot": PLOT_HEIGHT,
        "bars": bars,
        "labels": labels,
        "top": top,
    }


def health() -> dict[str, Any]:
    """What ``GET /api/v1/health`` reports, from the same view."""
    answer = Health().get()
    return dict(answer.get_json())


@bp.get("/")
def dashboard() -> str:
    """Counts of the last 24 hours, the chart by hour, queue depths and health."""
    with platform().db.read() as session:
        day = last_day(session, utcnow())
    template = "console/_dashboard_live.html" if request.args.get("fragment") else None
    context = {"day": day, "chart": chart(day), "health": health()}
    return render_template(template or "console/dashboard.html", **context)
