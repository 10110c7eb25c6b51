"""The ingest baseline: a bare Flask endpoint that checks a Standard Webhooks HMAC and LPUSHes.

What a hand-written receiver does at the least: verify ``webhook-signature`` over
``id.timestamp.body`` with the ``whsec_`` secret (timestamp within 300 s, constant-time
compare), push the body to a Redis list, answer 202. No database, no parsing.
gunicorn serves ``create_app()`` with the same settings as ``ihook api`` (see
``bench.baselines``).

With ``BENCH_COMMIT_DB`` set (a SQLite file), the endpoint also commits each body to
that file before it pushes and answers, as DESIGN.md §4 asks of ihook: the least any
endpoint that keeps that promise must do (the "committed" baseline). Plain ``sqlite3``,
WAL and ``synchronous=NORMAL`` as ihook sets them, one ``BEGIN IMMEDIATE`` … ``COMMIT``
per request, no ORM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sqlite3
import time

from flask import Flask, request
from redis import Redis

LIST = "bench:bare"
"""The Redis list the bodies go to."""
COMMITTED_LIST = "bench:committed"
"""Where the committed baseline pushes (its own list, so each baseline's pushes count apart)."""
TABLE = "bodies"
"""The committed baseline's table: ``(id TEXT PRIMARY KEY, body BLOB)``."""


def create_app() -> Flask:
    """The app; environment: ``BENCH_SECRET`` (the ``whsec_`` secret) and ``REDIS_URL``."""
    app = Flask("bare")
    secret = base64.b64decode(os.environ["BENCH_SECRET"].removeprefix("whsec_"))
    redis = Redis.from_url(os.environ["REDIS_URL"])
    commit_db = os.environ.get("BENCH_COMMIT_DB")
    db = _open(commit_db) if commit_db else None
    pushed_to = COMMITTED_LIST if commit_db else LIST

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
        if db is not None:
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"INSERT INTO {TABLE} (id, body) VALUES (?, ?)", (msg_id, body))
            db.execute("COMMIT")
        redis.lpush(pushed_to, body)
        return {"ok": True}, 202

    return app


def _open(path: str) -> sqlite3.Connection:
    """The committed baseline's database, tuned as ihook tunes its SQLite file."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, body BLOB)")
    return db
