"""The transfer step against a real SQLite file and a real local HTTP receiver."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from connectors import RecordsConnector, SqlConnector, build_connector
from connectors.outbound import OutboundPolicy
from workflows import DefinitionError, Resources, RunResult, validate_definition
from workflows.steps import transfer_io

RunSteps = Callable[..., RunResult]

ROWS = 10_000
KINDS = {"src": "sql", "dst": "sql", "receiver": "http", "api": "http"}


@pytest.fixture(scope="module")
def source_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A read-only SQLite file with ``members``: 10,000 rows, ids 1..10000."""
    url = f"sqlite:///{tmp_path_factory.mktemp('transfer') / 'source.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE members (id INTEGER PRIMARY KEY, email TEXT, active BOOLEAN)")
        )
        conn.execute(
            sa.text("INSERT INTO members VALUES (:id, :email, :active)"),
            [{"id": n, "email": f"M{n}@X.ORG", "active": n % 10 != 0} for n in range(1, ROWS + 1)],
        )
        conn.execute(
            sa.text(
                "CREATE TABLE activities (member_id INTEGER, course TEXT, score INTEGER,"
                " PRIMARY KEY (member_id, course))"
            )
        )
        conn.execute(
            sa.text("INSERT INTO activities VALUES (:m, :c, :s)"),
            [{"m": m, "c": c, "s": m * 10} for m in (3, 1, 2) for c in ("PY", "GO", "JS", "C")],
        )
    engine.dispose()
    return url


@pytest.fixture
def target_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'target.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT)"
            )
        )
    engine.dispose()
    return url


@pytest.fixture
def resources(store: Any, source_url: str, target_url: str, server: HTTPServer) -> Resources:
    """Records, two sql connectors and two http connectors on the local server."""
    policy = OutboundPolicy(allow_private=True)
    return Resources(
        connectors={
            "records": RecordsConnector(store),
            "src": build_connector("sql", {"url": source_url}, policy=policy),
            "dst": build_connector("sql", {"url": target_url}, policy=policy),
            "receiver": build_connector("http", {"base_url": server.url_for("/in")}, policy=policy),
            "api": build_connector("http", {"base_url": server.url_for("/api")}, policy=policy),
        },
        outbound=policy,
    )


class Receiver:
    """Records every row it is sent, honouring ``Idempotency-Key`` like a receiver should.

    ``fail`` maps a chunk index to the statuses to answer on its first arrivals; with
    ``keep`` the rows of a failed request are kept anyway (the answer was lost on the way).
    """

    def __init__(self, fail: dict[int, list[int]] | None = None, *, keep: bool = False):
        self.fail = {index: list(statuses) for index, statuses in (fail or {}).items()}
        self.keep = keep
        self.ids: list[int] = []
        self.keys: list[str] = []
        self.done: set[str] = set()

    def __call__(self, request: Request) -> Response:
        key = request.headers["Idempotency-Key"]
        self.keys.append(key)
        if key in self.done:
            return Response("{}", 200, content_type="application/json")
        statuses = self.fail.get(int(key.rsplit(":", 1)[1]), [])
        status = statuses.pop(0) if statuses else 200
        if status < 400 or self.keep:
            self.ids.extend(row["id"] for row in request.get_json()["contacts"])
            self.done.add(key)
        return Response("{}" if status < 400 else "nope", status)


def push(**extra: Any) -> dict[str, Any]:
    return {
        "id": "push",
        "type": "transfer",
        "source": {"connector": "src", "table": "members"},
        "target": {"connector": "receiver", "path": "/bulk", "body": "{contacts: rows}"},
        "map": "{id: id, email: lower(email)}",
        **extra,
    }


def receive(server: HTTPServer, receiver: Receiver) -> None:
    server.expect_request("/in/bulk", method="POST").respond_with_handler(receiver)


def only(result: RunResult) -> Any:
    assert result.status == "succeeded", result.error
    return result.output


def test_ten_thousand_rows_reach_the_receiver_once_each(
    run_steps: RunSteps, server: HTTPServer
) -> None:
    receiver = Receiver()
    receive(server, receiver)
    started = time.perf_counter()
    out = only(run_steps([push()], run={"id": "run_1"}))
    elapsed = time.perf_counter() - started
    assert out == {"read": ROWS, "written": ROWS, "failed": 0, "chunks": 20, "retried_chunks": 0}
    assert sorted(receiver.ids) == list(range(1, ROWS + 1))
    assert receiver.keys == [f"run_1:push:{n}" for n in range(20)]
    assert elapsed < 10, f"10,000 rows took {elapsed:.1f} s"


@pytest.mark.parametrize("keep", [False, True], ids=["lost-request", "lost-answer"])
def test_a_chunk_answered_503_once_is_retried_in_place(
    run_steps: RunSteps, server: HTTPServer, keep: bool
) -> None:
    receiver = Receiver({6: [503]}, keep=keep)
    receive(server, receiver)
    out = only(run_steps([push()], run={"id": "run_1"}))
    assert out == {"read": ROWS, "written": ROWS, "failed": 0, "chunks": 20, "retried_chunks": 1}
    assert sorted(receiver.ids) == list(range(1, ROWS + 1))
    assert Counter(receiver.keys)["run_1:push:6"] == 2


def test_a_run_retried_after_a_chunk_failed_for_good_delivers_each_row_once(
    run_steps: RunSteps, server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfer_io, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    receiver = Receiver({6: [503] * 4})
    receive(server, receiver)
    first = run_steps([push()], run={"id": "run_1", "attempt": 1})
    assert first.status == "failed" and first.retryable and first.failed_step == "push"
    assert "chunk 6 (rows 3000-3499) failed after 3 retries: RemoteError" in (first.error or "")
    assert "so far read 3500, written 3000, failed 0" in (first.error or "")
    out = only(run_steps([push()], run={"id": "run_1", "attempt": 2}))
    assert out["written"] == ROWS and out["retried_chunks"] == 0
    assert sorted(receiver.ids) == list(range(1, ROWS + 1))


def test_a_chunk_refused_with_400_fails_the_step_naming_it(
    run_steps: RunSteps, server: HTTPServer
) -> None:
    receiver = Receiver({3: [400]})
    receive(server, receiver)
    result = run_steps([push()], run={"id": "run_1"})
    assert result.status == "failed" and not result.retryable
    assert "chunk 3 (rows 1500-1999) failed: ConnectorError: HTTP 400" in (result.error or "")
    assert "so far read 2000, written 1500, failed 0" in (result.error or "")
    assert len(receiver.ids) == 1500 and len(receiver.keys) == 4


def test_on_error_skip_counts_a_refused_chunk_and_goes_on(
    run_steps: RunSteps, server: HTTPServer
) -> None:
    receive(server, Receiver({3: [400]}))
    out = only(run_steps([push(on_error="skip", chunk_size=1000)], run={"id": "run_1"}))
    assert (out["written"], out["failed"], out["chunks"]) == (ROWS - 1000, 1000, 10)
    assert out["errors"] == [
        f"chunk 3: ConnectorError: HTTP 400 from {server.url_for('/in/bulk')}: nope"
    ]


def test_without_a_run_id_no_idempotency_key_is_sent(
    run_steps: RunSteps, server: HTTPServer
) -> None:
    seen: list[str | None] = []

    def handler(request: Request) -> Response:
        seen.append(request.headers.get("Idempotency-Key"))
        return Response("{}", 200)

    server.expect_request("/in/bulk").respond_with_handler(handler)
    step = push(source={"connector": "src", "table": "members", "where": {"active": "`false`"}})
    out = only(run_steps([step]))
    assert out["read"] == ROWS // 10 and out["chunks"] == 2 and seen == [None, None]


# paged HTTP GET -> sql / records


def people(server: HTTPServer, count: int, per_page: int) -> None:
    """``GET /api/people?page=N``: pages of ``{data, links: {next}}`` with absolute links."""

    def handler(request: Request) -> Response:
        page = int(request.args.get("page", "1"))
        start = (page - 1) * per_page
        rows = [
            {"id": n, "email": f"P{n}@X.ORG", "name": f"Person {n}"}
            for n in range(start + 1, min(start + per_page, count) + 1)
        ]
        more = start + per_page < count
        link = server.url_for(f"/api/people?page={page + 1}") if more else None
        return Response(
            json.dumps({"data": rows, "links": {"next": link}}),
            content_type="application/json",
        )

    server.expect_request("/api/people", method="GET").respond_with_handler(handler)


def pull(target: dict[str, Any], **source: Any) -> dict[str, Any]:
    return {
        "id": "pull",
        "type": "transfer",
        "source": {"connector": "api", "path": "/people", "items": "data", **source},
        "target": target,
        "map": "{id: id, email: lower(email), name: name}",
        "chunk_size": 50,
    }


def test_paged_get_to_sql_upsert_twice_adds_no_rows(
    run_steps: RunSteps, server: HTTPServer, resources: Resources
) -> None:
    people(server, 120, 40)
    step = pull({"connector": "dst", "table": "contacts", "key": "id"}, next="links.next")
    expected = {"read": 120, "written": 120, "failed": 0, "chunks": 3, "retried_chunks": 0}
    assert only(run_steps([step], run={"id": "r1"})) == expected
    assert only(run_steps([step], run={"id": "r2"})) == expected
    dst = resources.connectors["dst"]
    assert isinstance(dst, SqlConnector)
    rows = dst.select("contacts", limit=1000)
    assert [r["id"] for r in rows] == list(range(1, 121))
    assert rows[0] == {"id": 1, "email": "p1@x.org", "name": "Person 1"}


def test_page_number_paging_to_records(run_steps: RunSteps, server: HTTPServer, store: Any) -> None:
    people(server, 95, 20)
    step = pull({"collection": "people", "key": "id"}, page_param="page", page_size=20)
    out = only(run_steps([step]))
    assert (out["read"], out["written"], out["chunks"]) == (95, 95, 2)
    assert len(store.rows) == 95 and store.get("people", "95")["email"] == "p95@x.org"


def test_too_many_pages_fails_the_step(run_steps: RunSteps, server: HTTPServer) -> None:
    people(server, 100, 10)
    step = pull({"collection": "people", "key": "id"}, next="links.next", max_pages=3)
    result = run_steps([step])
    assert result.status == "failed" and "more than max_pages=3 pages" in (result.error or "")


def test_a_next_link_off_the_base_url_is_refused(run_steps: RunSteps, server: HTTPServer) -> None:
    people(server, 100, 10)
    step = pull({"collection": "people", "key": "id"}, next="'http://elsewhere.example/p2'")
    result = run_steps([step])
    assert result.status == "failed" and "is not under" in (result.error or "")


def test_on_error_skip_counts_bad_rows(run_steps: RunSteps, server: HTTPServer) -> None:
    people(server, 30, 30)
    step = pull({"connector": "dst", "table": "contacts", "key": "id"}, next="links.next")
    step["map"] = "{id: id, email: id != `7` && email || null}"
    step["on_error"] = "skip"
    out = only(run_steps([step]))
    assert (out["read"], out["written"], out["failed"]) == (30, 29, 1)
    assert out["errors"][0].startswith("chunk 0: row 6: RecordError: database error: NOT NULL")


def test_max_rows_caps_the_source(run_steps: RunSteps, server: HTTPServer) -> None:
    receive(server, Receiver())
    result = run_steps([push(max_rows=999)], run={"id": "run_1"})
    assert result.status == "failed" and not result.retryable
    assert "more than max_rows=999 rows" in (result.error or "")


def test_keyset_pages_cover_a_composite_key_once(resources: Resources) -> None:
    src = resources.connectors["src"]
    assert isinstance(src, SqlConnector)
    for order in (None, ["member_id", "-course"]):
        seen: list[dict[str, Any]] = []
        after = None
        while page := src.select_page("activities", after=after, order_by=order, limit=5):
            seen += page
            after = page[-1]
        assert seen == src.select("activities", limit=100, order_by=order)
        assert len(seen) == 12


# validation


def step_errors(step: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(DefinitionError) as err:
        validate_definition({"name": "w", "steps": [step]}, connectors=KINDS)
    return err.value.errors[f"steps.{step['id']}"]


def test_validation_names_bad_expressions_and_missing_parts() -> None:
    errors = step_errors(push(map="{id: id"))
    assert list(errors) == ["map"]
    assert "target" in step_errors(
        {"id": "t", "type": "transfer", "source": {"connector": "src", "table": "members"}}
    )
    errors = step_errors(
        push(source={"connector": "src", "table": "members", "where": {"id": "data.[id"}})
    )
    assert list(errors) == ["source.where.id"]


@pytest.mark.parametrize(
    ("change", "field_name", "message"),
    [
        ({"chunk_size": 5001}, "chunk_size", "Must be greater than or equal to 1 and less"),
        ({"foreach": "data.tables"}, "foreach", "foreach is not supported"),
        (
            {"source": {"connector": "records", "collection": "members", "table": "t"}},
            "source.table",
            "Not with a records source.",
        ),
        (
            {"source": {"connector": "src", "table": "members", "items": "data"}},
            "source.items",
            "Not with this source.",
        ),
        ({"target": {"path": "/bulk"}}, "target.connector", "Name the http connector"),
        (
            {"target": {"connector": "dst", "table": "contacts"}},
            "target.key",
            "Required with table or collection.",
        ),
        ({"target": {"connector": "receiver"}}, "target.path", "Give path (http), table"),
    ],
)
def test_validation_of_the_shape(change: dict[str, Any], field_name: str, message: str) -> None:
    errors = step_errors(push(**change))
    assert any(message in m for m in errors[field_name]), errors


def test_connectors_of_the_wrong_kind_or_unknown_are_refused_at_save() -> None:
    kinds = {"receiver": "http", "src": "sql"}
    step = push(
        source={"connector": "receiver", "table": "members"},
        target={"connector": "nowhere", "path": "/bulk"},
    )
    with pytest.raises(DefinitionError) as refused:
        validate_definition({"name": "t", "steps": [step]}, connectors=kinds)
    errors = refused.value.errors["steps.push"]
    assert errors["source.connector"] == ["Connector 'receiver' is http; transfer needs sql."]
    assert errors["target.connector"][0].startswith("Unknown connector 'nowhere'")
