from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from connectors import RecordStore, build_connector
from connectors.outbound import OutboundPolicy
from workflows import Resources, RunResult

RunSteps = Callable[..., RunResult]


def only(result: Any) -> Any:
    assert result.status == "succeeded", result.error
    return result.output


# filter


def test_filter_passes(run_steps: RunSteps) -> None:
    steps = [{"id": "f", "type": "filter", "if": "data.ok"}]
    assert only(run_steps(steps, {"ok": True})) is True


def test_filter_that_fails_skips_the_run(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "f", "type": "filter", "if": "data.ok"}], {"ok": False})
    assert result.status == "skipped" and result.error is None


# transform


def test_transform_expression(run_steps: RunSteps) -> None:
    steps = [{"id": "t", "type": "transform", "expression": "data.items[].upper(name)"}]
    assert only(run_steps(steps, {"items": [{"name": "a"}, {"name": "b"}]})) == ["A", "B"]


def test_transform_mapping_with_values(run_steps: RunSteps) -> None:
    steps = [{
        "id": "t", "type": "transform",
        "mapping": {"id": "data.learner.id", "source": "'lms'"},
        "values": {"source": "fixed", "version": 2},
    }]
    out = only(run_steps(steps, {"learner": {"id": 5}}))
    assert out == {"id": 5, "source": "fixed", "version": 2}


def test_transform_values_alone(run_steps: RunSteps) -> None:
    assert only(run_steps([{"id": "t", "type": "transform", "values": {"a": 1}}])) == {"a": 1}


def test_transform_values_into_a_list_fails(run_steps: RunSteps) -> None:
    steps = [{"id": "t", "type": "transform", "expression": "data", "values": {"a": 1}}]
    result = run_steps(steps, [1, 2])
    assert result.status == "failed"
    assert "cannot merge values into a list" in result.error


def test_transform_expression_that_fails(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "t", "type": "transform", "expression": "lower(data)"}], 5)
    assert result.status == "failed" and "ExpressionError" in result.error


# template


def test_template_text(run_steps: RunSteps) -> None:
    steps = [{"id": "t", "type": "template", "template": "Hi {{ data.name }}"}]
    assert only(run_steps(steps, {"name": "Ada"})) == "Hi Ada"


def test_template_json(run_steps: RunSteps) -> None:
    steps = [{"id": "t", "type": "template", "format": "json",
              "template": '{"who": {{ data.name | tojson }}, "n": {{ data.n + 1 }}}'}]
    assert only(run_steps(steps, {"name": 'A "quoted" name', "n": 1})) == {
        "who": 'A "quoted" name', "n": 2
    }


def test_template_json_that_does_not_parse(run_steps: RunSteps) -> None:
    steps = [{"id": "t", "type": "template", "format": "json", "template": "{{ data.name }}"}]
    result = run_steps(steps, {"name": "Ada"})
    assert result.status == "failed" and "did not render valid JSON" in result.error


def test_template_with_undefined_name(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "t", "type": "template", "template": "{{ data.nope }}"}], {})
    assert result.status == "failed" and result.failed_step == "t"


# insert / update / upsert / delete


def test_upsert_then_update(run_steps: RunSteps, store: RecordStore) -> None:
    steps = [
        {"id": "a", "type": "transform", "mapping": {"m": "data.m", "c": "data.c"}},
        {"id": "save", "type": "upsert", "collection": "activities", "key": ["m", "c"],
         "data": "steps.a"},
    ]
    out = only(run_steps(steps, {"m": 1, "c": "PY"}))
    assert out == {"collection": "activities", "key": "1:PY", "action": "created",
                   "data": {"m": 1, "c": "PY"}}
    assert only(run_steps(steps, {"m": 1, "c": "PY"}))["action"] == "unchanged"
    update = [{"id": "u", "type": "update", "collection": "activities", "key": ["m", "c"]}]
    assert only(run_steps(update, {"m": 1, "c": "PY", "x": 1}))["action"] == "updated"
    assert store.get("activities", "1:PY") == {"m": 1, "c": "PY", "x": 1}


def test_insert_of_an_existing_key_fails_for_good(run_steps: RunSteps) -> None:
    steps = [{"id": "i", "type": "insert", "collection": "c", "key": "id"}]
    only(run_steps(steps, {"id": 1}))
    result = run_steps(steps, {"id": 1})
    assert result.status == "failed" and not result.retryable
    assert "RecordError" in result.error


def test_update_of_a_missing_key_fails(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "u", "type": "update", "collection": "c", "key": "id"}], {"id": 9})
    assert result.status == "failed" and "RecordError" in result.error


def test_write_with_missing_key_field_names_it(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "s", "type": "upsert", "collection": "c", "key": "email"}], {})
    assert result.status == "failed" and "'email' is missing" in result.error


def test_write_of_non_object_data_fails(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "s", "type": "upsert", "collection": "c", "key": "id"}], [1])
    assert result.status == "failed" and "must select an object" in result.error


def test_delete(run_steps: RunSteps, store: RecordStore) -> None:
    store.write("c", "7", {"id": 7}, mode="insert")
    steps = [{"id": "d", "type": "delete", "collection": "c", "key": "id"}]
    assert only(run_steps(steps, {"id": 7})) == {"collection": "c", "key": "7", "deleted": True}
    assert store.get("c", "7") is None


# send


@pytest.fixture
def crm(resources: Resources, server: HTTPServer) -> Resources:
    connector = build_connector(
        "http",
        {"base_url": server.url_for("/crm"), "auth": {"type": "bearer", "token": "t0k"}},
        policy=OutboundPolicy(allow_private=True),
    )
    resources.connectors = {**resources.connectors, "crm": connector}
    return resources


def test_send_through_a_connector(run_steps: RunSteps, crm: Resources, server: HTTPServer) -> None:
    server.expect_request(
        "/crm/members/42/activities",
        method="PUT",
        json={"course": "PY"},
        query_string="src=lms",
        headers={"Authorization": "Bearer t0k", "X-Member": "42"},
    ).respond_with_json({"saved": True}, status=201)
    steps = [{
        "id": "notify", "type": "send", "connector": "crm", "method": "PUT",
        "path": "/members/{{ data.member }}/activities",
        "headers": {"X-Member": "{{ data.member }}"},
        "params": {"src": "lms"},
        "body": "{course: data.course}",
    }]
    out = only(run_steps(steps, {"member": 42, "course": "PY"}))
    assert out["status"] == 201 and out["body"] == {"saved": True}


def test_send_to_a_url(run_steps: RunSteps, server: HTTPServer) -> None:
    server.expect_request("/hook/a", method="POST", json={"n": 1}).respond_with_data("ok")
    base = server.url_for("/hook")
    steps = [{"id": "s", "type": "send", "url": base + "/{{ data.name }}", "body": "{n: data.n}"}]
    assert only(run_steps(steps, {"name": "a", "n": 1}))["body"] == "ok"


def test_send_to_a_private_url_is_refused_by_default(
    run_steps: RunSteps, resources: Resources, server: HTTPServer
) -> None:
    resources.outbound = OutboundPolicy()
    result = run_steps([{"id": "s", "type": "send", "url": server.url_for("/x")}])
    assert result.status == "failed" and not result.retryable
    assert "OutboundRefused" in result.error


def test_send_with_a_bad_url(run_steps: RunSteps) -> None:
    result = run_steps([{"id": "s", "type": "send", "url": "{{ data.u }}"}], {"u": "not a url"})
    assert result.status == "failed" and "ConfigError" in result.error
