"""The ingest baseline: a bare Flask endpoint that checks a Standard Webhooks HMAC and LPUSHes.

What a hand-written receiver does at the least: verify ``webhook-signature`` over
``id.timestamp.body`` with the ``whsec_`` secret (timestamp within 300 s, constant-time
compare), push the body to a Redis list, answer 202. No database, no parsing.
gunicorn serves ``create_app()`` with the same settings as ``ihook api`` (see
``bench.baselines``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

from flask import Flask, request
from redis import Redis

LIST = "bench:bare"
"""The Redis list the bodies go to."""


def create_app() -> Flask:
    """The app; environment: ``BENCH_SECRET`` (the ``whsec_`` secret) and ``REDIS_URL``."""
    app = Flask("bare")
    secret = base64.b64decode(os.environ["BENCH_SECRET"].removeprefix("whsec_"))
    redis = Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/hooks/<key>")
    def receive(key: str):
        body = request.get_data()
        msg_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return {"error": "bad timestamp"}, 401
        signed = f"{msg_id}.{timestamp}.".encode() + body
        expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest())
        header = request.headers.get("webhook-signature", "")
        given = [part.partition(",")[2].encode() for part in header.split()]
        if not any(hmac.compare_digest(expected, sig) for sig in given):
            return {"error": "bad signature"}, 401
        redis.lpush(LIST, body)
        return {"ok": True}, 202

    return app
