"""Workflows in the console: the YAML editor with pinned problems, live validation, the
step palette, test runs, Enable/Disable and version history (``ihook.console.workflow_pages``)."""

from __future__ import annotations

import html as markup

import pytest
import yaml

from ihook.console.workflow_yaml import PALETTE, palette
from ihook.models import Event, Run
from ihook.services import workflows as service
from tests.ihook.console.support import Page
from workflows.registry import step_class, step_types

ECHO = """\
name: echo
description: Copies the order
trigger:
  manual: true
steps:
  - id: copy
    type: transform
    expression: data
  - id: total
    type: transform
    mapping:
      n: data.order
"""
BAD_STEP_2 = ECHO.replace("n: data.order", "n: data.order[")
"""Step 2 (``total``) with a jmespath that does not compile, on line 12."""


def created(ui, text: str = ECHO, enabled: bool = True) -> str:
    """Create a workflow through the console; its id."""
    form = {"definition": text, **({"enabled": "1"} if enabled else {})}
    answer = ui.post("/workflows/new", form)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    path, _, query = answer.location.partition("?")
    assert path.startswith("/ui/workflows/wf_") and query == "done=created"
    return path.rsplit("/", 1)[1]


def text_of(html: str) -> str:
    """The page's text, tags dropped and whitespace collapsed."""
    return " ".join("".join(Page(html).text).split())


def editor_yaml(html: str) -> str:
    """What the editor's textarea holds."""
    return markup.unescape(
        html.split('name="definition"', 1)[1].split(">", 1)[1].split("</textarea>")[0]
    )


def test_the_list_links_each_workflow_and_new(ui):
    wf_id = created(ui)
    html, _ = ui.page("/workflows")
    assert 'href="/ui/workflows/new">New workflow</a>' in html
    assert f'href="/ui/workflows/{wf_id}">echo</a>' in html


def test_create_through_the_console_stores_version_1(ui, client):
    html, page = ui.page("/workflows/new")
    assert "name: my-workflow" in html and 'id="template-transform"' in html
    assert {"definition", "enabled"} <= {f["name"] for f in page.fields}
    wf_id = created(ui, enabled=False)
    stored = client.get(f"/api/v1/workflows/{wf_id}").json
    assert stored["name"] == "echo" and stored["version"] == 1 and stored["enabled"] is False
    assert stored["steps"][1]["mapping"] == {"n": "data.order"}
    html, _ = ui.page(f"/workflows/{wf_id}?done=created")
    assert "Created: version 1." in html
    assert yaml.safe_load(editor_yaml(html)) == yaml.safe_load(ECHO)
    assert '<input id="enabled" name="enabled" type="checkbox" value="1" aria' in html


def test_a_changed_definition_is_a_new_version_and_the_same_one_is_not(ui, client):
    wf_id = created(ui)
    changed = ECHO.replace("n: data.order", "n: data.total")
    answer = ui.post(f"/workflows/{wf_id}", {"definition": changed, "enabled": "1"})
    assert answer.status_code == 303 and answer.location == f"/ui/workflows/{wf_id}?done=saved"
    html, _ = ui.page(f"/workflows/{wf_id}?done=saved")
    assert "Saved: version 2." in html and "n: data.total" in editor_yaml(html)
    again = ui.post(f"/workflows/{wf_id}", {"definition": editor_yaml(html), "enabled": "1"})
    assert again.location == f"/ui/workflows/{wf_id}?done=unchanged"
    html, _ = ui.page(f"/workflows/{wf_id}?done=unchanged")
    assert "did not change, so it is still version 2" in html
    assert client.get(f"/api/v1/workflows/{wf_id}").json["version"] == 2


def test_saving_what_the_editor_shows_keeps_endpoints_bound_from_their_side(ui, client):
    wf_id = created(ui)
    made = client.post(
        "/api/v1/endpoints", json={"name": "shop", "auth": {"type": "none"}, "workflows": [wf_id]}
    )
    assert made.status_code == 201, made.json
    html, _ = ui.page(f"/workflows/{wf_id}")
    shown = editor_yaml(html)
    assert yaml.safe_load(shown)["trigger"] == {"endpoint": "shop"}
    answer = ui.post(f"/workflows/{wf_id}", {"definition": shown, "enabled": "1"})
    assert answer.location.endswith("done=unchanged")
    stored = client.get(f"/api/v1/workflows/{wf_id}").json
    assert stored["version"] == 1 and stored["endpoints"] == ["shop"]


def test_a_bad_expression_in_step_2_is_pinned_to_step_2_and_its_field(ui, client):
    wf_id = created(ui)
    answer = ui.post(f"/workflows/{wf_id}", {"definition": BAD_STEP_2, "enabled": "1"})
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    Page(html).check()
    text = text_of(html)
    assert "Not saved: 1 problem, listed under the definition." in text
    assert "Step 2 total (transform) · mapping.n: bad jmespath 'data.order['" in text
    assert "(line 12)" in text and 'aria-invalid="true"' in html
    assert editor_yaml(html) == BAD_STEP_2  # the draft is kept for the user to fix
    assert client.get(f"/api/v1/workflows/{wf_id}").json["version"] == 1


def test_problems_of_the_api_schema_and_of_each_step_are_pinned(ui):
    doc = ECHO.replace("name: echo", "name: '-bad'").replace(
        "  - id: total", "  - 7\n  - id: total"
    )
    doc = doc.replace("type: transform\n    mapping", "type: nope\n    mapping")
    answer = ui.post("/workflows/new", {"definition": doc})
    text = text_of(answer.get_data(as_text=True))
    assert answer.status_code == 422
    assert "name: letters, digits" in text and "Step 2 · step: Not a valid mapping type." in text
    answer = ui.post(
        "/workflows/new", {"definition": doc.replace("'-bad'", "ok").replace("  - 7\n", "")}
    )
    text = text_of(answer.get_data(as_text=True))
    assert "Step 2 total (nope) · type: Unknown step type 'nope'" in text


def test_a_yaml_syntax_error_names_its_line_and_column(ui):
    answer = ui.post("/workflows/new", {"definition": "name: echo\nsteps: [\n  - id\n"})
    assert answer.status_code == 422
    text = text_of(answer.get_data(as_text=True))
    assert "Not valid YAML: line 3, column 3: expected the node content" in text
    answer = ui.post("/workflows/new", {"definition": "- just\n- a list\n"})
    assert "Give a YAML mapping: name, trigger, steps" in answer.get_data(as_text=True)


def test_yaml_values_json_lacks_are_refused_and_dates_stay_text(ui, client):
    with_vars = ECHO.replace("steps:", "vars:\n  since: 2024-05-01\n  ratio: .nan\nsteps:")
    answer = ui.post("/workflows/new", {"definition": with_vars})
    assert answer.status_code == 422
    assert "vars.ratio: holds a value JSON cannot" in text_of(answer.get_data(as_text=True))
    wf_id = created(ui, with_vars.replace("  ratio: .nan\n", ""))
    assert client.get(f"/api/v1/workflows/{wf_id}").json["vars"] == {"since": "2024-05-01"}


def test_enabled_belongs_to_the_checkbox_and_names_must_be_free(ui):
    answer = ui.post("/workflows/new", {"definition": "enabled: false\n" + ECHO})
    assert "enabled: Set it with the Enabled checkbox" in text_of(answer.get_data(as_text=True))
    created(ui)
    taken = ui.post("/workflows/new", {"definition": ECHO})
    assert taken.status_code == 422 and "name: already taken" in text_of(
        taken.get_data(as_text=True)
    )


def test_check_without_saving_validates_only(ui, client):
    answer = ui.post("/workflows/new", {"definition": ECHO, "action": "check"})
    assert answer.status_code == 200 and "The definition is valid." in answer.get_data(as_text=True)
    Page(answer.get_data(as_text=True)).check()
    bad = ui.post("/workflows/new", {"definition": BAD_STEP_2, "action": "check"})
    assert bad.status_code == 422 and "Not valid: 1 problem" in text_of(bad.get_data(as_text=True))
    assert client.get("/api/v1/workflows").json == []


def test_the_validate_route_answers_json_for_the_live_check(ui):
    good = ui.post("/workflows/validate", {"definition": ECHO})
    assert good.status_code == 200 and good.json == {"ok": True, "errors": []}
    bad = ui.post("/workflows/validate", {"definition": BAD_STEP_2})
    assert bad.status_code == 422 and bad.json["ok"] is False
    (problem,) = bad.json["errors"]
    assert problem["step"] == 2 and problem["step_name"] == "total"
    assert problem["step_type"] == "transform" and problem["field"] == "mapping.n"
    assert problem["line"] == 12 and problem["message"].startswith("bad jmespath")
    assert problem["text"].startswith("Step 2 `total` (transform) · mapping.n: bad jmespath")
    syntax = ui.post("/workflows/validate", {"definition": "name: [\n"}).json["errors"]
    assert syntax[0]["line"] == 2 and syntax[0]["column"] == 1 and syntax[0]["step"] is None
    trigger = ECHO.replace("manual: true", "schedule: {cron: 'not a cron'}")
    (problem,) = ui.post("/workflows/validate", {"definition": trigger}).json["errors"]
    assert problem["field"].startswith("trigger.schedule") and problem["line"] == 4


def test_each_palette_template_validates_in_a_minimal_workflow(ui, platform):
    built_in = {k for k in step_types() if step_class(k).__module__.startswith("workflows.steps")}
    assert built_in <= set(PALETTE)  # a new built-in step type needs its template
    html, _ = ui.page("/workflows/new")
    for item in (item for item in palette() if item["type"] in built_in):
        assert f'data-template="template-{item["type"]}" hidden>' in html
        steps = yaml.safe_load(item["yaml"])
        doc = {"name": "palette", "trigger": {"manual": True}, "steps": steps}
        with platform.db.read() as session:
            service.validate(session, doc)
        text = f"name: palette\nsteps:\n{item['yaml']}"
        assert ui.post("/workflows/validate", {"definition": text}).json["ok"], item["type"]


def test_a_run_with_a_payload_queues_a_manual_run_and_opens_it(ui, client, platform):
    wf_id = created(ui)
    html, page = ui.page(f"/workflows/{wf_id}")
    assert "Runs the <strong>saved</strong> version 1" in html
    assert {"type", "data"} <= {f["name"] for f in page.fields}
    answer = ui.post(f"/workflows/{wf_id}/runs", {"type": "order.paid", "data": '{"order": 7}'})
    assert answer.status_code == 303 and answer.location.startswith("/ui/runs/run_")
    run_id = answer.location.rsplit("/", 1)[1]
    with platform.db.read() as session:
        run = session.get(Run, run_id)
        event = session.get(Event, run.event_id)
        assert (run.workflow_id, run.workflow_version, run.status) == (wf_id, 1, "queued")
        assert (event.source, event.type, event.data) == ("manual", "order.paid", {"order": 7})
    ui.page(f"/runs/{run_id}")


def test_a_run_with_bad_json_is_refused_next_to_the_field(ui, client):
    wf_id = created(ui)
    for data, reason in (
        ("{order: 7}", "Not valid JSON: Expecting property name"),
        ("NaN", "Not valid JSON: NaN is not a JSON number"),
    ):
        answer = ui.post(f"/workflows/{wf_id}/runs", {"type": "", "data": data})
        assert answer.status_code == 422
        html = answer.get_data(as_text=True)
        Page(html).check()
        assert f'<p class="error" id="run-data-error">{reason}' in html.replace("&#39;", "'")
        assert 'aria-invalid="true" aria-describedby="run-data-help run-data-error"' in html
    assert client.get("/api/v1/runs", query_string={"workflow_id": wf_id}).json == []


def test_enable_and_disable_make_no_new_version(ui, client):
    wf_id = created(ui)
    html, _ = ui.page(f"/workflows/{wf_id}")
    assert ">Disable</button>" in html
    answer = ui.post(f"/workflows/{wf_id}/enabled", {"enabled": "false"})
    assert answer.status_code == 303 and answer.location.endswith("done=disabled")
    stored = client.get(f"/api/v1/workflows/{wf_id}").json
    assert stored["enabled"] is False and stored["version"] == 1
    html, _ = ui.page(f"/workflows/{wf_id}?done=disabled")
    assert "Disabled:" in html and ">Enable</button>" in html
    assert ui.post(f"/workflows/{wf_id}/enabled", {"enabled": "true"}).status_code == 303
    assert client.get(f"/api/v1/workflows/{wf_id}").json["enabled"] is True
    assert ui.post(f"/workflows/{wf_id}/enabled", {"enabled": "maybe"}).status_code == 400


def test_version_history_lists_versions_and_diffs_them(ui):
    wf_id = created(ui)
    for total in ("data.total", "data.sum"):
        changed = ECHO.replace("n: data.order", f"n: {total}")
        assert ui.post(f"/workflows/{wf_id}", {"definition": changed}).status_code == 303
    html, _ = ui.page(f"/workflows/{wf_id}/versions")
    assert html.index("/versions/3") < html.index("/versions/2") < html.index("/versions/1")
    assert "Changes from version 2 to version 3" in html  # the default: the last change
    assert '<span class="diff-del">-      n: data.total\n</span>' in html
    assert '<span class="diff-add">+      n: data.sum\n</span>' in html
    assert '<span class="diff-file">--- version 2\n</span>' in html
    html, _ = ui.page(f"/workflows/{wf_id}/versions?from=1&to=3")
    assert "-      n: data.order" in html and "+      n: data.sum" in html
    assert '<option value="1" selected>version 1</option>' in html
    html, _ = ui.page(f"/workflows/{wf_id}/versions?from=2&to=2")
    assert "No differences" in html
    html, _ = ui.page(f"/workflows/{wf_id}/versions?from=9&to=x", status=400)
    assert "one of the versions: 3, 2, 1" in html or "one of the versions: 1, 2, 3" in html


def test_a_version_page_shows_it_and_edits_from_it(ui, client):
    wf_id = created(ui)
    changed = ECHO.replace("n: data.order", "n: data.total")
    ui.post(f"/workflows/{wf_id}", {"definition": changed})
    html, _ = ui.page(f"/workflows/{wf_id}/versions/1")
    assert "n: data.order" in html and "Edit from this version" in html
    html, _ = ui.page(f"/workflows/{wf_id}?from_version=1")
    assert "Version 1 loaded" in html and "n: data.order" in editor_yaml(html)
    answer = ui.post(f"/workflows/{wf_id}", {"definition": editor_yaml(html), "enabled": "1"})
    assert answer.location.endswith("done=saved")
    assert client.get(f"/api/v1/workflows/{wf_id}").json["version"] == 3
    ui.page(f"/workflows/{wf_id}/versions/9", status=404)


def test_unknown_workflows_are_404_pages(ui):
    for path in ("/workflows/wf_missing", "/workflows/wf_missing/versions", "/workflows/wf_\x00"):
        ui.page(path, status=404)
    assert ui.post("/workflows/wf_missing", {"definition": ECHO}).status_code == 404
    assert ui.post("/workflows/wf_missing/runs", {"data": "{}"}).status_code == 404
    assert ui.post("/workflows/wf_missing/enabled", {"enabled": "true"}).status_code == 404


def test_a_read_only_token_reads_and_is_refused_every_write(ui, browser, client, token):
    wf_id = created(ui)
    browser.sign_in(token("read")["token"])
    html, _ = browser.page(f"/workflows/{wf_id}")
    assert "<pre>name: echo" in html and 'name="definition"' not in html
    assert ">Disable</button>" not in html and "Run with this payload" not in html
    html, _ = browser.page("/workflows")
    assert "New workflow" not in html
    browser.page(f"/workflows/{wf_id}/versions")
    assert browser.get("/workflows/new").status_code == 403
    csrf = browser.csrf("/workflows")
    for path, form in (
        ("/workflows/new", {"definition": ECHO}),
        (f"/workflows/{wf_id}", {"definition": ECHO}),
        ("/workflows/validate", {"definition": ECHO}),
        (f"/workflows/{wf_id}/runs", {"data": "{}"}),
        (f"/workflows/{wf_id}/enabled", {"enabled": "false"}),
        (f"/workflows/{wf_id}/delete", {}),
    ):
        answer = browser.post(path, form, csrf=csrf)
        assert answer.status_code == 403, path
    assert client.get(f"/api/v1/workflows/{wf_id}").json["enabled"] is True


@pytest.mark.parametrize("csrf", [None, "forged"])
def test_writes_without_the_csrf_token_change_nothing(ui, client, csrf):
    wf_id = created(ui)
    for path, form in (
        ("/workflows/new", {"definition": ECHO.replace("echo", "other")}),
        (f"/workflows/{wf_id}", {"definition": BAD_STEP_2}),
        ("/workflows/validate", {"definition": ECHO}),
        (f"/workflows/{wf_id}/runs", {"data": "{}"}),
        (f"/workflows/{wf_id}/enabled", {"enabled": "false"}),
        (f"/workflows/{wf_id}/delete", {}),
    ):
        answer = ui.post(path, form, csrf=csrf)
        assert answer.status_code == 400 and "form was out of date" in answer.text, path
    assert [w["name"] for w in client.get("/api/v1/workflows").json] == ["echo"]
    assert client.get(f"/api/v1/workflows/{wf_id}").json["enabled"] is True


def test_delete_removes_the_workflow_with_its_versions_and_runs(ui, client, platform):
    wf_id = created(ui)
    ui.post(f"/workflows/{wf_id}", {"definition": ECHO.replace("copy", "copied"), "enabled": "1"})
    run = ui.post(f"/workflows/{wf_id}/runs", {"type": "manual.test", "data": "{}"})
    assert run.status_code == 303
    html, _ = ui.page(f"/workflows/{wf_id}")
    assert "Delete workflow echo with all its versions and runs?" in html
    gone = ui.post(f"/workflows/{wf_id}/delete")
    assert gone.status_code == 303 and gone.location.endswith("/ui/workflows?deleted=1")
    assert client.get(f"/api/v1/workflows/{wf_id}").status_code == 404
    assert client.get(f"/api/v1/runs?workflow_id={wf_id}").json == []
    html, _ = ui.page("/workflows?deleted=1")
    assert "The workflow is deleted" in html
    assert ui.post(f"/workflows/{wf_id}/delete").status_code == 404
