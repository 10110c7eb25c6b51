"""Fuzzing: the management API against its own OpenAPI document, and the ingress.

Proven here:

1. Schemathesis, over every operation of ``/api/openapi.json`` (in process, through
   WSGI, with the admin token), with data that fits the document, data that breaks it,
   and the ids of real objects: at least 1,000 cases, no server error, every status
   code declared by the operation itself (its ``default`` catch-all does not count),
   every answer of the declared content type, body and headers matching the declared
   schema.
2. ``POST /hooks/{key}`` fuzzed by Hypothesis with random bytes, random JSON, random
   content types and random or hostile headers (huge, non-ASCII, duplicated signature
   headers, odd ``Content-Encoding``) on endpoints of five auth kinds: at least 500
   cases, no server error, every refusal a JSON error with its reason.

Both run on SQLite and on PostgreSQL (which refuses U+0000 and unpaired surrogates: the
failures these tests found) and are deterministic (``derandomize``, no example database),
so CI sees the same cases. No operation is left out: the admin token comes from the
settings, not from a stored token an operation could delete or rotate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from tests.conftest import ADMIN_TOKEN

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True),
]

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = 9
"""Cases per operation and per way of generating them (fitting, breaking, real ids)."""
MIN_API_CASES = 1_000


def status_code_declared(ctx: Any, response: Any, case: Any) -> None:
    """The status is one the operation declares itself, not only through ``default``."""
    declared = [code for code in case.operation.responses.status_codes if code != "default"]
    if str(response.status_code) not in declared:
        raise UndefinedStatusCode(
            operation=case.operation.label,
            status_code=response.status_code,
            defined_status_codes=declared,
            allowed_status_codes=[int(code) for code in declared],
            message=f"Received: {response.status_code}\nDeclared: {', '.join(declared)}",
        )


API_CHECKS = [
    not_a_server_error,
    status_code_declared,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


class ServerCrash(Exception):
    """An exception that escaped a view: a 500 for a real client."""


@dataclass
class Tally:
    """Cases run and failures found, per operation."""

    cases: int = 0
    failures: list[str] = field(default_factory=list)

    def record(self, label: str, case: Any, exc: BaseException) -> None:
        """Keep one line per distinct failure (the first case that showed it)."""
        reason = str(exc).strip().splitlines()
        line = f"{label}: {reason[0] if reason else type(exc).__name__}"
        detail = " | ".join(reason[1:4])
        entry = f"{line} {detail}\n    {case.as_curl_command()}"
        if not any(item.startswith(line) for item in self.failures):
            self.failures.append(entry)


def _seed(client) -> dict[str, str]:
    """One real object of each kind, so cases with real ids reach past the 404."""
    ids: dict[str, str] = {}

    def make(path: str, body: dict) -> dict:
        answer = client.post(path, json=body)
        assert answer.status_code in (200, 201, 202), (path, answer.json)
        return answer.json

    ids["connector_id"] = make(
        "/api/v1/connectors",
        {"name": "crm", "kind": "http", "config": {"base_url": "http://127.0.0.1:9"}},
    )["id"]
    ids["workflow_id"] = make(
        "/api/v1/workflows",
        {
            "name": "echo",
            "trigger": {"manual": True},
            "steps": [{"id": "copy", "type": "transform", "expression": "data"}],
        },
    )["id"]
    ids["version"] = "1"
    ids["endpoint_id"] = make("/api/v1/endpoints", {"name": "lms", "auth": {"type": "none"}})["id"]
    make(
        "/api/v1/event-types",
        {"name": "course.completed", "schema": {"type": "object"}},
    )
    ids["name"] = "course.completed"
    ids["sub_id"] = make(
        "/api/v1/subscriptions",
        {
            "name": "crm",
            "url": "http://127.0.0.1:9/hook",
            "event_types": ["*"],
            "environment": "sandbox",
        },
    )["id"]
    event = make(
        "/api/v1/events",
        {"type": "course.completed", "data": {"n": 1}, "environment": "sandbox"},
    )
    ids["event_id"] = event["event_id"]
    run = make(f"/api/v1/workflows/{ids['workflow_id']}/runs", {"data": {"n": 1}})
    ids["run_id"] = run["runs"][0]
    deliveries = client.get(f"/api/v1/subscriptions/{ids['sub_id']}/deliveries").json
    ids["delivery_id"] = deliveries[0]["id"]
    ids["poller_id"] = make(
        "/api/v1/pollers",
        {
            "name": "feed",
            "request": {"url": "http://127.0.0.1:9/items"},
            "interval_seconds": 60,
            "id": "id",
        },
    )["id"]
    return ids


def _operations(schema) -> list:
    """Every operation, deletes last so the real objects live while the others run."""
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: op.method.upper() == "DELETE")


def _strategies(operation, ids: dict[str, str]) -> Iterator[tuple[str, Any, dict]]:
    """Fitting data, breaking data, fitting data on real ids, and no token at all.

    Each comes with the headers it is sent with.
    """
    yield "positive", operation.as_strategy(GenerationMode.POSITIVE, headers=AUTH), AUTH
    yield "negative", operation.as_strategy(GenerationMode.NEGATIVE, headers=AUTH), AUTH
    names = [p.name for p in operation.path_parameters]
    if names and all(name in ids for name in names):
        real = {name: ids[name] for name in names}
        strategy = operation.as_strategy(
            GenerationMode.POSITIVE, headers=AUTH, path_parameters=real
        )
        yield "real ids", strategy, AUTH
    yield "no token", operation.as_strategy(GenerationMode.POSITIVE), {}


def deterministic(cases: int) -> settings:
    """Hypothesis settings for CI: ``cases`` examples, the same ones every run, no deadline."""
    return settings(
        max_examples=cases,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def _run(strategy, check: Callable[[Any], None]) -> None:
    """Run ``check`` over ``EXAMPLES`` deterministic cases of ``strategy``.

    An operation with nothing to break (no parameters, no body) has no negative cases:
    Hypothesis says so with ``Unsatisfiable``, and the count shows what did run.
    """

    @deterministic(EXAMPLES)
    @given(strategy)
    def each(case) -> None:
        check(case)

    try:
        each()
    except Unsatisfiable:
        pass


def test_the_api_conforms_to_its_openapi_document(app, client):
    ids = _seed(client)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    tally = Tally()
    started = time.monotonic()
    operations = _operations(schema)
    for operation in operations:
        for mode, strategy, headers in _strategies(operation, ids):
            label = f"{operation.label} [{mode}]"

            def check(case, label=label, headers=headers) -> None:
                tally.cases += 1
                try:
                    case.call_and_validate(headers=headers, checks=API_CHECKS)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        tally.record(label, case, failure)
                except (AssertionError, Failure) as exc:
                    tally.record(label, case, exc)
                except Exception as exc:  # the test client re-raises what the view raised
                    tally.record(label, case, ServerCrash(f"{type(exc).__name__}: {exc}"))

            _run(strategy, check)
    elapsed = time.monotonic() - started
    print(f"{tally.cases} cases over {len(operations)} operations in {elapsed:.1f} s")
    assert not tally.failures, "\n".join(tally.failures)
    assert tally.cases >= MIN_API_CASES, tally.cases


# --- Part 2: the ingress ------------------------------------------------------------

INGRESS_CASES = 600
MIN_INGRESS_CASES = 500
INGRESS_STATUSES = {200, 202, 400, 401, 404, 413, 415, 422, 429}
"""What ``POST /hooks/{key}`` may answer (DESIGN.md §3) while its database is up."""
ENDPOINTS = {
    "none": {"auth": {"type": "none"}, "event_type": "data.type", "dedupe": "data.id"},
    "schema": {
        "auth": {"type": "none"},
        "schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    },
    "hmac": {"auth": {"type": "hmac", "scheme": "standard-webhooks"}},
    "github": {"auth": {"type": "hmac", "scheme": "github", "secret": "gh-secret-0123"}},
    "basic": {"auth": {"type": "basic", "username": "shop", "secret": "basic-pass-0123"}},
    "bearer": {"auth": {"type": "bearer", "secret": "bearer-token-0123"}},
    "header": {"auth": {"type": "header", "header": "X-Api-Key", "secret": "api-key-0123"}},
}
"""One endpoint per auth kind (and one with a JSON Schema), by name."""


@dataclass
class Hook:
    """An endpoint as a sender knows it: its path, auth rule and secret."""

    name: str
    path: str
    auth: dict
    secret: str


def _hooks(client) -> list[Hook]:
    """Create the endpoints of ``ENDPOINTS``; each with what a sender needs."""
    hooks = []
    for name, fields in ENDPOINTS.items():
        answer = client.post("/api/v1/endpoints", json={"name": name, **fields})
        assert answer.status_code == 201, answer.json
        key = answer.json["ingest_url"].rsplit("/", 1)[1]
        secret = answer.json.get("secret") or fields["auth"].get("secret", "")
        hooks.append(Hook(name, f"/hooks/{key}", fields["auth"], secret))
    return hooks


HEADER_TEXT = st.text(
    st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=40
)
"""Header values as a server hands them over: any byte but NUL, CR and LF, as latin-1."""
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=utf-16",
            "APPLICATION/JSON",
            "application/cloudevents+json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "text/plain",
            "application/xml",
            "",
            ";",
            "application/json;;;",
            "*/*",
        ]
    ),
    HEADER_TEXT,
)
ENCODINGS = st.sampled_from(
    ["gzip", "deflate", "br", "identity", "gzip, gzip", "x-unknown", "utf-8", "", "é"]
)
HOSTILE_NAMES = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-signature",
    "authorization",
    "x-api-key",
    "x-hub-signature-256",
    "content-encoding",
    "x-forwarded-for",
    "cookie",
]


def _sign_standard(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """A Standard Webhooks ``v1,<base64>`` signature, computed here, not by ihook."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _credentials(hook: Hook, body: bytes, msg_id: str) -> list[tuple[str, str]]:
    """The headers that pass ``hook``'s auth rule for ``body``."""
    kind = hook.auth["type"]
    if kind == "basic":
        pair = base64.b64encode(f"{hook.auth['username']}:{hook.secret}".encode()).decode()
        return [("Authorization", f"Basic {pair}")]
    if kind == "bearer":
        return [("Authorization", f"Bearer {hook.secret}")]
    if kind == "header":
        return [(hook.auth["header"], hook.secret)]
    if kind == "hmac" and hook.auth["scheme"] == "github":
        digest = hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
        return [("X-Hub-Signature-256", f"sha256={digest}")]
    if kind == "hmac":
        stamp = str(int(time.time()))
        signature = _sign_standard(hook.secret, msg_id, stamp, body)
        return [
            ("webhook-id", msg_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signature),
        ]
    return []


@st.composite
def bodies(draw) -> tuple[bytes, str]:
    """A body and the content type it is sent with (often one that does not fit it)."""
    kind = draw(st.sampled_from(["bytes", "json", "escapes", "form", "multipart", "text"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=300))
    elif kind == "json":
        body = json.dumps(draw(JSON_VALUES), ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass"
        )
    elif kind == "escapes":  # JSON escapes no database stores: NUL, lone surrogates
        escape = draw(st.sampled_from(["\\u0000", "\\ud800", "\\udfff", "\\ud83d", "x"]))
        body = draw(st.sampled_from(['{"%s": 1}', '{"a": "%s"}', '["%s"]', '"%s"'])) % escape
        body = body.encode()
    elif kind == "form":
        pairs = draw(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=4))
        body = urlencode(pairs).encode()
    elif kind == "multipart":
        name, value = draw(st.text(max_size=8)), draw(st.text(max_size=20))
        filename = draw(st.sampled_from(["", '; filename="a.txt"']))
        part = f'--xyz\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n\r\n{value}'
        body = (part + "\r\n--xyz--\r\n").encode("utf-8", "surrogatepass")
    else:
        body = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    return body, draw(CONTENT_TYPES)


@st.composite
def hostile_headers(draw) -> list[tuple[str, str]]:
    """Random and hostile headers: repeated, huge, non-ASCII, odd encodings."""
    headers = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(HOSTILE_NAMES) | st.from_regex(r"\Ax-[a-z0-9-]{1,20}\Z"))
        value = draw(
            HEADER_TEXT
            | ENCODINGS
            | st.sampled_from(["Basic ***", "Basic w6k=", "Bearer ", "v1,AAAA v1,!!", "1e400"])
            | st.integers(1, 200_000).map(lambda n: "v1," + "A" * n)
        )
        headers.append((name, value))
    return headers


@dataclass
class Request:
    """One fuzzed webhook: which endpoint, body, headers, and whether it is signed."""

    hook: int
    body: bytes
    headers: list[tuple[str, str]]
    authentic: bool
    msg_id: str


@st.composite
def requests_(draw) -> Request:
    """A fuzzed webhook for one of the endpoints."""
    body, content_type = draw(bodies())
    headers = draw(hostile_headers())
    if draw(st.integers(0, 3)):
        headers.append(("Content-Type", content_type))
    if draw(st.booleans()):
        headers.append(("Content-Encoding", draw(ENCODINGS)))
    return Request(
        hook=draw(st.integers(0, len(ENDPOINTS) - 1)),
        body=body,
        headers=headers,
        authentic=draw(st.booleans()),
        msg_id=draw(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1)),
    )


def _check_answer(answer, sent: Request) -> str | None:
    """Why the answer to ``sent`` breaks the contract, or None when it keeps it."""
    status = answer.status_code
    if status not in INGRESS_STATUSES:
        return f"status {status}"
    if answer.mimetype != "application/json":
        return f"{status} answered as {answer.mimetype!r}"
    body = answer.get_json(silent=True)
    if not isinstance(body, dict):
        return f"{status} answered with a body that is not a JSON object"
    if status < 300:
        return None if body.get("event_id") else f"{status} without an event_id"
    if body.get("code") != status or not isinstance(body.get("message"), str):
        return f"{status} without code and message: {body}"
    if not body["message"].strip():
        return f"{status} with an empty reason"
    return None


def test_the_ingress_takes_any_request_without_a_server_error(app, client):
    hooks = _hooks(client)
    raw = client.raw
    failures: dict[str, str] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()

    @deterministic(INGRESS_CASES)
    @given(requests_())
    def each(sent: Request) -> None:
        hook = hooks[sent.hook]
        headers = list(sent.headers)
        if sent.authentic:
            headers += _credentials(hook, sent.body, sent.msg_id)
        answer = raw.post(hook.path, data=sent.body, headers=headers)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        problem = _check_answer(answer, sent)
        if problem and problem not in failures:
            failures[problem] = f"{hook.name} {headers!r:.600} {sent.body!r:.300}"

    each()
    cases = sum(statuses.values())
    elapsed = time.monotonic() - started
    print(f"ingress: {cases} cases in {elapsed:.1f} s, statuses {sorted(statuses.items())}")
    assert not failures, "\n".join(f"{k}: {v}" for k, v in failures.items())
    assert cases >= MIN_INGRESS_CASES, cases
    assert statuses.get(202, 0) > 0 and statuses.get(401, 0) > 0, statuses
