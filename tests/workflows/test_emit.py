"""The emit step hands events to whatever sink the platform lends, and fails without one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from workflows import Resources, run_workflow, validate_definition


class ListSink:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []

    def publish(self, type: str, data: Any) -> dict[str, Any]:
        self.published.append((type, data))
        return {"event_id": f"evt_{len(self.published)}", "runs": []}


def run(resources: Resources, steps: list[dict], data: Any):
    definition = validate_definition({"name": "t", "steps": steps})
    event = {"id": "evt_0", "type": "t", "source": "t", "data": data, "headers": {}}
    return run_workflow(definition, event, resources=resources)


STEPS = [
    {
        "id": "tell",
        "type": "emit",
        "event_type": "course.{{ data.state | lower }}",
        "data": "{who: data.who}",
        "foreach": "data.items",
    }
]


def test_emit_publishes_through_the_sink(resources: Resources) -> None:
    sink = ListSink()
    result = run(
        replace(resources, events=sink), STEPS, {"state": "DONE", "who": "ada", "items": [1, 2]}
    )
    assert result.status == "succeeded"
    assert sink.published == [("course.done", {"who": "ada"})] * 2
    assert result.output == [{"event_id": "evt_1", "runs": []}, {"event_id": "evt_2", "runs": []}]


def test_emit_without_a_platform_fails_the_step(resources: Resources) -> None:
    result = run(resources, STEPS, {"state": "x", "who": "a", "items": [1]})
    assert result.status == "failed" and result.failed_step == "tell"
    assert "emit needs a platform to publish events" in result.error
