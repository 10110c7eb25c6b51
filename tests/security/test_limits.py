"""Size and rate limits at ``/hooks/{key}``, over real HTTP to a real ``ihook api``.

The body cap must hold whether the client says how long its body is or streams it in
chunks with no ``Content-Length``; a refused request stores nothing.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from ihook.models import Event
from ihook.settings import DEFAULT_MAX_BODY_BYTES
from tests.support import free_port, wait_for


@pytest.fixture
def api(processes) -> str:
    """``ihook api`` (gunicorn, one sync worker) on a free port; its host:port."""
    address = f"127.0.0.1:{free_port()}"
    processes.start("api", "--bind", address, "--workers", "1")

    def answers() -> bool:
        try:
            _request(address, "GET", "/api/v1/health", None, {})
        except OSError:
            return False
        return True

    wait_for(answers, timeout=30)
    return address


def _request(
    address: str, method: str, path: str, body: bytes | Iterator[bytes] | None, headers: dict
) -> tuple[int, dict, dict]:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        raw = response.read()
        return response.status, dict(response.getheaders()), json.loads(raw) if raw else {}
    finally:
        conn.close()


def _endpoint(client, name: str, **extra) -> str:
    created = client.post(
        "/api/v1/endpoints", json={"name": name, "auth": {"type": "none"}, **extra}
    )
    assert created.status_code == 201, created.json
    return "/hooks/" + created.json["ingest_url"].rsplit("/", 1)[1]


def _events(platform) -> int:
    with platform.db.read() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def _json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes."""
    shell = b'{"pad":""}'
    return shell[:-2] + b"x" * (size - len(shell)) + shell[-2:]


JSON = {"content-type": "application/json"}


def test_a_body_over_the_cap_is_413_with_or_without_content_length(client, platform, api):
    path = _endpoint(client, "sized")
    exact = _json_of_size(DEFAULT_MAX_BODY_BYTES)
    over = _json_of_size(DEFAULT_MAX_BODY_BYTES + 1)
    assert len(exact) == DEFAULT_MAX_BODY_BYTES and json.loads(over)
    status, _, answer = _request(api, "POST", path, exact, JSON)
    assert status == 202, answer  # the cap itself is allowed
    assert _events(platform) == 1
    status, _, answer = _request(api, "POST", path, over, JSON)
    assert status == 413 and answer["message"] == f"body larger than {DEFAULT_MAX_BODY_BYTES} bytes"
    # Chunked, no Content-Length: the cap is counted on what arrives.
    pieces = iter([over[i : i + 65536] for i in range(0, len(over), 65536)])
    status, _, answer = _request(api, "POST", path, pieces, JSON)
    assert status == 413, answer
    assert answer["message"] == f"body larger than {DEFAULT_MAX_BODY_BYTES} bytes"
    pieces = iter([exact[i : i + 65536] for i in range(0, len(exact), 65536)])
    status, _, answer = _request(api, "POST", path, pieces, JSON)
    assert status == 202, answer  # a chunked body within the cap is taken whole
    assert _events(platform) == 2


def test_the_rate_limit_answers_429_with_retry_after(client, platform, api):
    path = _endpoint(client, "limited", rate_limit={"requests": 5, "per_seconds": 60})
    statuses = []
    for n in range(5):
        status, _, _ = _request(api, "POST", path, json.dumps({"n": n}).encode(), JSON)
        statuses.append(status)
    assert statuses == [202] * 5
    status, headers, answer = _request(api, "POST", path, b'{"n": 5}', JSON)
    assert status == 429 and answer["message"] == "rate limit exceeded"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert _events(platform) == 5
