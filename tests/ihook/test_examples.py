"""The files in examples/ work: applied with the real CLI, then driven end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from werkzeug import Request, Response

from tests.conftest import settings_env
from tests.support import completion, wait_for

ROOT = Path(__file__).resolve().parents[2]
LMS = ROOT / "examples" / "lms-course-completion.yaml"
CRM_TOKEN = "crm-example-token"


def ihook(settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ihook", *args],
        env={**settings_env(settings), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lms_example_applies_and_runs_end_to_end(settings, client, httpserver, worker):
    crm = {"CRM_URL": httpserver.url_for("/"), "CRM_TOKEN": CRM_TOKEN}
    applied = ihook(settings, "apply", "-f", str(LMS), **crm)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "connector crm: created",
        "workflow lms-course-completion: created (v1)",
    ]
    again = ihook(settings, "apply", "-f", str(LMS.parent), **crm)
    assert again.stdout.splitlines() == [
        "connector crm: unchanged",
        "workflow lms-course-completion: unchanged (v1)",
    ]

    received = []

    def receive(request: Request) -> Response:
        received.append((request.headers.get("Authorization"), request.get_json()))
        return Response("{}", status=201, content_type="application/json")

    httpserver.expect_request("/members/m-42/activities", method="POST").respond_with_handler(
        receive
    )
    (workflow,) = client.get("/api/v1/workflows").json
    endpoint = client.post(
        "/api/v1/endpoints",
        json={"name": "lms", "auth": {"type": "none"}, "workflows": [workflow["id"]]},
    ).json
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    answer = client.raw.post(path, json=completion("m-42", "CS101"))
    assert answer.status_code == 202, answer.json

    def finished():
        run = client.get(f"/api/v1/runs/{answer.json['runs'][0]}").json
        return run if run["status"] not in ("queued", "running") else None

    run = wait_for(finished)
    assert run["status"] == "succeeded", run
    activity = {"member_id": "m-42", "course": "CS101", "completed_at": "2026-11-20T10:00:00Z"}
    assert client.get("/api/v1/records/activities/m-42:CS101").json["data"] == activity
    assert received == [(f"Bearer {CRM_TOKEN}", activity)]


def test_export_of_the_example_holds_no_secret_and_reapplies(settings, tmp_path):
    crm = {"CRM_URL": "https://crm.example.com", "CRM_TOKEN": CRM_TOKEN}
    assert ihook(settings, "apply", "-f", str(LMS), **crm).returncode == 0
    out = tmp_path / "export.yaml"
    exported = ihook(settings, "export", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert CRM_TOKEN not in out.read_text()
    # no CRM_* variables needed: the export has no references and the secret stays stored
    again = ihook(settings, "apply", "-f", str(out))
    assert again.returncode == 0, again.stderr
    assert all(line.endswith(("unchanged", "unchanged (v1)")) for line in again.stdout.splitlines())


def test_invalid_files_exit_1_with_the_errors_and_dry_run_changes_nothing(settings, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(LMS.read_text().replace("type: filter", "type: filtre"))
    failed = ihook(settings, "apply", "-f", str(broken), CRM_URL="https://x.example", CRM_TOKEN="t")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert f"{broken} #2 (Workflow lms-course-completion):" in failed.stderr
    assert "steps.completed_only:" in failed.stderr
    assert "Unknown step type 'filtre'" in failed.stderr

    crm = {"CRM_URL": "https://crm.example.com", "CRM_TOKEN": CRM_TOKEN}
    planned = ihook(settings, "apply", "--dry-run", "-f", str(LMS), **crm)
    assert planned.returncode == 0, planned.stderr
    assert "workflow lms-course-completion: created (v1)" in planned.stdout
    assert "dry run: nothing was applied" in planned.stdout
    assert "kind:" not in ihook(settings, "export").stdout
