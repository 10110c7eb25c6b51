"""No request leaves for a private, loopback or reserved place, on any outbound path.

The install keeps outbound requests off private networks (the default) and allows plain
``http`` (so the address, not the scheme, is what gets a request refused). A canary
listener on loopback counts every connection it is offered: each test ends with 0.
The paths: subscriptions (saved, and their "test" call), the ``send`` and ``transfer``
steps (through an ``http`` connector, run by a worker's drain in this process), pollers
(saved, and polled), and redirects.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from ihook import jobs
from ihook.models import Run
from ihook.services.records import SqlRecordStore
from tests.conftest import client_for

ADDRESSES = [
    "127.0.0.1",
    "127.1",
    "0.0.0.0",
    "2130706433",
    "0x7f000001",
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "198.18.0.1",
    "[fd00::1]",
    "[fe80::1]",
    "224.0.0.1",
    "loopback.example.com",  # a host name that resolves to 127.0.0.1
]
"""The hosts every outbound path must refuse (DESIGN.md §8)."""
PUBLIC_IP = "93.184.216.34"


class Canary:
    """Listens on 127.0.0.1 (and ::1 where the machine has it) and counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.sockets[0].getsockname()[1]
        try:
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        except OSError:
            pass  # no IPv6 loopback here
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(s,)) for s in self.sockets]
        for thread in self._threads:
            thread.start()

    def _serve(self, server: socket.socket) -> None:
        server.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for server in self.sockets:
            server.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Answers for ``*.example.com`` names, taken in turn (the last one repeats)."""
    answers: dict[str, list[str]] = {"loopback.example.com": ["127.0.0.1"]}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host in answers:
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (address, port or 0))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return answers


@pytest.fixture
def strict(settings, dns):
    """An API client and platform of an install that keeps requests off private networks."""
    client, platform = client_for(settings, allow_private_networks=False, allow_http=True)
    jobs.use_platform(platform)
    yield client, platform
    jobs.use_platform(None)
    platform.close()


def _url(host: str, port: int, path: str = "/hook") -> str:
    return f"http://{host}:{port}{path}"


def test_subscriptions_to_private_places_are_refused_when_saved(strict, canary):
    client, _ = strict
    for n, host in enumerate(ADDRESSES):
        answer = client.post(
            "/api/v1/subscriptions",
            json={"name": f"s{n}", "url": _url(host, canary.port), "event_types": ["*"]},
        )
        assert answer.status_code == 422, (host, answer.json)
        assert "url" in answer.json["errors"]["json"], (host, answer.json)
    assert client.get("/api/v1/subscriptions").json == []
    assert canary.connections == 0


def test_the_test_call_checks_the_address_again_when_it_sends(strict, canary, dns):
    """DNS answering public when the subscription is saved, then loopback (rebinding)."""
    client, _ = strict
    dns["rebind.example.com"] = [PUBLIC_IP, "127.0.0.1"]
    sub = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "rebind",
            "url": _url("rebind.example.com", canary.port),
            "event_types": ["*"],
        },
    )
    assert sub.status_code == 201, sub.json
    result = client.post(f"/api/v1/subscriptions/{sub.json['id']}/test").json
    assert result["succeeded"] is False and result["status_code"] is None
    assert result["error"].startswith("refused: ") and "127.0.0.1" in result["error"]
    assert canary.connections == 0


def _run_manual(client, platform, name: str, steps: list[dict]) -> Run:
    """Create a manual workflow, run it once and drain the run in this process."""
    created = client.post("/api/v1/workflows", json={"name": name, "steps": steps})
    assert created.status_code == 201, created.json
    started = client.post(f"/api/v1/workflows/{created.json['id']}/runs", json={"data": {}})
    assert started.status_code == 202, started.json
    jobs.drain_runs()
    with platform.db.read() as session:
        return session.get(Run, started.json["runs"][0])


def test_send_and_transfer_steps_refuse_private_places(strict, canary):
    """A connector's URL is refused when saved (odd forms the URL check rejects) or, once
    saved, by the guard when a step sends: the run fails naming the refusal."""
    client, platform = strict
    SqlRecordStore(platform.db).write("members", "m-1", {"id": "m-1"}, mode="upsert")
    saved = []
    for n, host in enumerate(ADDRESSES):
        config = {"base_url": _url(host, canary.port, "")}
        connector = client.post(
            "/api/v1/connectors", json={"name": f"c{n}", "kind": "http", "config": config}
        )
        if connector.status_code == 422:
            assert "config.base_url" in connector.json["errors"]["json"], (host, connector.json)
            continue
        assert connector.status_code == 201, (host, connector.json)
        saved.append(host)
        send = {"id": "out", "type": "send", "connector": f"c{n}", "path": "/x", "body": "data"}
        run = _run_manual(client, platform, f"send{n}", [send])
        assert run.status == "failed" and "private or reserved" in run.error, (host, run.error)
        transfer = {
            "id": "push",
            "type": "transfer",
            "source": {"connector": "records", "collection": "members"},
            "target": {"connector": f"c{n}", "path": "/bulk", "body": "{rows: rows}"},
        }
        run = _run_manual(client, platform, f"transfer{n}", [transfer])
        assert run.status == "failed" and "private or reserved" in run.error, (host, run.error)
    assert len(saved) >= len(ADDRESSES) - 4, saved  # most get as far as the guard
    assert canary.connections == 0


def test_pollers_refuse_private_places_when_saved_and_when_polled(strict, canary, dns):
    client, _ = strict
    for n, host in enumerate(ADDRESSES):
        answer = client.post(
            "/api/v1/pollers",
            json={
                "name": f"p{n}",
                "request": {"url": _url(host, canary.port)},
                "interval_seconds": 60,
                "id": "id",
            },
        )
        assert answer.status_code == 422, (host, answer.json)
    dns["poll.example.com"] = [PUBLIC_IP, "127.0.0.1"]
    poller = client.post(
        "/api/v1/pollers",
        json={
            "name": "rebind",
            "request": {"url": _url("poll.example.com", canary.port)},
            "interval_seconds": 60,
            "id": "id",
            "enabled": False,
        },
    )
    assert poller.status_code == 201, poller.json
    jobs.run_poll(poller.json["id"])  # what a worker does with a poll-now job
    polls = client.get(f"/api/v1/pollers/{poller.json['id']}/polls").json
    assert [poll["status"] for poll in polls] == ["failed"], polls
    assert "private or reserved" in polls[0]["error"], polls
    assert canary.connections == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_x"])
def test_other_schemes_are_refused_everywhere(strict, url):
    client, _ = strict
    sub = client.post("/api/v1/subscriptions", json={"name": "f", "url": url, "event_types": ["*"]})
    assert sub.status_code == 422 and "url" in sub.json["errors"]["json"], sub.json
    config = {"base_url": url}
    connector = client.post(
        "/api/v1/connectors", json={"name": "f", "kind": "http", "config": config}
    )
    assert connector.status_code == 422, connector.json
    poller = client.post(
        "/api/v1/pollers",
        json={"name": "f", "request": {"url": url}, "interval_seconds": 60, "id": "id"},
    )
    assert poller.status_code == 422, poller.json


def test_a_delivery_is_never_redirected(client, platform, httpserver, canary):
    """Even where private places are allowed (a receiver on this machine): a 302 is a
    failed attempt, and the place it points to is never asked."""
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": _url("127.0.0.1", canary.port)}
    )
    sub = client.post(
        "/api/v1/subscriptions",
        json={
            "name": "moved",
            "url": httpserver.url_for("/moved"),
            "event_types": ["*"],
            "environment": "sandbox",  # plain http allowed
        },
    )
    assert sub.status_code == 201, sub.json
    result = client.post(f"/api/v1/subscriptions/{sub.json['id']}/test").json
    assert result["status_code"] == 302 and result["succeeded"] is False, result
    assert result["error"] == "HTTP 302"
    assert canary.connections == 0
