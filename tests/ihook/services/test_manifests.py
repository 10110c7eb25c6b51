"""Definitions as files: apply is idempotent and all-or-nothing; export round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ihook.errors import Invalid
from ihook.platform import Platform
from ihook.services.connectors import full_config, list_connectors
from ihook.services.endpoints import create_endpoint
from ihook.services.manifests import Action, Change, apply, export, load_documents
from ihook.services.workflows import endpoint_names, list_workflows

ENV = {"CRM_URL": "https://crm.example.com", "CRM_TOKEN": "s3cret-crm-token"}

CONNECTOR = """
kind: Connector
name: crm
type: http
config:
  base_url: ${CRM_URL}
  auth: {type: bearer, token: "${CRM_TOKEN}"}
"""

WORKFLOW = """
kind: Workflow
name: completions
steps:
  - {id: activity, type: transform, mapping: {member_id: data.member}}
  - {id: save, type: upsert, collection: activities, key: member_id, data: steps.activity}
  - id: notify
    type: send
    connector: crm
    path: "/members/{{ steps.activity.member_id }}"
    body: steps.activity
"""


def write(tmp_path: Path, *docs: str, name: str = "defs.yaml") -> Path:
    path = tmp_path / name
    path.write_text("\n---\n".join(docs))
    return path


def run_apply(platform: Platform, path: Path, env: dict[str, str] = ENV) -> list[Change]:
    with platform.db.session() as session:
        return apply(session, platform.vault, load_documents(path), env)


def test_apply_creates_then_reapplying_changes_nothing(platform, tmp_path):
    path = write(tmp_path, CONNECTOR, WORKFLOW)
    assert run_apply(platform, path) == [
        Change("connector", "crm", Action.CREATED),
        Change("workflow", "completions", Action.CREATED, 1),
    ]
    again = run_apply(platform, path)
    assert [str(c) for c in again] == [
        "connector crm: unchanged",
        "workflow completions: unchanged (v1)",
    ]


def test_a_changed_step_makes_version_two(platform, tmp_path):
    run_apply(platform, write(tmp_path, CONNECTOR, WORKFLOW))
    changed = WORKFLOW.replace("key: member_id", "key: [member_id]")
    changes = run_apply(platform, write(tmp_path, CONNECTOR, changed))
    assert changes[1] == Change("workflow", "completions", Action.UPDATED, 2)
    assert str(changes[1]) == "workflow completions: updated (v2)"


def test_workflows_may_come_before_the_connectors_they_name(platform, tmp_path):
    changes = run_apply(platform, write(tmp_path, WORKFLOW, CONNECTOR))
    assert [c.kind for c in changes] == ["connector", "workflow"]


def test_enabled_flag_is_applied_without_a_new_version(platform, tmp_path):
    run_apply(platform, write(tmp_path, CONNECTOR, WORKFLOW))
    off = "enabled: false\n" + WORKFLOW
    changes = run_apply(platform, write(tmp_path, CONNECTOR, off))
    assert changes[1] == Change("workflow", "completions", Action.UPDATED, 1)
    with platform.db.session() as session:
        assert list_workflows(session)[0].enabled is False


def test_one_bad_document_of_three_applies_nothing_and_is_named(platform, tmp_path):
    bad = WORKFLOW.replace("name: completions", "name: broken").replace(
        "data: steps.activity}", "data: 'steps.activity['}"
    )
    path = write(tmp_path, CONNECTOR, WORKFLOW, bad)
    with pytest.raises(Invalid) as caught:
        run_apply(platform, path)
    assert "nothing was applied" in caught.value.message
    assert list(caught.value.errors) == [f"{path} #3 (Workflow broken)"]
    problems = caught.value.errors[f"{path} #3 (Workflow broken)"]
    assert list(problems) == ["steps.save"]
    assert list(problems["steps.save"]) == ["data"]
    assert "jmespath" in problems["steps.save"]["data"][0]
    with platform.db.session() as session:
        assert list_connectors(session) == []
        assert list_workflows(session) == []


def test_every_bad_document_is_listed(platform, tmp_path):
    no_kind = "name: x\n"
    unknown_field = CONNECTOR + "colour: red\n"
    path = write(tmp_path, no_kind, unknown_field, WORKFLOW, WORKFLOW)
    with pytest.raises(Invalid) as caught:
        run_apply(platform, path)
    errors = caught.value.errors
    assert errors[f"{path} #1 (x)"] == {"kind": ["Must be one of Connector, Workflow (got None)."]}
    assert errors[f"{path} #2 (Connector crm)"] == {"colour": ["Unknown field."]}
    # without its connector the workflow fails too, and the second copy is a duplicate
    assert "connector" in errors[f"{path} #3 (Workflow completions)"]["steps.notify"]
    assert errors[f"{path} #4 (Workflow completions)"] == {
        "name": [f"Also defined by {path} #3 (Workflow completions)."]
    }


def test_env_references_are_resolved_into_the_encrypted_config(platform, tmp_path):
    run_apply(platform, write(tmp_path, CONNECTOR))
    with platform.db.session() as session:
        row = list_connectors(session)[0]
        assert row.config["base_url"] == "https://crm.example.com"
        assert "token" not in row.config["auth"]
        assert full_config(row, platform.vault)["auth"]["token"] == "s3cret-crm-token"


def test_a_changed_secret_updates_the_connector(platform, tmp_path):
    path = write(tmp_path, CONNECTOR)
    run_apply(platform, path)
    changes = run_apply(platform, path, {**ENV, "CRM_TOKEN": "rotated"})
    assert changes == [Change("connector", "crm", Action.UPDATED)]


def test_a_missing_variable_is_an_error_naming_field_and_variable(platform, tmp_path):
    path = write(tmp_path, CONNECTOR, WORKFLOW)
    with pytest.raises(Invalid) as caught:
        run_apply(platform, path, {"CRM_URL": "https://crm.example.com"})
    assert caught.value.errors[f"{path} #1 (Connector crm)"] == {
        "config.auth.token": ["Environment variable CRM_TOKEN is not set."]
    }
    with platform.db.session() as session:
        assert list_connectors(session) == []


def test_doubled_dollar_keeps_a_literal_reference(platform, tmp_path):
    literal = CONNECTOR.replace('token: "${CRM_TOKEN}"', 'token: "$${CRM_TOKEN}"')
    run_apply(platform, write(tmp_path, literal), {"CRM_URL": "https://crm.example.com"})
    with platform.db.session() as session:
        row = list_connectors(session)[0]
        assert full_config(row, platform.vault)["auth"]["token"] == "${CRM_TOKEN}"


def test_a_directory_is_read_file_by_file_in_order(platform, tmp_path):
    write(tmp_path, WORKFLOW, name="b.yml")
    write(tmp_path, CONNECTOR, name="a.yaml")
    (tmp_path / "notes.txt").write_text("not a definition")
    docs = load_documents(tmp_path)
    assert [(Path(source).name, doc["kind"]) for source, doc in docs] == [
        ("a.yaml", "Connector"),
        ("b.yml", "Workflow"),
    ]


def test_export_has_no_secret_and_reapplies_unchanged(platform, tmp_path):
    run_apply(platform, write(tmp_path, CONNECTOR, WORKFLOW))
    with platform.db.session() as session:
        text = export(session)
    assert "s3cret-crm-token" not in text
    assert "# secret fields, where set, are left out: auth.password, auth.token" in text
    kinds = [doc["kind"] for doc in yaml.safe_load_all(text) if doc]
    assert kinds == ["Connector", "Workflow"]

    exported = tmp_path / "export.yaml"
    exported.write_text(text)
    assert {c.action for c in run_apply(platform, exported, env={})} == {Action.UNCHANGED}
    with platform.db.session() as session:
        row = list_connectors(session)[0]
        assert full_config(row, platform.vault)["auth"]["token"] == "s3cret-crm-token"


def test_a_binding_made_from_the_endpoint_side_survives_export_and_apply(platform, tmp_path):
    run_apply(platform, write(tmp_path, CONNECTOR, WORKFLOW))
    with platform.db.session() as session:
        workflow = list_workflows(session)[0]
        create_endpoint(session, platform.vault, {"name": "lms", "workflows": [workflow.id]})
        text = export(session)
    assert "trigger:\n  endpoint: lms" in text

    exported = tmp_path / "export.yaml"
    exported.write_text(text)
    assert {c.action for c in run_apply(platform, exported, env={})} == {Action.UNCHANGED}
    # and the original file, which has no trigger, leaves the binding alone too
    assert {c.action for c in run_apply(platform, write(tmp_path, CONNECTOR, WORKFLOW))} == {
        Action.UNCHANGED
    }
    with platform.db.session() as session:
        workflow = list_workflows(session)[0]
        assert workflow.version == 1
        assert endpoint_names(session, workflow.id) == ["lms"]
