from __future__ import annotations

from typing import Any

import pytest

from workflows import DefinitionError, validate_definition
from workflows.definition import MAX_STEPS

CONNECTORS = {"crm": "http"}


def errors_of(doc: Any, connectors: dict[str, str] | None = CONNECTORS) -> dict[str, Any]:
    with pytest.raises(DefinitionError) as info:
        validate_definition(doc, connectors=connectors)
    return info.value.errors


def doc_with(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "wf", "steps": list(steps), **top}


FILTER = {"id": "f", "type": "filter", "if": "data.ok"}


def test_design_example_validates_with_defaults_filled() -> None:
    doc = doc_with(
        {"id": "completed_only", "type": "filter", "if": "data.status == 'completed'"},
        {"id": "activity", "type": "transform", "mapping": {"member_id": "data.learner.id"}},
        {"id": "save", "type": "upsert", "collection": "activities", "key": ["member_id"],
         "data": "steps.activity"},
        {"id": "notify", "type": "send", "connector": "crm",
         "path": "/members/{{ steps.activity.member_id }}", "body": "steps.activity"},
        {"id": "page", "type": "template", "template": "x"},
        trigger={"endpoint": "lms"},
    )
    out = validate_definition(doc, connectors=CONNECTORS)
    assert out["name"] == "wf" and out["description"] == "" and out["vars"] == {}
    assert out["trigger"] == {"endpoint": "lms"}
    save, notify, page = out["steps"][2:]
    assert save["connector"] == "records" and save["type"] == "upsert"
    assert notify["method"] == "POST" and notify["headers"] == {} and notify["path"].startswith("/")
    assert page["format"] == "text"
    assert validate_definition(out, connectors=CONNECTORS) == out  # normalizing is stable


def test_missing_trigger_means_manual_and_upsert_data_defaults() -> None:
    out = validate_definition(
        doc_with({"id": "s", "type": "insert", "collection": "c", "key": "id"})
    )
    assert out["trigger"] == {"manual": True}
    assert out["steps"][0]["data"] == "data"


def test_missing_and_invalid_name() -> None:
    assert "name" in errors_of({"steps": [FILTER]})["name"]
    assert "name" in errors_of({"name": "has space", "steps": [FILTER]})["name"]


def test_not_an_object() -> None:
    assert errors_of(["x"]) == {"definition": {"definition": ["Must be an object."]}}


def test_unknown_top_level_field() -> None:
    assert errors_of(doc_with(FILTER, colour="red"))["colour"] == {"colour": ["Unknown field."]}


def test_steps_missing_empty_or_not_a_list() -> None:
    assert "steps" in errors_of({"name": "wf"})["steps"]
    assert errors_of({"name": "wf", "steps": []})["steps"]["steps"] == ["Give at least one step."]
    assert errors_of({"name": "wf", "steps": {"a": 1}})["steps"]["steps"] == ["Must be a list."]


def test_too_many_steps() -> None:
    steps = [{"id": f"s{i}", "type": "filter", "if": "data"} for i in range(MAX_STEPS + 1)]
    assert "At most 50 steps" in errors_of(doc_with(*steps))["steps"]["steps"][0]


def test_unknown_step_type() -> None:
    errors = errors_of(doc_with({"id": "x", "type": "teleport", "when": "a["}))
    assert "Unknown step type 'teleport'" in errors["steps.x"]["type"][0]
    assert "bad jmespath" in errors["steps.x"]["when"][0]  # shared fields still checked


def test_bad_jmespath() -> None:
    errors = errors_of(doc_with({"id": "f", "type": "filter", "if": "data.[x"}))
    assert "bad jmespath" in errors["steps.f"]["if"][0]


def test_bad_jmespath_in_a_mapping_names_the_entry() -> None:
    errors = errors_of(doc_with({"id": "t", "type": "transform", "mapping": {"a": "nope(x)"}}))
    assert "unknown function" in errors["steps.t"]["mapping.a"][0]


def test_bad_template() -> None:
    errors = errors_of(doc_with({"id": "t", "type": "template", "template": "{% if %}"}))
    assert "bad template" in errors["steps.t"]["template"][0]
    errors = errors_of(doc_with({"id": "s", "type": "send", "url": "http://x", "headers":
                                 {"X-A": "{{ a "}}))
    assert "bad template" in errors["steps.s"]["headers.X-A"][0]


def test_duplicate_step_ids() -> None:
    errors = errors_of(doc_with(FILTER, FILTER))
    assert errors["steps.f"]["id"] == ["Duplicate step id 'f' (first at index 0)."]


def test_missing_or_bad_id_is_named_by_index() -> None:
    errors = errors_of(doc_with(FILTER, {"type": "filter", "if": "a"}, {**FILTER, "id": "1x"}))
    assert errors["steps.1"]["id"] == ["Missing data for required field."]
    assert errors["steps.2"]["id"] == ["Not a valid id."]


def test_step_that_is_not_an_object() -> None:
    assert errors_of(doc_with(FILTER, "filter"))["steps.1"] == {"step": ["Must be an object."]}


def test_reference_to_a_later_step() -> None:
    errors = errors_of(doc_with(
        {"id": "a", "type": "transform", "expression": "steps.b"},
        {"id": "b", "type": "transform", "expression": "data"},
    ))
    assert errors["steps.a"]["expression"] == ["References steps.b, which runs later."]


def test_reference_to_an_unknown_step_or_itself() -> None:
    errors = errors_of(doc_with(
        {"id": "a", "type": "send", "url": "http://x/{{ steps.ghost.id }}", "body": "steps.a"},
    ))
    assert errors["steps.a"]["url"] == ["References steps.ghost, which does not exist."]
    assert errors["steps.a"]["body"] == ["References steps.a, which is this step itself."]


def test_unknown_connector() -> None:
    errors = errors_of(doc_with({"id": "s", "type": "send", "connector": "erp"}))
    assert errors["steps.s"]["connector"] == ["Unknown connector 'erp' (known: crm, records)."]


def test_without_a_connector_map_names_are_not_checked() -> None:
    validate_definition(doc_with({"id": "s", "type": "send", "connector": "erp"}))


def test_connector_of_the_wrong_kind() -> None:
    errors = errors_of(doc_with(
        {"id": "s", "type": "send", "connector": "records"},
        {"id": "u", "type": "upsert", "connector": "crm", "collection": "c", "key": "id"},
    ))
    assert errors["steps.s"]["connector"] == ["Connector 'records' is records; send needs http."]
    upsert_needs = "Connector 'crm' is http; upsert needs records or sql."
    assert errors["steps.u"]["connector"] == [upsert_needs]


def test_wrong_config_shape() -> None:
    errors = errors_of(doc_with(
        {"id": "u", "type": "upsert", "key": [], "collection": "Bad Name", "colour": 1},
        {"id": "t", "type": "template", "template": "x", "format": "xml"},
        {"id": "s", "type": "send", "connector": "crm", "url": "http://x", "method": "FETCH"},
        {"id": "x", "type": "transform", "expression": "a", "mapping": {"b": "b"}},
    ))
    assert errors["steps.u"]["key"] == ["Must be a field name or a non-empty list of field names."]
    assert errors["steps.u"]["collection"] == ["Not a valid collection name."]
    assert errors["steps.u"]["colour"] == ["Unknown field."]
    assert "format" in errors["steps.t"]
    assert errors["steps.s"]["connector"] == ["Give connector or url (exactly one)."]
    assert "method" in errors["steps.s"]
    assert errors["steps.x"]["mapping"] == ["Use expression or mapping, not both."]


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ("lms", "trigger"),
        ({}, "trigger"),
        ({"endpoint": "a", "poller": "b"}, "trigger"),
        ({"webhook": "a"}, "webhook"),
        ({"endpoint": ""}, "endpoint"),
        ({"endpoint": ["a", 3]}, "endpoint"),
        ({"event_type": 5}, "event_type"),
        ({"manual": "yes"}, "manual"),
        ({"schedule": {"cron": "every day"}}, "schedule.cron"),
        ({"schedule": "0 2 * * *"}, "schedule"),
        ({"schedule": {"cron": "0 2 * * *", "tz": "UTC"}}, "schedule"),
        ({"schedule": {"cron": "0 2 * * * 5"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 2 * * *", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
        ({"schedule": {"interval_seconds": 4}}, "schedule.interval_seconds"),
        ({"schedule": {"interval_seconds": "60"}}, "schedule.interval_seconds"),
        ({"schedule": {"interval_seconds": 60, "cron": "@daily"}}, "schedule"),
    ],
)
def test_bad_trigger(trigger: Any, field: str) -> None:
    assert field in errors_of(doc_with(FILTER, trigger=trigger))["trigger"]


@pytest.mark.parametrize(
    "trigger",
    [
        {"endpoint": ["a", "b"]},
        {"event_type": "record.created"},
        {"poller": "courses"},
        {"schedule": {"cron": "0 2 * * 1-5"}},
        {"schedule": {"cron": "@daily"}},
        {"schedule": {"cron": "0 2 * * *", "timezone": "America/Toronto"}},
        {"schedule": {"interval_seconds": 600}},
        {"manual": True},
    ],
)
def test_good_trigger(trigger: dict[str, Any]) -> None:
    assert validate_definition(doc_with(FILTER, trigger=trigger))["trigger"] == trigger


def test_all_problems_are_reported_at_once() -> None:
    errors = errors_of({
        "name": "",
        "trigger": {"nope": 1},
        "steps": [{"id": "a", "type": "filter"}, {"id": "b", "type": "warp"}],
    })
    assert {"name", "trigger", "steps.a", "steps.b"} <= errors.keys()


def test_odd_shapes_are_reported_not_raised() -> None:
    errors = errors_of({"name": "a", "vars": [], "steps": [
        {"id": ["x"], "type": ["y"]},
        {"id": "t", "type": "transform", "mapping": {"a": 1}},
        {"id": "s", "type": "send", "url": 3},
    ]})
    assert errors["vars"] == {"vars": ["Must be an object."]}
    assert "Not a valid string." in errors["steps.0"]["id"]
    assert errors["steps.t"] == {"mapping.a.value": ["Not a valid string."]}
    assert errors["steps.s"] == {"url": ["Not a valid string."]}
