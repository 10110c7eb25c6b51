from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from workflows import Resources, RunResult, StepLog, registry, run_workflow
from workflows.context import StepContext
from workflows.registry import Step, register_step
from workflows.runner import EXCERPT_CHARS, MAX_FOREACH_ITEMS, MAX_OUTPUT_CHARS

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")

RunSteps = Callable[..., RunResult]


def test_steps_chain_and_log(run_steps: RunSteps) -> None:
    result = run_steps(
        [
            {"id": "a", "type": "transform", "mapping": {"n": "data.n"}},
            {"id": "b", "type": "transform", "expression": "steps.a.n"},
        ],
        {"n": 3},
    )
    assert result.status == "succeeded" and result.output == 3
    a, b = result.steps
    assert (a.id, a.type, a.status) == ("a", "transform", "succeeded")
    assert a.input == '{"n": 3}' and a.output == '{"n": 3}' and b.output == "3"
    assert b.input == a.output  # a step's input is the previous step's output
    assert ISO.fullmatch(a.started_at) and ISO.fullmatch(a.finished_at)
    assert a.duration_ms >= 0 and a.error is None and a.truncated is False
    assert a.to_dict()["status"] == "succeeded" and type(a.to_dict()["status"]) is str


def test_filter_ends_the_run_as_skipped(run_steps: RunSteps) -> None:
    result = run_steps(
        [
            {"id": "only_done", "type": "filter", "if": "data.status == 'done'"},
            {"id": "after", "type": "transform", "expression": "data"},
        ],
        {"status": "open"},
    )
    assert result.status == "skipped"
    assert [log.id for log in result.steps] == ["only_done"]
    assert result.output is None and not result.retryable


def test_when_skips_one_step(run_steps: RunSteps) -> None:
    result = run_steps(
        [
            {"id": "maybe", "type": "transform", "expression": "data", "when": "data.go"},
            {"id": "after", "type": "transform", "expression": "default(steps.maybe, 'none')"},
        ],
        {"go": False},
    )
    assert result.status == "succeeded" and result.output == "none"
    assert [log.status for log in result.steps] == ["skipped", "succeeded"]


def test_foreach_runs_per_item(run_steps: RunSteps) -> None:
    result = run_steps(
        [{"id": "each", "type": "template", "template": "{{ item.n * 2 }}-{{ vars.tag }}",
          "foreach": "data.items"}],
        {"items": [{"n": 1}, {"n": 2}]},
        vars={"tag": "x"},
    )
    assert result.output == ["2-x", "4-x"]


def test_foreach_of_nothing_is_an_empty_list(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "e", "type": "transform", "expression": "item",
                         "foreach": "data.missing"}], {})
    assert result.output == []


def test_foreach_needs_a_list(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "e", "type": "transform", "expression": "item",
                         "foreach": "data"}], {"a": 1})
    assert result.status == "failed" and "foreach must select a list, got dict" in result.error


def test_foreach_is_capped(run_steps: RunSteps) -> None:
    items = list(range(MAX_FOREACH_ITEMS + 1))
    result = run_steps([{"id": "e", "type": "transform", "expression": "item",
                         "foreach": "data"}], items)
    assert result.status == "failed" and result.failed_step == "e"
    assert f"the cap is {MAX_FOREACH_ITEMS}" in result.error


def test_foreach_failure_names_the_item(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "e", "type": "transform", "expression": "lower(item)",
                         "foreach": "data"}], ["a", 1])
    assert result.status == "failed" and "item 1:" in result.error


def test_long_excerpts_are_truncated(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "big", "type": "transform", "expression": "data"}], "x" * 5000)
    log = result.steps[0]
    assert log.truncated
    assert log.output is not None and log.output.endswith("…[truncated]")
    assert len(log.output) == EXCERPT_CHARS + len("…[truncated]")
    assert result.output == "x" * 5000  # only the log is cut


def test_oversized_output_fails_the_step_and_says_why(run_steps: RunSteps) -> None:
    steps = [
        {"id": "small", "type": "transform", "expression": "data"},
        {"id": "huge", "type": "transform", "expression": "[data, data]"},
    ]
    result = run_steps(steps, "x" * (MAX_OUTPUT_CHARS // 2 + 10))
    assert result.status == "failed" and result.failed_step == "huge"
    assert f"over the cap of {MAX_OUTPUT_CHARS}" in result.error
    assert result.retryable is False


def test_context_has_event_run_and_vars(resources: Resources) -> None:
    definition = {"name": "t", "vars": {"a": 1, "b": 1}, "steps": [{
        "id": "c", "type": "transform",
        "expression": "{type: event.type, run: run.id, attempt: run.attempt, a: vars.a, b: vars.b}",
    }]}
    event = {"id": "evt_1", "type": "course.completed", "data": {}}
    result = run_workflow(definition, event, resources=resources,
                          run={"id": "run_1", "attempt": 2}, vars={"b": 2})
    assert result.output == {"type": "course.completed", "run": "run_1", "attempt": 2,
                             "a": 1, "b": 2}


def test_503_is_retryable_and_400_is_not(run_steps: RunSteps, server: HTTPServer) -> None:
    server.expect_request("/busy").respond_with_data("later", status=503)
    server.expect_request("/bad").respond_with_data("nope", status=400)
    busy = run_steps([{"id": "s", "type": "send", "url": server.url_for("/busy")}])
    assert busy.status == "failed" and busy.retryable and busy.failed_step == "s"
    assert busy.error.startswith("step 's' (send) failed: RemoteError: HTTP 503")
    bad = run_steps([{"id": "s", "type": "send", "url": server.url_for("/bad")}])
    assert bad.status == "failed" and not bad.retryable
    assert "HTTP 400" in bad.error and bad.steps[0].status == "failed"
    assert bad.steps[0].error is not None and "HTTP 400" in bad.steps[0].error


def test_connection_failure_is_retryable(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "s", "type": "send", "url": "http://127.0.0.1:9/"}])
    assert result.status == "failed" and result.retryable and "ConnectFailed" in result.error


@pytest.fixture
def boom_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_STEPS", dict(registry._STEPS))

    @register_step
    class Boom(Step):
        type = "boom"

        def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
            raise RuntimeError("kaboom")


@pytest.mark.usefixtures("boom_step")
def test_an_exception_in_a_step_fails_the_run(run_steps: RunSteps) -> None:
    result = run_steps([
        {"id": "ok", "type": "transform", "values": {"a": 1}},
        {"id": "b", "type": "boom"},
        {"id": "never", "type": "transform", "values": {"a": 1}},
    ])
    assert result.status == "failed" and not result.retryable
    assert result.error == "step 'b' (boom) failed: RuntimeError: kaboom"
    assert [log.status for log in result.steps] == ["succeeded", "failed"]
    assert result.steps[1].error == "RuntimeError: kaboom" and result.output is None


def test_an_unknown_step_type_fails_without_raising(resources: Resources) -> None:
    result = run_workflow({"steps": [{"id": "x", "type": "warp"}]}, {"data": {}},
                          resources=resources)
    assert result.status == "failed" and "unknown step type 'warp'" in (result.error or "")


def test_missing_connector_fails_the_step(resources: Resources) -> None:
    definition = {"steps": [{"id": "s", "type": "send", "connector": "crm", "method": "GET"}]}
    result = run_workflow(definition, {"data": {}}, resources=resources)
    assert result.status == "failed" and "no connector named 'crm'" in (result.error or "")


def test_step_log_to_dict() -> None:
    log = StepLog(id="a", type="filter")
    assert set(log.to_dict()) == {"id", "type", "status", "started_at", "finished_at",
                                  "duration_ms", "input", "output", "error", "truncated"}
