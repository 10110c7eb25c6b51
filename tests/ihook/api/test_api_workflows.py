"""``/api/v1/workflows``: validated on save, versioned on change, bound to endpoints."""

from __future__ import annotations

import copy
from http import HTTPStatus

import pytest

from tests.support import LMS_WORKFLOW, completion, wait_for

both_backends = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

SHAPE = {
    "name": "shape",
    "steps": [
        {"id": "only_done", "type": "filter", "if": "data.status == 'completed'"},
        {"id": "shape", "type": "transform", "mapping": {"member": "data.learner.external_id"}},
    ],
}


def create(client, definition: dict) -> dict:
    answer = client.post("/api/v1/workflows", json=definition)
    assert answer.status_code == 201, answer.json
    return answer.json


def endpoint(client, name: str = "lms") -> dict:
    answer = client.post("/api/v1/endpoints", json={"name": name, "auth": {"type": "none"}})
    assert answer.status_code == 201, answer.json
    return answer.json


def hook(ep: dict) -> str:
    return "/hooks/" + ep["ingest_url"].rsplit("/", 1)[1]


def errors_of(answer) -> dict:
    """``errors["json"]`` of a 422 in the API's error shape."""
    assert answer.status_code == 422, (answer.status_code, answer.get_data(as_text=True))
    body = answer.json
    assert set(body) <= {"code", "status", "message", "errors"}
    assert body["code"] == 422 and body["status"] == HTTPStatus(422).phrase
    return body["errors"]["json"]


def with_steps(*steps: dict, **extra) -> dict:
    return {"name": "bad", "steps": list(steps), **extra}


@both_backends
def test_create_is_version_1_and_normalized(client):
    body = create(client, SHAPE)
    assert body["id"].startswith("wf_")
    assert body["version"] == 1
    assert body["enabled"] is True
    assert body["name"] == "shape"
    assert body["trigger"] == {"manual": True}
    assert body["description"] == "" and body["vars"] == {}
    assert [s["id"] for s in body["steps"]] == ["only_done", "shape"]
    assert body["steps"][1]["mapping"] == {"member": "data.learner.external_id"}
    assert body["endpoints"] == []

    got = client.get(f"/api/v1/workflows/{body['id']}")
    assert got.status_code == 200
    assert got.json == body
    assert [w["id"] for w in client.get("/api/v1/workflows").json] == [body["id"]]


@both_backends
def test_changed_definition_is_a_new_version_and_old_versions_stay(client):
    first = create(client, SHAPE)
    changed = copy.deepcopy(SHAPE)
    changed["steps"][1]["mapping"]["course"] = "data.course.code"
    url = f"/api/v1/workflows/{first['id']}"

    second = client.put(url, json=changed)
    assert second.status_code == 200, second.json
    assert second.json["version"] == 2
    assert second.json["steps"][1]["mapping"] == {
        "member": "data.learner.external_id",
        "course": "data.course.code",
    }
    assert client.get(url).json["version"] == 2

    v1 = client.get(f"{url}/versions/1")
    assert v1.status_code == 200
    assert v1.json["version"] == 1
    assert v1.json["steps"] == first["steps"]
    v2 = client.get(f"{url}/versions/2").json
    assert v2["steps"] == second.json["steps"]
    missing = client.get(f"{url}/versions/3")
    assert missing.status_code == 404
    assert missing.json["message"] == f"workflow {first['id']} has no version 3"


@both_backends
def test_same_definition_keeps_the_version(client):
    first = create(client, SHAPE)
    url = f"/api/v1/workflows/{first['id']}"
    again = client.put(url, json=SHAPE)
    assert again.status_code == 200
    assert again.json["version"] == 1
    assert again.json["steps"] == first["steps"]
    assert client.get(f"{url}/versions/2").status_code == 404


@both_backends
def test_disabled_workflow_gets_no_runs_from_its_endpoint(client):
    ep = endpoint(client)
    wf = create(client, {**LMS_WORKFLOW, "trigger": {"endpoint": "lms"}})
    url = f"/api/v1/workflows/{wf['id']}"

    on = client.raw.post(hook(ep), json=completion("m-1"))
    assert on.status_code == 202 and len(on.json["runs"]) == 1

    off = client.patch(url, json={"enabled": False})
    assert off.status_code == 200
    assert off.json["enabled"] is False
    assert off.json["version"] == 1  # switching off is not a new version
    accepted = client.raw.post(hook(ep), json=completion("m-2"))
    assert accepted.status_code == 202
    assert accepted.json["runs"] == []
    runs = client.get("/api/v1/runs", query_string={"workflow_id": wf["id"]}).json
    assert [r["id"] for r in runs] == on.json["runs"]

    assert client.patch(url, json={"enabled": True}).json["enabled"] is True
    assert len(client.raw.post(hook(ep), json=completion("m-3")).json["runs"]) == 1


def test_patch_takes_only_enabled(client):
    wf = create(client, SHAPE)
    errors = errors_of(client.patch(f"/api/v1/workflows/{wf['id']}", json={"name": "other"}))
    assert "enabled" in errors and "name" in errors
    assert client.get(f"/api/v1/workflows/{wf['id']}").json["name"] == "shape"


@pytest.mark.parametrize(
    ("definition", "where", "field", "says"),
    [
        (with_steps({"id": "x", "type": "teleport"}), "steps.x", "type", "Unknown step type"),
        (
            with_steps({"id": "f", "type": "filter", "if": "data.[["}),
            "steps.f",
            "if",
            "bad jmespath 'data.[['",
        ),
        (
            with_steps({"id": "t", "type": "template", "template": "Hi {{ data.name "}),
            "steps.t",
            "template",
            "bad template",
        ),
        (
            with_steps(
                {"id": "a", "type": "transform", "expression": "data"},
                {"id": "a", "type": "transform", "expression": "data"},
            ),
            "steps.a",
            "id",
            "Duplicate step id 'a'",
        ),
        (
            with_steps(
                {"id": "a", "type": "transform", "expression": "steps.b"},
                {"id": "b", "type": "transform", "expression": "data"},
            ),
            "steps.a",
            "expression",
            "References steps.b, which runs later",
        ),
        (
            with_steps(
                {
                    "id": "save",
                    "type": "upsert",
                    "connector": "crm",
                    "collection": "c",
                    "key": ["id"],
                    "data": "data",
                }
            ),
            "steps.save",
            "connector",
            "Unknown connector 'crm'",
        ),
    ],
    ids=["type", "jmespath", "template", "duplicate", "later", "connector"],
)
def test_invalid_definition_is_422_naming_step_and_field(client, definition, where, field, says):
    errors = errors_of(client.post("/api/v1/workflows", json=definition))
    assert where in errors, errors
    assert field in errors[where], errors
    assert all(isinstance(m, str) and m for m in errors[where][field])
    assert says in " ".join(errors[where][field])
    assert client.get("/api/v1/workflows").json == []

    # /validate answers the same 422, and saves nothing either
    validated = client.post("/api/v1/workflows/validate", json=definition)
    assert errors_of(validated) == errors
    assert client.get("/api/v1/workflows").json == []


def test_unknown_endpoint_in_trigger_is_422(client):
    endpoint(client, "lms")
    definition = {**SHAPE, "trigger": {"endpoint": "nowhere"}}
    errors = errors_of(client.post("/api/v1/workflows", json=definition))
    assert errors["trigger"]["endpoint"] == ["no endpoint named 'nowhere'"]
    assert errors_of(client.post("/api/v1/workflows/validate", json=definition)) == errors
    assert client.get("/api/v1/workflows").json == []


def test_all_problems_are_listed_at_once(client):
    definition = with_steps(
        {"id": "a", "type": "teleport"},
        {"id": "b", "type": "filter", "if": "[["},
    )
    errors = errors_of(client.post("/api/v1/workflows", json=definition))
    assert set(errors) == {"steps.a", "steps.b"}
    assert "type" in errors["steps.a"] and "if" in errors["steps.b"]


def test_put_is_validated_and_keeps_the_old_version(client):
    wf = create(client, SHAPE)
    url = f"/api/v1/workflows/{wf['id']}"
    bad = copy.deepcopy(SHAPE)
    bad["steps"][0]["if"] = "data.(("
    errors = errors_of(client.put(url, json=bad))
    assert "if" in errors["steps.only_done"]
    kept = client.get(url).json
    assert kept["version"] == 1 and kept["steps"] == wf["steps"]


def test_validate_answers_the_normalized_definition_without_saving(client):
    ep = endpoint(client, "lms")
    definition = {**SHAPE, "trigger": {"endpoint": "lms"}}
    answer = client.post("/api/v1/workflows/validate", json=definition)
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["name"] == "shape"
    assert body["trigger"] == {"endpoint": "lms"}
    assert body["description"] == "" and body["vars"] == {}
    assert [s["id"] for s in body["steps"]] == ["only_done", "shape"]
    assert "id" not in body and "version" not in body
    assert client.get("/api/v1/workflows").json == []
    assert client.get(f"/api/v1/endpoints/{ep['id']}").json["workflows"] == []
    # what validate answers is what create stores
    created = create(client, definition)
    assert created["steps"] == body["steps"]


@both_backends
def test_duplicate_workflow_name_is_409(client):
    create(client, SHAPE)
    dup = client.post("/api/v1/workflows", json=SHAPE)
    assert dup.status_code == 409
    assert dup.json["code"] == 409 and dup.json["status"] == HTTPStatus(409).phrase
    assert dup.json["errors"]["json"] == {"name": ["already taken"]}
    assert "shape" in dup.json["message"]

    other = create(client, {**SHAPE, "name": "other"})
    renamed = client.put(f"/api/v1/workflows/{other['id']}", json=SHAPE)
    assert renamed.status_code == 409
    kept = client.get(f"/api/v1/workflows/{other['id']}").json
    assert kept["name"] == "other" and kept["version"] == 1
    assert len(client.get("/api/v1/workflows").json) == 2


@both_backends
def test_delete_removes_the_workflow_its_versions_and_its_binding(client):
    ep = endpoint(client, "lms")
    wf = create(client, {**SHAPE, "trigger": {"endpoint": "lms"}})
    url = f"/api/v1/workflows/{wf['id']}"
    assert client.get(f"/api/v1/endpoints/{ep['id']}").json["workflows"] == [wf["id"]]

    assert client.delete(url).status_code == 204
    gone = client.get(url)
    assert gone.status_code == 404
    assert gone.json["message"] == f"workflow {wf['id']} not found"
    assert client.get(f"{url}/versions/1").status_code == 404
    assert client.get("/api/v1/workflows").json == []
    assert client.get(f"/api/v1/endpoints/{ep['id']}").json["workflows"] == []
    assert client.raw.post(hook(ep), json=completion()).json["runs"] == []


def test_unknown_workflow_id_is_404(client):
    url = "/api/v1/workflows/wf_missing"
    for answer in (
        client.get(url),
        client.put(url, json=SHAPE),
        client.patch(url, json={"enabled": False}),
        client.delete(url),
        client.get(f"{url}/versions/1"),
    ):
        assert answer.status_code == 404
        assert answer.json["code"] == 404
        assert "wf_missing" in answer.json["message"]


def test_trigger_naming_an_endpoint_twice_binds_it_once(client):
    ep = endpoint(client, "lms")
    answer = client.post(
        "/api/v1/workflows", json={**SHAPE, "trigger": {"endpoint": ["lms", "lms"]}}
    )
    assert answer.status_code in (201, 422), answer.get_data(as_text=True)
    if answer.status_code == 422:
        assert "trigger" in answer.json["errors"]["json"]
    else:
        bound = client.get(f"/api/v1/endpoints/{ep['id']}").json["workflows"]
        assert bound == [answer.json["id"]]


def test_manual_run_executes_the_current_version(client, worker):
    workflow = {
        "name": "manual-one",
        "steps": [{"id": "double", "type": "transform", "mapping": {"twice": "[data.n, data.n]"}}],
    }
    created = client.post("/api/v1/workflows", json=workflow).json
    answer = client.post(f"/api/v1/workflows/{created['id']}/runs", json={"data": {"n": 3}})
    assert answer.status_code == 202
    run_id = answer.json["runs"][0]
    run = wait_for(
        lambda: (r := client.get(f"/api/v1/runs/{run_id}").json)["status"] == "succeeded" and r
    )
    assert run["output"] == {"twice": [3, 3]}
    event = client.get(f"/api/v1/events/{answer.json['event_id']}").json
    assert (event["source"], event["type"], event["data"]) == ("manual", "manual", {"n": 3})


def test_manual_run_needs_a_payload_and_a_workflow(client):
    assert client.post("/api/v1/workflows/wf_nope/runs", json={"data": {}}).status_code == 404
    steps = [{"id": "t", "type": "transform", "expression": "data"}]
    wf = client.post("/api/v1/workflows", json={"name": "m", "steps": steps}).json["id"]
    missing = client.post(f"/api/v1/workflows/{wf}/runs", json={})
    assert missing.status_code == 422
    assert "data" in missing.json["errors"]["json"]


def test_a_queued_run_finishes_on_the_version_it_was_queued_with(client, processes):
    first = [{"id": "say", "type": "transform", "expression": "'v1'"}]
    wf = client.post("/api/v1/workflows", json={"name": "versioned", "steps": first}).json["id"]
    queued = client.post(f"/api/v1/workflows/{wf}/runs", json={"data": {}}).json["runs"][0]
    second = [{"id": "say", "type": "transform", "expression": "'v2'"}]
    assert (
        client.put(f"/api/v1/workflows/{wf}", json={"name": "versioned", "steps": second}).json[
            "version"
        ]
        == 2
    )
    later = client.post(f"/api/v1/workflows/{wf}/runs", json={"data": {}}).json["runs"][0]
    processes.start("worker")  # only now does anything execute

    def finished(run_id):
        run = client.get(f"/api/v1/runs/{run_id}").json
        return run if run["status"] == "succeeded" else None

    old, new = wait_for(lambda: finished(queued)), wait_for(lambda: finished(later))
    assert (old["workflow_version"], old["output"]) == (1, "v1")
    assert (new["workflow_version"], new["output"]) == (2, "v2")
