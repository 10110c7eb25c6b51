"""The files in examples/ work: applied with the real CLI, then driven end to end."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

from werkzeug import Request, Response

from ihook.models import Workflow
from ihook.scheduler import tick
from tests.conftest import settings_env
from tests.support import completion, wait_for

ROOT = Path(__file__).resolve().parents[2]
LMS = ROOT / "examples" / "lms-course-completion.yaml"
CRM_TOKEN = "crm-example-token"
ATTENDANCE = ROOT / "examples" / "event-attendance.yaml"
RECORD_CHANGE = ROOT / "examples" / "record-change-emit.yaml"
NIGHTLY = ROOT / "examples" / "nightly-order-transfer.yaml"
ERP_TOKEN = "erp-example-token"


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
    again = ihook(settings, "apply", "-f", str(LMS), **crm)
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


def finished_runs(client, run_ids: list[str]) -> list[dict] | None:
    runs = [client.get(f"/api/v1/runs/{run_id}").json for run_id in run_ids]
    return runs if all(r["status"] not in ("queued", "running") for r in runs) else None


def test_event_attendance_example_writes_one_row_per_member_and_session(
    settings, client, worker, tmp_path
):
    db = tmp_path / "events.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TABLE attendance (member_id TEXT, session_id TEXT, checked_in_at TEXT,"
            " PRIMARY KEY (member_id, session_id))"
        )
    applied = ihook(settings, "apply", "-f", str(ATTENDANCE), EVENTS_DB_URL=f"sqlite:///{db}")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "connector events_db: created",
        "workflow event-attendance: created (v1)",
    ]

    (workflow,) = client.get("/api/v1/workflows").json
    endpoint = client.post(
        "/api/v1/endpoints",
        json={"name": "checkin", "auth": {"type": "none"}, "workflows": [workflow["id"]]},
    ).json
    path = "/hooks/" + endpoint["ingest_url"].rsplit("/", 1)[1]
    visit = {"member_id": "m-7", "session_id": "s-1"}
    bodies = [  # the same moment twice, written two ways; then a check-out
        {**visit, "action": "checked_in", "at": "2026-11-20T09:30:00+01:00"},
        {**visit, "action": "checked_in", "at": "2026-11-20T08:30:00Z"},
        {**visit, "action": "checked_out", "at": "2026-11-20T12:00:00Z"},
    ]
    run_ids = []
    for body in bodies:
        answer = client.raw.post(path, json=body)
        assert answer.status_code == 202, answer.json
        run_ids.extend(answer.json["runs"])
    runs = wait_for(lambda: finished_runs(client, run_ids))
    assert [r["status"] for r in runs] == ["succeeded", "succeeded", "skipped"], runs

    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT member_id, session_id, checked_in_at FROM attendance"
        ).fetchall()
    assert rows == [("m-7", "s-1", "2026-11-20T08:30:00.000Z")]


def test_record_change_emit_example_welcomes_a_new_member(settings, client, worker):
    applied = ihook(settings, "apply", "-f", str(RECORD_CHANGE))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "workflow tell-on-new-member: created (v1)",
        "workflow welcome: created (v1)",
    ]
    writer = client.post(
        "/api/v1/workflows",
        json={
            "name": "add-member",
            "trigger": {"manual": True},
            "steps": [{"id": "save", "type": "upsert", "collection": "members", "key": "id"}],
        },
    )
    assert writer.status_code == 201, writer.json
    started = client.post(
        f"/api/v1/workflows/{writer.json['id']}/runs", json={"data": {"id": "m-1", "name": "Ada"}}
    )
    assert started.status_code == 202, started.json

    def welcomed():
        answer = client.get("/api/v1/records/welcomes/m-1")
        return answer.json if answer.status_code == 200 else None

    assert wait_for(welcomed)["data"] == {"member_id": "m-1", "name": "Ada"}


def test_the_whole_examples_directory_applies_together_and_again_unchanged(settings, tmp_path):
    env = {
        "CRM_URL": "https://crm.example.com",
        "CRM_TOKEN": CRM_TOKEN,
        "EVENTS_DB_URL": f"sqlite:///{tmp_path / 'events.db'}",
        "SHOP_DB_URL": f"sqlite:///{tmp_path / 'shop.db'}",
        "ERP_URL": "https://erp.example.com",
        "ERP_TOKEN": ERP_TOKEN,
    }
    first = ihook(settings, "apply", "-f", str(LMS.parent), **env)
    assert first.returncode == 0, first.stderr
    assert sorted(first.stdout.splitlines()) == [
        "connector crm: created",
        "connector erp: created",
        "connector events_db: created",
        "connector shop_db: created",
        "workflow event-attendance: created (v1)",
        "workflow lms-course-completion: created (v1)",
        "workflow nightly-order-transfer: created (v1)",
        "workflow tell-on-new-member: created (v1)",
        "workflow welcome: created (v1)",
    ]
    again = ihook(settings, "apply", "-f", str(LMS.parent), **env)
    assert again.returncode == 0, again.stderr
    assert all(line.endswith(("unchanged", "unchanged (v1)")) for line in again.stdout.splitlines())


def add_orders(db: Path, created: dict[int, datetime]) -> None:
    """Orders by id and creation time (UTC, in the text SQLAlchemy writes and compares with
    on SQLite, so that an order made exactly at 02:00 is exactly on the window's edge)."""
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany(
            "INSERT INTO orders (id, customer_email, total_cents, created_at) VALUES (?, ?, ?, ?)",
            [
                (i, f"c{i}@example.com", 100 * i, t.strftime("%Y-%m-%d %H:%M:%S.%f"))
                for i, t in created.items()
            ],
        )


def test_nightly_order_transfer_sends_each_nights_orders_once(
    settings, client, platform, httpserver, worker, tmp_path
):
    db = tmp_path / "shop.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_email TEXT NOT NULL,"
            " total_cents INTEGER NOT NULL, created_at TIMESTAMP NOT NULL)"
        )
    env = {
        "SHOP_DB_URL": f"sqlite:///{db}",
        "ERP_URL": httpserver.url_for("/"),
        "ERP_TOKEN": ERP_TOKEN,
    }
    applied = ihook(settings, "apply", "-f", str(NIGHTLY), **env)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        "connector shop_db: created",
        "connector erp: created",
        "workflow nightly-order-transfer: created (v1)",
    ]

    received: list[tuple[str | None, str | None, list[dict]]] = []

    def receive(request: Request) -> Response:
        headers = request.headers
        received.append(
            (headers.get("Authorization"), headers.get("Idempotency-Key"), request.json["orders"])
        )
        return Response("{}", status=200, content_type="application/json")

    httpserver.expect_request("/orders/bulk", method="POST").respond_with_handler(receive)

    (workflow,) = client.get("/api/v1/workflows").json
    with platform.db.session() as session:
        since = session.get(Workflow, workflow["id"]).schedule_from
    # The first night the schedule sees: 02:00 UTC after it was applied. Its window is the
    # day before it, (first - 1 day, first]; orders are made up around it.
    first = since.replace(hour=2, minute=0, second=0, microsecond=0)
    first += timedelta(days=1) if first <= since else timedelta()
    # 240 orders over the two days before the first night, 12 minutes apart: #120 is made
    # exactly at the window's start (the night before's), #240 exactly at its end.
    add_orders(
        db, {i: first - timedelta(days=2) + timedelta(minutes=12 * i) for i in range(1, 241)}
    )

    def runs(count: int) -> list[dict] | None:
        found = client.get(f"/api/v1/runs?workflow_id={workflow['id']}").json
        done = [r for r in found if r["status"] not in ("queued", "running")]
        return found if len(found) == count and len(done) == count else None

    tick(platform, first)
    (run,) = wait_for(lambda: runs(1))
    assert run["status"] == "succeeded", run
    assert run["output"] == {
        "read": 120,
        "written": 120,
        "failed": 0,
        "chunks": 2,
        "retried_chunks": 0,
    }
    assert [(auth, key.split(":", 1)[1]) for auth, key, _ in received] == [
        (f"Bearer {ERP_TOKEN}", "push_orders:0"),
        (f"Bearer {ERP_TOKEN}", "push_orders:1"),
    ]
    assert [len(orders) for *_, orders in received] == [100, 20]
    sent = [order for *_, orders in received for order in orders]
    assert [o["order_id"] for o in sent] == list(range(121, 241))
    assert sent[-1] == {
        "order_id": 240,
        "customer": "c240@example.com",
        "total_cents": 24000,
        "created_at": first.strftime("%Y-%m-%dT%H:%M:%S"),
    }

    # The next day: a few new orders, one exactly at the next night's 02:00, one after it.
    second = first + timedelta(days=1)
    later = [second - timedelta(hours=23, minutes=59), second - timedelta(hours=2), second]
    add_orders(
        db, {241: later[0], 242: later[1], 243: later[2], 244: second + timedelta(minutes=1)}
    )
    received.clear()
    tick(platform, second)
    newest, _ = wait_for(lambda: runs(2))
    assert newest["status"] == "succeeded", newest
    assert [(auth, len(orders)) for auth, _, orders in received] == [(f"Bearer {ERP_TOKEN}", 3)]
    assert [o["order_id"] for o in received[0][2]] == [241, 242, 243]

    # The same night again (another scheduler, or a later tick before 02:00): nothing new.
    tick(platform, second)
    tick(platform, second + timedelta(hours=23))
    assert len(client.get(f"/api/v1/runs?workflow_id={workflow['id']}").json) == 2
    assert len(received) == 1
