"""What every console page shares: escaping, security headers, no inline code, labels
(``ihook.console``, its templates and static files)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

import ihook.console
from ihook.console.security import HEADERS
from ihook.models import Run
from tests.ihook.console.support import Console, Page

BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
"""Where the database matters: user text stored and read back from each backend."""

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PACKAGE = Path(ihook.console.__file__).parent
PAGES = ("/", "/?fragment=1", "/endpoints", "/workflows", "/subscriptions", "/pollers", "/runs")


@pytest.fixture
def hostile(client, platform, public_dns) -> str:
    """Everything the API lets a user name or describe holds a script; the id of a run
    whose error and step log hold one too."""
    ep = client.post(
        "/api/v1/endpoints", json={"name": "shop", "description": XSS, "auth": {"type": "none"}}
    )
    wf = client.post(
        "/api/v1/workflows",
        json={
            "name": "echo",
            "description": XSS,
            "trigger": {"endpoint": "shop"},
            "steps": [{"id": "copy", "type": "transform", "expression": "data"}],
        },
    )
    sub = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "crm",
            "description": XSS,
            "url": f"https://hooks.example.com/{XSS}",
            "event_types": ["record.*"],
        },
    )
    poller = client.post(
        "/api/v1/pollers",
        json={
            "name": "lms",
            "description": XSS,
            "request": {"url": "https://lms.example.com/x"},
            "interval_seconds": 60,
            "id": "id",
            "event_type": "lms.item",
        },
    )
    for made in (ep, wf, sub, poller):
        assert made.status_code == 201, made.json
    key = ep.json["ingest_url"].rsplit("/", 1)[1]
    run_id = client.raw.post(f"/hooks/{key}", json={"x": XSS}).json["runs"][0]
    step = {"id": "copy", "type": "transform", "status": "failed", "error": XSS, "output": XSS}
    with platform.db.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(status="failed", error=XSS, failed_step=XSS, steps=[step])
        )
    return run_id


@BOTH
def test_user_text_is_escaped_everywhere(ui, hostile):
    for path in (*PAGES, f"/runs/{hostile}", f"/runs?status={XSS}"):
        answer = ui.get(path)
        html = answer.get_data(as_text=True)
        assert XSS not in html, path
        assert "<script>" not in html.replace('<script src="/ui/static/console/console.js"', ""), (
            path
        )
        Page(html).check()
    assert ESCAPED in ui.get("/endpoints").text
    assert ESCAPED in ui.get("/workflows").text
    assert ESCAPED in ui.get("/subscriptions").text
    assert ESCAPED in ui.get("/pollers").text
    assert ui.get(f"/runs/{hostile}").text.count(ESCAPED) >= 3  # error, failed step, step log


def test_every_answer_carries_the_security_headers(app, ui):
    answers = [ui.get(path) for path in PAGES]
    anonymous = Console(app.test_client())
    answers += [
        anonymous.get("/"),  # the redirect to sign in
        anonymous.get("/sign-in"),
        anonymous.sign_in("wrong"),  # 401
        ui.post("/sign-out", csrf="wrong"),  # 400
        ui.get("/runs/run_missing"),  # 404
        ui.get("/static/console/console.css"),
        ui.get("/static/console/console.js"),
    ]
    for answer in answers:
        for name, value in HEADERS.items():
            assert answer.headers.get(name) == value, (answer.request.path, name)
    assert [a.status_code for a in answers[-7:]] == [302, 200, 401, 400, 404, 200, 200]
    assert answers[0].headers["Cache-Control"] == "no-store"
    csp = HEADERS["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


def test_the_static_files_are_served_with_their_types(ui):
    css = ui.get("/static/console/console.css")
    js = ui.get("/static/console/console.js")
    assert css.status_code == js.status_code == 200
    assert css.content_type.startswith("text/css")
    assert "javascript" in js.content_type


def test_no_inline_script_or_style_and_nothing_from_elsewhere():
    sources = sorted((PACKAGE / "templates").rglob("*.html")) + sorted(
        (PACKAGE / "static").rglob("*.*")
    )
    assert len(sources) > 10
    for path in sources:
        text = path.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path  # no inline script
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\bon[a-z]+=", text), path  # no inline event handlers
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text), path
        assert "|safe" not in text.replace(" ", "") and "Markup" not in text, path


def test_pages_have_a_skip_link_landmarks_and_labels(ui, hostile):
    for path in (*PAGES[:1], *PAGES[2:], f"/runs/{hostile}", "/sign-in"):
        html, page = ui.page(path)
        assert '<a class="skip" href="#main">' in html and '<main id="main"' in html
        assert '<html lang="en">' in html and 'name="viewport"' in html
        assert ('<nav aria-label="Main">' in html) == (path != "/sign-in"), path
    html, page = ui.page("/sign-in")
    assert [f["id"] for f in page.fields] == ["username", "password", "token"]
    html, page = ui.page("/runs")
    assert {f["id"] for f in page.fields} == {
        "f-workflow",
        "f-status",
        "f-since",
        "f-until",
        "f-limit",
    }


def test_the_dashboard_chart_is_drawn_on_the_server(ui, client):
    published = client.post("/api/v1/events", json={"type": "demo.ping", "data": {}})
    assert published.status_code in (201, 202), published.json
    html = ui.get("/").text
    svg = html.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count("<rect") == 48 and svg.count("<text") == 4
    hour = datetime.now(UTC).strftime("%H:00")
    assert f"{hour} UTC: 1 events received" in svg
