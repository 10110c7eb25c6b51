"""``ihook up``: the quick start's one command brings up a working ihook by itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support import free_port, wait_for

pytestmark = pytest.mark.slow


def test_up_starts_redis_api_worker_scheduler_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("IHOOK_", "REDIS_", "DATABASE_"))
    }
    env["IHOOK_DATA_DIR"] = str(tmp_path / "data")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "ihook", "up", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy():
            try:
                body = httpx.get(f"{base}/api/v1/health", timeout=2).json()
            except httpx.HTTPError:
                return None
            return body if body["status"] == "ok" and body["workers"] >= 1 else None

        health = wait_for(healthy, timeout=60, interval=0.3)
        assert health["database"] == "ok" and health["redis"] == "ok"
        printed = (tmp_path / "up.log").read_text()
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        assert f"Bearer {token}" in printed and f"{base}/api/docs" in printed
        assert (tmp_path / "data" / "ihook.db").exists()
        assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0

        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        endpoint = api.post("/api/v1/endpoints", json={"name": "demo", "auth": {"type": "none"}})
        assert endpoint.status_code == 201
        workflow = {
            "name": "demo-flow",
            "trigger": {"endpoint": "demo"},
            "steps": [{"id": "keep", "type": "upsert", "collection": "demo", "key": "id"}],
        }
        assert api.post("/api/v1/workflows", json=workflow).status_code == 201
        answer = httpx.post(endpoint.json()["ingest_url"], json={"id": "a1", "ok": True})
        assert answer.status_code == 202
        record = wait_for(
            lambda: (r := api.get("/api/v1/records/demo/a1")).status_code == 200 and r.json(),
            timeout=30,
        )
        assert record["data"] == {"id": "a1", "ok": True}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    printed = (tmp_path / "up.log").read_text()
    assert proc.returncode == 0, printed[-2000:]
    key = endpoint.json()["ingest_url"].rsplit("/", 1)[1]
    assert "POST /hooks/[redacted]" in printed and key not in printed
    assert not (tmp_path / "data" / "redis.sock").exists()


def test_access_log_lines_carry_no_ingest_key():
    from ihook.accesslog import redact_path

    assert (
        redact_path("POST /hooks/AbC-123_x?y=1 HTTP/1.1") == "POST /hooks/[redacted]?y=1 HTTP/1.1"
    )
    assert redact_path("GET /api/v1/runs HTTP/1.1") == "GET /api/v1/runs HTTP/1.1"
