"""Outgoing webhooks end to end: real receivers on 127.0.0.1, real workers, real Redis.

Receivers check signatures with the ``standardwebhooks`` package (an independent
implementation); retries run on a compressed schedule; failed deliveries e-mail a real
local SMTP server.
"""

from __future__ import annotations

import json
import threading
import time
from email import message_from_bytes
from email import policy as email_policy

import jsonschema
import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from ihook.models import Delivery, Subscription
from ihook.platform import Platform
from ihook.sender import send_delivery
from ihook.services.event_types import BUILTIN
from tests.support import free_port, subscribe, wait_for


@pytest.fixture
def settings(settings, request):
    # Receivers are plain-http servers on 127.0.0.1. A subscription is disabled after
    # failing for a minute, or for what a test's ``disable_after`` mark says.
    mark = request.node.get_closest_marker("disable_after")
    disable_after = mark.args[0] if mark else 60
    return settings.replace(allow_http=True, disable_after=disable_after, delivery_timeout=5)


class Receiver:
    """Records each request; answers with the statuses it is given, then 200."""

    def __init__(self, httpserver, path: str, statuses: tuple[int, ...] = (), delay: float = 0):
        self.requests: list[tuple[dict[str, str], bytes, float]] = []
        self.statuses = list(statuses)
        self.delay = delay
        self.url = httpserver.url_for(path)
        httpserver.expect_request(path, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        time.sleep(self.delay)
        self.requests.append((dict(request.headers), request.get_data(), time.monotonic()))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(json.dumps({"seen": len(self.requests)}), status=status)


def publish(client, type: str = "member.joined", data=None, **fields) -> str:
    body = {"type": type, "source": "test", "data": data or {"id": "m-1"}, **fields}
    answer = client.post("/api/v1/events", json=body)
    assert answer.status_code == 202, answer.json
    return answer.json["event_id"]


def deliveries_of(client, sub_id: str, **query) -> list[dict]:
    answer = client.get(f"/api/v1/subscriptions/{sub_id}/deliveries", query_string=query)
    assert answer.status_code == 200, answer.json
    return answer.json


def finished(client, sub_id: str, count: int = 1):
    def check():
        found = deliveries_of(client, sub_id)
        done = [d for d in found if d["status"] in ("succeeded", "failed")]
        return found if len(done) >= count else None

    return wait_for(check, timeout=40)


def test_receivers_verify_every_delivery_with_standardwebhooks(client, httpserver, worker):
    receiver = Receiver(httpserver, "/hooks/crm")
    sub = subscribe(client, receiver.url)
    for n in range(3):
        publish(client, data={"id": f"m-{n}", "name": "Zoë"})
    found = finished(client, sub["id"], 3)
    assert {d["status"] for d in found} == {"succeeded"}

    verifier = Webhook(sub["secret"])
    ids = set()
    for headers, body, _ in receiver.requests:
        payload = verifier.verify(body, headers)
        assert payload["type"] == "member.joined" and payload["data"]["name"] == "Zoë"
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("ihook/")
        ids.add(headers["Webhook-Id"])
        changed = body.replace(b"m-", b"x-")
        with pytest.raises(WebhookVerificationError):
            verifier.verify(changed, headers)
    assert ids == {d["id"] for d in found}


def test_500_500_200_is_one_delivery_three_attempts_same_webhook_id(client, httpserver, worker):
    receiver = Receiver(httpserver, "/flaky", statuses=(500, 500))
    sub = subscribe(client, receiver.url)
    publish(client)
    (delivery,) = finished(client, sub["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3

    detail = client.get(f"/api/v1/deliveries/{delivery['id']}").json
    log = detail["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 500, 200]
    assert [a["number"] for a in log] == [1, 2, 3]
    assert log[0]["error"] == "HTTP 500" and log[2]["error"] is None
    assert all(a["url"] == receiver.url and a["duration_ms"] >= 0 for a in log)
    assert log[2]["response_excerpt"] == '{"seen": 3}'
    assert {a["request_headers"]["webhook-id"] for a in log} == {delivery["id"]}
    assert {h["Webhook-Id"] for h, _, _ in receiver.requests} == {delivery["id"]}
    bodies = {body for _, body, _ in receiver.requests}
    assert len(bodies) == 1  # the same bytes every time
    # the 1 s waits of the schedule were kept between attempts
    times = [t for _, _, t in receiver.requests]
    assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 0.9


class Mailbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        parsed = message_from_bytes(envelope.original_content, policy=email_policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


def test_a_receiver_always_down_fails_the_delivery_and_sends_one_email(
    client, worker, mailbox, platform
):
    mail = {
        "host": "127.0.0.1",
        "port": mailbox.port,
        "security": "none",
        "from_address": "ihook@example.com",
        "allow_private": True,
    }
    assert (
        client.post(
            "/api/v1/connectors", json={"name": "alerts", "kind": "smtp", "config": mail}
        ).status_code
        == 201
    )
    down = f"http://127.0.0.1:{free_port()}/nobody-home"
    sub = subscribe(client, down, name="erp", error_emails=["ops@example.com"])
    event_id = publish(client)
    (delivery,) = finished(client, sub["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert "ConnectFailed" in delivery["last_error"]

    wait_for(lambda: mailbox.messages, timeout=10)
    time.sleep(0.5)
    assert len(mailbox.messages) == 1
    recipients, message = mailbox.messages[0]
    assert recipients == ["ops@example.com"]
    text = message.get_content()
    assert "erp" in message["Subject"] and "member.joined" in message["Subject"]
    assert sub["id"] in text and event_id in text and "ConnectFailed" in text
    detail = client.get(f"/api/v1/deliveries/{delivery['id']}").json
    assert detail["alert"] == "sent to ops@example.com"


def test_filters_pick_the_events_a_subscription_gets(client, httpserver, worker):
    receiver = Receiver(httpserver, "/board")
    sub = subscribe(
        client,
        receiver.url,
        event_types=["record.*"],
        filter="data.collection == 'members' && data.data.group == 'board'",
        mapping={"member": "data.key", "name": "data.data.name"},
        fixed_data={"source": "ihook"},
    )
    writer = client.post(
        "/api/v1/workflows",
        json={
            "name": "save",
            "steps": [{"id": "save", "type": "upsert", "collection": "members", "key": "id"}],
        },
    ).json
    for member in (
        {"id": "m-1", "name": "Ada", "group": "board"},
        {"id": "m-2", "name": "Bob", "group": "staff"},
        {"id": "m-3", "name": "Cy", "group": "board"},
    ):
        started = client.post(f"/api/v1/workflows/{writer['id']}/runs", json={"data": member})
        assert started.status_code == 202
    found = finished(client, sub["id"], 2)
    time.sleep(1)  # nothing else trickles in
    assert len(deliveries_of(client, sub["id"])) == 2
    bodies = sorted(json.loads(body)["data"]["member"] for _, body, _ in receiver.requests)
    assert bodies == ["m-1", "m-3"]
    first = json.loads(receiver.requests[0][1])
    assert first["type"] == "record.created"
    assert set(first["data"]) == {"member", "name", "source"} and first["data"]["source"] == "ihook"
    assert {d["event_type"] for d in found} == {"record.created"}


def test_two_subscriptions_on_one_event_type_both_receive_it(client, httpserver, worker):
    dev, prod = Receiver(httpserver, "/dev"), Receiver(httpserver, "/prod")
    a = subscribe(client, dev.url, name="dev", environment="sandbox")
    b = subscribe(client, prod.url, name="prod")
    c = subscribe(client, prod.url, name="prod-copy")
    publish(client, environment="sandbox")
    publish(client)
    assert len(finished(client, a["id"])) == 1
    assert len(finished(client, b["id"])) == 1 and len(finished(client, c["id"])) == 1
    assert len(dev.requests) == 1 and len(prod.requests) == 2


@pytest.fixture
def slow_server():
    """A receiver host of its own that answers requests in parallel."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_slow_receiver_does_not_hold_back_the_others(
    client, httpserver, slow_server, processes, platform
):
    from rq import Worker

    processes.start("worker")
    processes.start("worker")
    wait_for(lambda: Worker.count(connection=platform.redis) == 2)
    slow = Receiver(slow_server, "/slow", delay=2.5)
    fast = Receiver(httpserver, "/fast")
    slow_sub = subscribe(client, slow.url, name="slow", event_types=["slow.*"])
    fast_sub = subscribe(client, fast.url, name="fast", event_types=["fast.*"])
    for n in range(20):
        publish(client, "slow.thing", {"n": n})
    wait_for(lambda: len(slow.requests) >= 1, timeout=10)  # the slow receiver has answered
    for n in range(10):
        publish(client, "fast.thing", {"n": n})
    finished(client, fast_sub["id"], 10)
    # The fast receiver's deliveries went out while the slow backlog was still being
    # worked through: 16 claimed at once (the most per subscription), then one at a time.
    slow_done = [d for d in deliveries_of(client, slow_sub["id"]) if d["status"] == "succeeded"]
    assert len(slow_done) <= 17, len(slow_done)
    assert len(finished(client, slow_sub["id"], 20)) == 20  # and the slow ones all arrive
    assert len(fast.requests) == 10 and len(slow.requests) == 20
    answered = sorted(at for _, _, at in slow.requests)
    assert answered[7] - answered[0] < 1.0  # the first wave went in parallel (8 threads)
    gaps = [b - a for a, b in zip(answered[16:-1], answered[17:], strict=True)]
    assert all(gap > 2.0 for gap in gaps), gaps  # past the 16 claimed: known to be slow


def test_test_call_answers_with_the_receivers_status_and_body(client, httpserver):
    receiver = Receiver(httpserver, "/probe", statuses=(418,))
    sub = subscribe(client, receiver.url)
    answer = client.post(f"/api/v1/subscriptions/{sub['id']}/test")
    assert answer.status_code == 200, answer.json
    result = answer.json
    assert result["succeeded"] is False and result["status_code"] == 418
    assert result["response_excerpt"] == '{"seen": 1}' and result["duration_ms"] > 0
    again = client.post(f"/api/v1/subscriptions/{sub['id']}/test").json
    assert again["succeeded"] is True and again["status_code"] == 200
    payload = Webhook(sub["secret"]).verify(receiver.requests[1][1], receiver.requests[1][0])
    assert payload["type"] == "ihook.test" and payload["data"]["subscription_id"] == sub["id"]
    # a failing test does not count against the subscription
    assert client.get(f"/api/v1/subscriptions/{sub['id']}").json["failing_since"] is None


def test_retry_and_recover_send_failed_deliveries_again(client, httpserver, worker):
    receiver = Receiver(httpserver, "/later", statuses=(500,) * 5)
    sub = subscribe(client, receiver.url, retry_schedule=[0, 0])
    first, _ = publish(client), publish(client)
    found = finished(client, sub["id"], 2)
    assert {d["status"] for d in found} == {"failed"} and {d["attempts"] for d in found} == {2}
    by_event = {d["event_id"]: d for d in found}

    retried = client.post(f"/api/v1/deliveries/{by_event[first]['id']}/retry")
    assert retried.status_code == 202 and retried.json["status"] == "pending"
    conflict = client.post(f"/api/v1/deliveries/{by_event[first]['id']}/retry")
    assert conflict.status_code in (202, 409)

    def attempts(delivery_id: str) -> int:
        return client.get(f"/api/v1/deliveries/{delivery_id}").json["attempts"]

    wait_for(lambda: attempts(by_event[first]["id"]) == 3)  # one more, still a 500
    wait_for(lambda: finished(client, sub["id"], 2))
    # the receiver is fixed: recover re-sends everything that failed since the start
    since = min(d["created_at"] for d in found)
    recovered = client.post(
        f"/api/v1/subscriptions/{sub['id']}/recover", query_string={"since": since}
    )
    assert recovered.status_code == 202
    assert sorted(recovered.json["deliveries"]) == sorted(d["id"] for d in found)
    wait_for(lambda: len(deliveries_of(client, sub["id"], status="succeeded")) == 2)
    assert deliveries_of(client, sub["id"], status="failed") == []


@pytest.mark.disable_after(2)
def test_a_subscription_failing_too_long_is_disabled_and_one_call_reenables_it(
    client, worker, platform
):
    down = f"http://127.0.0.1:{free_port()}/gone"
    sub = subscribe(client, down, retry_schedule=[0, 1, 1, 1, 1])
    publish(client)
    (delivery,) = finished(client, sub["id"])
    # attempt 3 comes at least 2 s after the first (attempt 2 may too, RQ's scheduler keeps
    # whole seconds): that attempt disables the subscription and the ones left are not made
    assert delivery["attempts"] in (2, 3)
    assert delivery["last_error"] == "not sent: the subscription is disabled"
    shown = client.get(f"/api/v1/subscriptions/{sub['id']}").json
    assert shown["enabled"] is False
    assert (
        "failed since" in shown["disabled_reason"] and "ConnectFailed" in shown["disabled_reason"]
    )
    publish(client)  # a disabled subscription gets nothing
    time.sleep(0.5)
    assert len(deliveries_of(client, sub["id"])) == 1

    enabled = client.patch(f"/api/v1/subscriptions/{sub['id']}", json={"enabled": True}).json
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None


def test_the_url_is_checked_again_at_send_time(client, settings, httpserver):
    receiver = Receiver(httpserver, "/inside")
    subscribe(client, receiver.url, retry_schedule=[0])
    publish(client)
    strict = Platform(settings.replace(allow_private_networks=False))
    with strict.db.session() as session:
        (delivery_id,) = session.scalars(select(Delivery.id)).all()
    assert send_delivery(strict, delivery_id) == "failed after 1 attempt(s)"
    strict.close()
    detail = client.get(f"/api/v1/deliveries/{delivery_id}").json
    assert detail["status"] == "failed"
    assert detail["attempt_log"][0]["error"].startswith("refused")
    assert receiver.requests == []


def test_run_outcomes_are_published_to_listening_subscriptions(client, httpserver, worker):
    receiver = Receiver(httpserver, "/runs")
    sub = subscribe(client, receiver.url, event_types=["run.*"])
    flow = client.post(
        "/api/v1/workflows",
        json={
            "name": "copies",
            "steps": [{"id": "copy", "type": "transform", "expression": "data"}],
        },
    ).json
    started = client.post(f"/api/v1/workflows/{flow['id']}/runs", json={"data": {}}).json
    (delivery,) = finished(client, sub["id"])
    assert delivery["event_type"] == "run.succeeded"
    payload = json.loads(receiver.requests[0][1])
    assert payload["data"]["run_id"] == started["runs"][0]
    assert payload["data"]["workflow_name"] == "copies" and payload["data"]["error"] is None
    time.sleep(0.5)  # the run.succeeded event's own delivery started no run, so no new event
    assert len(deliveries_of(client, sub["id"])) == 1

    broken = client.post(
        "/api/v1/workflows",
        json={
            "name": "breaks",
            "steps": [{"id": "change", "type": "update", "collection": "nobody", "key": "id"}],
        },
    ).json
    failed = client.post(f"/api/v1/workflows/{broken['id']}/runs", json={"data": {"id": "x"}}).json
    latest = finished(client, sub["id"], 2)[0]
    assert latest["event_type"] == "run.failed"
    data = json.loads(receiver.requests[1][1])["data"]
    assert data["run_id"] == failed["runs"][0] and data["status"] == "failed"
    assert data["failed_step"] == "change" and "nobody" in data["error"]
    # both meet the built-in types' schemas
    for (_, body, _), type_name in zip(
        receiver.requests, ("run.succeeded", "run.failed"), strict=True
    ):
        jsonschema.validate(json.loads(body)["data"], BUILTIN[type_name][1])


def test_deliveries_are_stored_with_the_event(client, platform):
    """No worker: the delivery waits, stored, for one (the sweeper enqueues lost ones)."""
    subscribe(client, "https://127.0.0.1:8443/hooks?tenant=7")
    publish(client)
    with platform.db.session() as session:
        (delivery,) = session.scalars(select(Delivery)).all()
        sub = session.get(Subscription, delivery.subscription_id)
        assert delivery.status == "pending" and delivery.attempts == 0
        assert delivery.body["type"] == "member.joined" and delivery.body["data"] == {"id": "m-1"}
        assert sub.url == "https://127.0.0.1:8443/hooks?tenant=7"


def test_concurrent_claims_make_one_attempt(client, platform, httpserver):
    receiver = Receiver(httpserver, "/once", delay=0.2)
    subscribe(client, receiver.url)
    publish(client)
    with platform.db.session() as session:
        (delivery_id,) = session.scalars(select(Delivery.id)).all()
    threads = [
        threading.Thread(target=send_delivery, args=(platform, delivery_id)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receiver.requests) == 1


def test_the_sweeper_sends_deliveries_whose_job_redis_lost(client, platform, httpserver, processes):
    from ihook.sweeper import sweep_once

    receiver = Receiver(httpserver, "/lost")
    sub = subscribe(client, receiver.url)
    publish(client)
    platform.redis.flushall()  # the job is gone; the delivery waits in the database
    time.sleep(1.2)  # past the sweep grace (1 s in tests)
    assert sweep_once(platform).deliveries == 1
    assert platform.deliveries.depth() == 1  # a worker is woken
    assert sweep_once(platform).deliveries == 1  # still late: woken again, still one job
    assert platform.deliveries.depth() == 1
    processes.start("worker")
    (delivery,) = finished(client, sub["id"])
    assert delivery["status"] == "succeeded" and len(receiver.requests) == 1


def test_an_answer_slower_than_the_timeout_is_a_failed_attempt(client, settings, slow_server):
    receiver = Receiver(slow_server, "/sleepy", delay=2)
    subscribe(client, receiver.url, retry_schedule=[0])
    publish(client)
    hasty = Platform(settings.replace(delivery_timeout=1))
    with hasty.db.session() as session:
        (delivery_id,) = session.scalars(select(Delivery.id)).all()
    assert send_delivery(hasty, delivery_id) == "failed after 1 attempt(s)"
    hasty.close()
    (attempt,) = client.get(f"/api/v1/deliveries/{delivery_id}").json["attempt_log"]
    assert attempt["status_code"] is None and "timed out" in attempt["error"]
    assert 900 <= attempt["duration_ms"] < 1900


def test_the_delivery_log_filters_by_event_type_and_time(client, platform):
    sub = subscribe(client, "https://127.0.0.1:8443/hooks")
    publish(client, "member.joined")
    publish(client, "member.left")
    everything = deliveries_of(client, sub["id"])
    assert [d["event_type"] for d in everything] == ["member.left", "member.joined"]
    left = deliveries_of(client, sub["id"], event_type="member.left")
    assert [d["event_type"] for d in left] == ["member.left"]
    newest = everything[0]["created_at"]
    assert [d["event_type"] for d in deliveries_of(client, sub["id"], since=newest)] == [
        "member.left"
    ]
    assert [d["event_type"] for d in deliveries_of(client, sub["id"], until=newest)] == [
        "member.joined"
    ]
    assert deliveries_of(client, sub["id"], status="succeeded") == []
    missing = client.get("/api/v1/subscriptions/sub_nope/deliveries")
    assert missing.status_code == 404


class Gauge:
    """A receiver that counts how many of its requests are in flight at once."""

    def __init__(self, server, path: str, delay: float):
        self.delay, self.now, self.most, self.ids = delay, 0, 0, []
        self.lock = threading.Lock()
        self.url = server.url_for(path)
        server.expect_request(path, method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
            self.ids.append(request.headers["webhook-id"])
        return Response("{}", status=200)


def statuses_of(platform) -> list[str]:
    with platform.db.session() as session:
        return list(session.scalars(select(Delivery.status)))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
def test_a_drain_keeps_several_attempts_in_flight_and_sends_each_once(
    client, platform, slow_server
):
    from ihook.sender import SEND_THREADS, drain

    receiver = Gauge(slow_server, "/gauge", delay=0.3)
    subscribe(client, receiver.url, name="a", event_types=["a.*"])
    subscribe(client, receiver.url, name="b", event_types=["b.*"])
    for n in range(12):
        publish(client, "a.thing" if n % 2 else "b.thing", {"n": n})
    threads = [threading.Thread(target=drain, args=(platform,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(statuses_of(platform)) == ["succeeded"] * 12
    assert len(receiver.ids) == len(set(receiver.ids)) == 12  # three drains, each sent once
    assert 1 < receiver.most <= 3 * SEND_THREADS


def test_a_drain_fails_the_deliveries_of_a_disabled_subscription_unsent(client, platform):
    from ihook.sender import drain

    sub = subscribe(client, "http://127.0.0.1:9/never")
    publish(client)
    answer = client.patch(f"/api/v1/subscriptions/{sub['id']}", json={"enabled": False})
    assert answer.status_code == 200, answer.json
    assert drain(platform) == "0 attempt(s)"
    (delivery,) = deliveries_of(client, sub["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 0
    assert delivery["last_error"] == "not sent: the subscription is disabled"


def test_a_slow_subscription_at_its_limit_has_its_deliveries_put_off(client, platform):
    from rq.registry import ScheduledJobRegistry

    from ihook.sender import drain

    sub = subscribe(client, "http://127.0.0.1:9/never")
    publish(client)
    platform.redis.set(f"ihook:slow:{sub['id']}", 1)
    platform.redis.set(f"ihook:inflight:{sub['id']}", 1)  # another worker is sending one
    assert drain(platform) == "0 attempt(s)"
    (delivery,) = deliveries_of(client, sub["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["next_attempt_at"] > delivery["created_at"]
    assert ScheduledJobRegistry(queue=platform.deliveries.queue).count == 1  # back in 1 s
    assert platform.redis.get(f"ihook:inflight:{sub['id']}") == b"1"  # nothing counted


def test_drains_sharing_one_fast_subscription_put_nothing_off(client, platform, slow_server):
    from ihook.sender import drain

    receiver = Gauge(slow_server, "/shared", delay=0.05)
    subscribe(client, receiver.url)
    for n in range(24):
        publish(client, data={"n": n})
    threads = [threading.Thread(target=drain, args=(platform,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # the second drain found the subscription at its limit of 8: it left the rest due
    # for the first, instead of putting them off for a second
    assert sorted(statuses_of(platform)) == ["succeeded"] * 24
    assert len(set(receiver.ids)) == 24 and receiver.most <= 8
