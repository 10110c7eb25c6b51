"""Outgoing webhooks against receivers that misbehave: what each answer does to a delivery.

Real receivers on 127.0.0.1 (pytest-httpserver, threaded; for the huge answers a plain
socket server in a child process, so that it adds nothing to the memory measured), a
real redis-server, and either real ``ihook worker`` processes or the worker's own
``send_delivery`` run in the test's process (where the test measures the attempt's
memory with ``tracemalloc``). Nothing of ihook is stubbed. The tests prove that:

- a 410 Gone disables the subscription at once, says why, and later events are not sent;
- a 302 is not followed: a failed attempt with its status kept, the ``Location`` never asked;
- a receiver that would take 60 s is cut at ``IHOOK_DELIVERY_TIMEOUT``, the attempt
  failed naming the timeout (the receiver is let go when the test ends);
- a 10 MiB answer and gzip bombs (1 GiB once inflated) are read only up to a cap on their
  *decoded* size: the stored excerpt is bounded, memory stays small, the attempt is quick
  and the receiver's 2xx still counts;
- ``Retry-After`` on a 429 (seconds) or a 503 (an HTTP date) puts the next attempt at
  least that far off, in the database and as the receiver sees it.
"""

from __future__ import annotations

import multiprocessing
import socket
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug import Request, Response

from ihook.models import Delivery
from ihook.platform import Platform
from ihook.sender import EXCERPT_CHARS, send_delivery
from tests.support import subscribe, wait_for

pytestmark = pytest.mark.slow

TIMEOUT = 1
"""``IHOOK_DELIVERY_TIMEOUT`` in these tests, seconds."""
MiB = 1 << 20
GiB = 1 << 30
RETRY_AFTER = 3
"""Seconds a busy receiver asks for; longer than the schedule's 1 s wait it overrides."""
MEMORY_BOUND = 4 * MiB
"""Peak Python memory one attempt may take, whatever the answer's size (10 MiB to 1 GiB)."""
BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def settings(settings):
    """Receivers are plain-http servers on 127.0.0.1; a receiver has 1 s to answer."""
    return settings.replace(allow_http=True, delivery_timeout=TIMEOUT)


class Hit:
    """One request to a receiver: its path, when it came and when its answer went."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.came = time.monotonic()
        self.answered: float | None = None


class Receiver:
    """A threaded HTTP server on 127.0.0.1 whose paths answer as a test says; it notes
    when each request came and when its answer went."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.release = threading.Event()
        """Set when the test ends: a receiver holding a request lets it go."""
        self.seen: list[Hit] = []
        self.lock = threading.Lock()

    def route(self, path: str, answer: Callable[[int], Response]) -> str:
        """Answer requests to ``path`` with ``answer(n)`` (n: 1 for the first, ...); its URL."""

        def handle(request: Request) -> Response:
            hit = Hit(path)
            with self.lock:
                self.seen.append(hit)
                n = len(self.hits(path))
            response = answer(n)
            hit.answered = time.monotonic()
            return response

        self.server.expect_request(path).respond_with_handler(handle)
        return self.server.url_for(path)

    def hits(self, path: str) -> list[Hit]:
        """The requests to ``path``, first first."""
        return [hit for hit in list(self.seen) if hit.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started ``Receiver``; at the end, requests it holds are let go, then it stops."""
    server = Receiver()
    server.server.start()
    yield server
    server.release.set()
    server.server.clear()
    server.server.stop()


def publish(client, n: int = 1) -> str:
    """Publish a ``member.joined`` event; its id."""
    body = {"type": "member.joined", "source": "test", "data": {"n": n}}
    answer = client.post("/api/v1/events", json=body)
    assert answer.status_code == 202, answer.json
    return answer.json["event_id"]


def deliveries_of(client, sub_id: str) -> list[dict]:
    """The subscription's deliveries, newest first."""
    answer = client.get(f"/api/v1/subscriptions/{sub_id}/deliveries")
    assert answer.status_code == 200, answer.json
    return answer.json


def detail(client, delivery_id: str) -> dict:
    """One delivery with its attempt log."""
    answer = client.get(f"/api/v1/deliveries/{delivery_id}")
    assert answer.status_code == 200, answer.json
    return answer.json


def only_delivery(platform: Platform) -> str:
    """The id of the one delivery stored."""
    with platform.db.session() as session:
        (delivery_id,) = session.scalars(select(Delivery.id)).all()
    return delivery_id


def moment(text: str) -> datetime:
    """An API time as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# 410 Gone


@BOTH
def test_a_410_disables_the_subscription_and_later_events_are_not_sent(client, receiver, worker):
    gone_url = receiver.route("/gone", lambda n: Response("gone for good", status=410))
    ok_url = receiver.route("/ok", lambda n: Response("{}", status=200))
    gone = subscribe(client, gone_url, name="gone", error_emails=["ops@example.com"])
    other = subscribe(client, ok_url, name="other")
    publish(client, 1)

    def disabled() -> dict | None:
        shown = client.get(f"/api/v1/subscriptions/{gone['id']}").json
        return shown if not shown["enabled"] else None

    shown = wait_for(disabled, timeout=15)
    assert "410" in shown["disabled_reason"], shown["disabled_reason"]
    (delivery,) = deliveries_of(client, gone["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1  # no retry
    assert delivery["last_status_code"] == 410
    (attempt,) = detail(client, delivery["id"])["attempt_log"]
    assert attempt["status_code"] == 410 and attempt["error"] == "HTTP 410"
    alert = wait_for(lambda: detail(client, delivery["id"])["alert"])  # ops are told
    assert alert.startswith("not sent: 0 smtp connectors"), alert  # (none here to send it)

    publish(client, 2)
    publish(client, 3)
    wait_for(lambda: len(deliveries_of(client, other["id"])) == 3, timeout=15)
    wait_for(lambda: {d["status"] for d in deliveries_of(client, other["id"])} == {"succeeded"})
    answered = receiver.hits("/gone")[0].answered or time.monotonic()
    time.sleep(max(0.0, answered + 1.5 - time.monotonic()))  # past the 1 s retry it would make
    assert len(receiver.hits("/gone")) == 1
    assert len(deliveries_of(client, gone["id"])) == 1  # later events made no delivery


# 302


def test_a_302_is_not_followed_and_is_a_failed_attempt(client, platform, receiver):
    new_home = receiver.route("/new-home", lambda n: Response("{}", status=200))
    moved = receiver.route(
        "/moved", lambda n: Response("moved", status=302, headers={"Location": new_home})
    )
    subscribe(client, moved)
    publish(client)
    delivery_id = only_delivery(platform)
    assert send_delivery(platform, delivery_id) == "attempt 1 failed; retry in 1s"
    shown = detail(client, delivery_id)
    assert shown["status"] == "pending" and shown["last_status_code"] == 302
    (attempt,) = shown["attempt_log"]
    assert attempt["status_code"] == 302 and attempt["error"] == "HTTP 302"
    assert len(receiver.hits("/moved")) == 1
    assert receiver.hits("/new-home") == []  # the Location was never asked


# a receiver that would take 60 s


def test_a_receiver_taking_60_s_is_cut_at_the_delivery_timeout(client, receiver, worker):
    def sixty_seconds(n: int) -> Response:
        receiver.release.wait(60)  # let go when the test ends
        return Response("{}", status=200)

    sub = subscribe(client, receiver.route("/sleepy", sixty_seconds), retry_schedule=[0])
    started = time.monotonic()
    publish(client)

    def failed() -> dict | None:
        found = deliveries_of(client, sub["id"])
        return found[0] if found and found[0]["status"] == "failed" else None

    delivery = wait_for(failed, timeout=15)
    took = time.monotonic() - started
    (attempt,) = detail(client, delivery["id"])["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        f"timed out after {TIMEOUT} s (IHOOK_DELIVERY_TIMEOUT) waiting for the answer"
    )
    assert TIMEOUT * 1000 * 0.9 <= attempt["duration_ms"] < TIMEOUT * 1000 + 500
    assert took < TIMEOUT + 5, took  # publish to failed, a worker's wake-up included
    assert len(receiver.hits("/sleepy")) == 1


# huge answers


def gzip_bomb(size: int = GiB) -> bytes:
    """A gzip member of ``size`` zero bytes, about 1 MiB, built without holding ``size``.

    Each MiB of zeros is deflated after a full flush, so every one but the first comes out
    as the same bytes: the stream is those bytes repeated, with the header and trailer
    (CRC-32 and length) written here.
    """
    zeros = bytes(MiB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH) == block
    end = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(size // MiB):
        crc = zlib.crc32(zeros, crc)
    head = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return head + first + block * (size // MiB - 1) + end + trailer


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """``gzip``: 1 GiB of zeros in about 1 MiB; ``gzip, gzip``: that gzipped again, a few KB."""
    once = gzip_bomb()
    again = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    twice = again.compress(once) + again.flush()
    assert len(once) < 1.1 * MiB and len(twice) < 8 * 1024, (len(once), len(twice))
    return {"gzip": once, "gzip, gzip": twice}


CHUNK = b"x" * 65_536


def huge_answer(kind: str, bombs: dict[str, bytes]) -> tuple[bytes, Callable[[], Iterator[bytes]]]:
    """The head and body of a 200 whose body is huge once decoded: 10 MiB of ``x`` with a
    ``Content-Length`` or chunked, or 1 GiB of zeros in a gzip bomb."""
    if kind in bombs:
        body = bombs[kind]
        head = f"Content-Encoding: {kind}\r\nContent-Length: {len(body)}"
        return head.encode(), lambda: iter([body])
    count = 10 * MiB // len(CHUNK)
    if kind == "10 MiB":
        return f"Content-Length: {10 * MiB}".encode(), lambda: (CHUNK for _ in range(count))
    framed = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    return b"Transfer-Encoding: chunked", lambda: (framed for _ in range(count))


def serve(listener: socket.socket, head: bytes, body: Callable[[], Iterator[bytes]]) -> None:
    """In a process of its own: answer every request with ``200``, ``head`` and ``body``.

    A process, so that the test's memory measure sees ihook's attempt alone.
    """
    while True:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65_536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n" + head + b"\r\n\r\n")
                for chunk in body():
                    conn.sendall(chunk)
            except OSError:  # ihook closed the connection once it had read enough
                pass


@pytest.fixture
def huge_receiver(request, bombs) -> Iterator[tuple[str, str]]:
    """A receiver in a child process answering with ``request.param``'s huge body; its URL
    and the excerpt ihook should keep of the answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    head, body = huge_answer(request.param, bombs)
    child = multiprocessing.get_context("fork").Process(
        target=serve, args=(listener, head, body), daemon=True
    )
    child.start()
    decoded = "\ufffd" if request.param in bombs else "x"  # NUL is kept as U+FFFD
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/huge", decoded * EXCERPT_CHARS
    child.kill()
    child.join()
    listener.close()


@BOTH
@pytest.mark.parametrize(
    "huge_receiver", ["10 MiB", "10 MiB chunked", "gzip", "gzip, gzip"], indirect=True
)
def test_a_huge_answer_is_stored_capped_on_its_decoded_size(client, platform, huge_receiver):
    url, expected = huge_receiver
    subscribe(client, url)
    publish(client)
    delivery_id = only_delivery(platform)
    tracemalloc.start()
    started = time.monotonic()
    try:
        outcome = send_delivery(platform, delivery_id)
    finally:
        took = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert outcome == "delivered on attempt 1"  # the receiver's 200 counts
    (attempt,) = detail(client, delivery_id)["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["response_excerpt"] == expected  # decoded, cut at 2,000 characters
    assert attempt["duration_ms"] < 500 and took < 1.0, (attempt["duration_ms"], took)
    assert peak < MEMORY_BOUND, f"{peak / MiB:.1f} MiB"


# Retry-After


def busy_then_ok(status: int, retry_after: Callable[[], str]) -> Callable[[int], Response]:
    """The first request gets ``status`` with ``Retry-After``; the others 200."""

    def answer(n: int) -> Response:
        if n == 1:
            return Response("slow down", status=status, headers={"Retry-After": retry_after()})
        return Response("{}", status=200)

    return answer


def pending_after_one_attempt(client, sub_id: str) -> dict:
    """The delivery between its first and second attempt."""

    def between() -> dict | None:
        found = deliveries_of(client, sub_id)
        ready = found and found[0]["status"] == "pending" and found[0]["attempts"] == 1
        return found[0] if ready else None

    return wait_for(between, timeout=15, interval=0.02)


def assert_put_off(client, receiver: Receiver, sub_id: str, status: int, at_least: int) -> None:
    """The first attempt failed with ``status``, naming ``Retry-After``; the second is
    stored, and reaches the receiver, ``at_least`` seconds after the first was answered;
    then the delivery succeeds."""
    pending = pending_after_one_attempt(client, sub_id)
    (first,) = detail(client, pending["id"])["attempt_log"]
    answered_by = moment(first["started_at"]) + timedelta(milliseconds=first["duration_ms"])
    assert moment(pending["next_attempt_at"]) - answered_by >= timedelta(seconds=at_least)
    assert first["status_code"] == status
    assert first["error"].startswith(f"HTTP {status}, Retry-After "), first["error"]
    wait_for(lambda: deliveries_of(client, sub_id)[0]["status"] == "succeeded", timeout=15)
    busy, again = receiver.hits("/busy")
    assert busy.answered is not None and again.came - busy.answered >= at_least


@BOTH
def test_a_429_retry_after_puts_the_next_attempt_off(client, receiver, worker):
    url = receiver.route("/busy", busy_then_ok(429, lambda: str(RETRY_AFTER)))
    sub = subscribe(client, url)
    publish(client)
    assert_put_off(client, receiver, sub["id"], 429, RETRY_AFTER)


def test_a_503_retry_after_as_a_date_puts_the_next_attempt_off(client, receiver, worker):
    def in_three_seconds() -> str:  # whole seconds: from 2 s up to 3 s away
        return format_datetime(datetime.now(UTC) + timedelta(seconds=RETRY_AFTER), usegmt=True)

    sub = subscribe(client, receiver.route("/busy", busy_then_ok(503, in_three_seconds)))
    publish(client)
    assert_put_off(client, receiver, sub["id"], 503, RETRY_AFTER - 1)
