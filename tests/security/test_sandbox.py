"""Templates and expressions: no escape from the sandbox, no unbounded work.

Known Jinja2 sandbox-escape payloads are run by the engine as a workflow's template
step: each fails the step, and none reaches the operating system (each would create a
marker file). Templates that would build a gigabyte are stopped by a cap in a real
``ihook worker``, which goes on working. jmespath expressions over their length or
depth cap are refused when saved and fail the step cleanly if one reaches the engine.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.support import wait_for
from workflows import Resources, run_workflow
from workflows.expressions import MAX_EXPRESSION_CHARS, MAX_EXPRESSION_DEPTH, MAX_TEXT_CHARS

NO_RESOURCES = Resources(connectors={})
"""A run with nothing to reach: these steps only render and evaluate."""


def escapes(marker: Path) -> list[str]:
    """Published Jinja2 SSTI payloads, each aimed at creating ``marker``."""
    touch = f"popen('touch {marker}').read()"
    return [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }}",
        "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "{{ [].__class__.__base__.__subclasses__() }}",
        "{{ {}.__class__.__base__.__subclasses__() }}",
        "{{ (1).__class__.__base__.__subclasses__() }}",
        "{{ ''|attr('__class__') }}",
        "{{ ''['__class__'] }}",
        "{{ self.__init__.__globals__.__builtins__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ cycler.__init__.__globals__.os." + touch + " }}",
        "{{ joiner.__init__.__globals__.os." + touch + " }}",
        "{{ namespace.__init__.__globals__.os." + touch + " }}",
        "{{ lipsum.__globals__['os']." + touch + " }}",
        "{{ now.__globals__['os']." + touch + " }}",
        "{{ uuid.__globals__['__builtins__']['__import__']('os')." + touch + " }}",
        "{{ range.__self__ }}",
        "{{ config.__class__.__init__.__globals__['os']." + touch + " }}",
        "{{ request.application.__globals__.__builtins__.__import__('os')." + touch + " }}",
        "{{ url_for.__globals__.os." + touch + " }}",
        "{{ '{0.__class__.__mro__}'.format('') }}",
        "{{ '%s' % ''.__class__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ data.__class__.__init__.__globals__ }}",
        "{{ data.keys.__self__.__class__ }}",
    ]


def _run(resources: Resources, template: str) -> tuple[str, str | None]:
    definition = {"name": "t", "steps": [{"id": "t", "type": "template", "template": template}]}
    event = {"id": "evt_1", "type": "t", "data": {"n": 1}}
    result = run_workflow(definition, event, resources=resources, run={"id": "r", "attempt": 1})
    return result.status, result.error


def test_published_sandbox_escapes_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "escaped"
    payloads = escapes(marker)
    assert len(payloads) >= 20
    for payload in payloads:
        status, error = _run(NO_RESOURCES, payload)
        assert status == "failed", (payload, status)
        assert "template failed" in error, error
        assert any(why in error for why in ("unsafe", "undefined", "no attribute")), error
    assert not marker.exists()


HUGE = {
    "multiply": "{{ 'x' * 1000000000 }}",
    "list": "{{ ['x'] * 1000000000 }}",
    "power": "{{ 9 ** 999999999 }}",
    "loops": "{% for a in range(100000) %}{% for b in range(100000) %}xxxxxxxxxx"
    "{% endfor %}{% endfor %}",
    "silent-loops": "{% for a in range(100000) %}{% for b in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "doubling": "{% set ns = namespace(s='x') %}{% for i in range(30) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
    "center": "{{ 'x'|center(1000000000) }}",
    "format": "{{ '{:>1000000000}'.format(1) }}",
    "percent": "{{ '%01000000000d' % 1 }}",
    "slow": "{% for a in range(100000) %}{% set x = range(1000)|list|sort %}{% endfor %}",
}
"""Templates that would render a gigabyte (or run for minutes), each a different way."""


@pytest.mark.slow
def test_a_gigabyte_template_is_stopped_by_a_cap_and_the_worker_lives(client, platform, worker):
    runs = {}
    for name, template in HUGE.items():
        steps = [{"id": "big", "type": "template", "template": template}]
        created = client.post("/api/v1/workflows", json={"name": f"huge-{name}", "steps": steps})
        assert created.status_code == 201, created.json
        started = client.post(f"/api/v1/workflows/{created.json['id']}/runs", json={"data": {}})
        runs[name] = started.json["runs"][0]
    for name, run_id in runs.items():
        run = wait_for(lambda run_id=run_id: _finished(client, run_id), timeout=60)
        assert run["status"] == "failed", (name, run)
        assert run["error"].startswith("step 'big' (template) failed: ExpressionError"), run
        took = _seconds(run["finished_at"]) - _seconds(run["started_at"])
        assert took < 2.0, (name, took, run["error"])
    assert worker.poll() is None  # the worker lives, and works on
    steps = [{"id": "ok", "type": "template", "template": "{{ 'fine' }}"}]
    created = client.post("/api/v1/workflows", json={"name": "after", "steps": steps}).json
    run_id = client.post(f"/api/v1/workflows/{created['id']}/runs", json={"data": {}}).json["runs"][
        0
    ]
    assert wait_for(lambda: _finished(client, run_id), timeout=30)["status"] == "succeeded"


def _finished(client, run_id: str) -> dict | None:
    run = client.get(f"/api/v1/runs/{run_id}").json
    return run if run["status"] in ("succeeded", "failed") else None


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_each_cap_is_named_when_it_stops_a_template() -> None:
    expected = {
        "multiply": f"'*' would build over {MAX_TEXT_CHARS} items",
        "power": "'**' with an exponent over 1024",
        "loops": f"output over {MAX_TEXT_CHARS} characters",
        "silent-loops": "loops over more than",
        "doubling": f"a value over {MAX_TEXT_CHARS} characters",
        "center": f"filter center: an argument over {MAX_TEXT_CHARS}",
        "format": "format: a format width of a million or more",
        "slow": "rendering took longer than 1 s",
    }
    for name, reason in expected.items():
        started = time.monotonic()
        status, error = _run(NO_RESOURCES, HUGE[name])
        assert status == "failed" and reason in error, (name, error)
        assert time.monotonic() - started < 2.0, name


def test_expressions_over_their_caps_are_refused_when_saved(client) -> None:
    long = "a" * (MAX_EXPRESSION_CHARS + 1)
    deep = "abs(" * MAX_EXPRESSION_DEPTH + "a" + ")" * MAX_EXPRESSION_DEPTH
    recursing = "[" * 400 + "a" + "]" * 400  # the parser itself would recurse too far
    for expression, reason in (
        (long, f"longer than {MAX_EXPRESSION_CHARS}"),
        (deep, f"nested deeper than {MAX_EXPRESSION_DEPTH}"),
        (recursing, f"nested deeper than {MAX_EXPRESSION_DEPTH}"),
        ("(" * 1000 + "a" + ")" * 1000, f"nested deeper than {MAX_EXPRESSION_DEPTH}"),
    ):
        steps = [{"id": "keep", "type": "filter", "if": expression}]
        answer = client.post("/api/v1/workflows", json={"name": "capped", "steps": steps})
        assert answer.status_code == 422, answer.json
        assert reason in str(answer.json["errors"]), answer.json
    assert client.get("/api/v1/workflows").json == []


def test_an_expression_over_its_cap_fails_the_step_cleanly() -> None:
    """As when a plugin step evaluates an expression that was never validated."""
    definition = {"name": "t", "steps": [{"id": "pick", "type": "transform", "expression": "data"}]}
    deep = "(" * 1000 + "data" + ")" * 1000
    definition["steps"][0]["expression"] = deep
    result = run_workflow(definition, {"id": "e", "type": "t", "data": {}}, resources=NO_RESOURCES)
    assert result.status == "failed" and result.failed_step == "pick"
    assert f"nested deeper than {MAX_EXPRESSION_DEPTH}" in result.error
    amplify = "replace(replace(replace(data.s, 'a', data.s), 'a', data.s), 'a', data.s)"
    definition["steps"][0]["expression"] = amplify
    event = {"id": "e", "type": "t", "data": {"s": "a" * 200}}
    result = run_workflow(definition, event, resources=NO_RESOURCES)
    assert result.status == "failed"
    assert f"replace: the result would be over {MAX_TEXT_CHARS} characters" in result.error
