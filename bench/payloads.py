"""What the bench sends: ~1 KB LMS callbacks, signed the Standard Webhooks way.

Every request has its own ``webhook-id`` (ihook's default dedupe key), so none is a
duplicate. A batch can be written to a file of one request per line,
``<webhook-id>\\t<timestamp>\\t<signature>\\t<body>``, which the wrk script and the
Python load generator both read.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ihook.signing import sign

PADDING = "x" * 560
"""Makes a body about 1 KB, like the issue's measurements."""


@dataclass(frozen=True)
class Signed:
    """One signed webhook."""

    msg_id: str
    timestamp: int
    signature: str
    body: bytes

    def headers(self) -> dict[str, str]:
        return {
            "content-type": "application/json",
            "webhook-id": self.msg_id,
            "webhook-timestamp": str(self.timestamp),
            "webhook-signature": self.signature,
        }


def completion(bench_id: str) -> dict:
    """An LMS course-completion callback that the e2e workflow keeps, ~1 KB as JSON."""
    return {
        "bench_id": bench_id,
        "status": "completed",
        "learner": {"external_id": f"m-{bench_id}", "name": "Ada Lovelace", "email": "ada@x.org"},
        "course": {"code": "CS101", "title": "Introduction to computing", "credits": 3},
        "completed_at": "2026-11-20T10:00:00Z",
        "score": {"raw": 87, "max": 100, "passed": True},
        "notes": PADDING,
    }


def signed_batch(secret: str, prefix: str, count: int, start: int = 0) -> list[Signed]:
    """``count`` signed callbacks with ids ``<prefix><n>``, timestamped now."""
    ts = int(time.time())
    batch = []
    for n in range(start, start + count):
        msg_id = f"{prefix}{n}"
        body = json.dumps(completion(msg_id), separators=(",", ":")).encode()
        batch.append(Signed(msg_id, ts, sign(secret, msg_id, ts, body), body))
    return batch


def write_requests(path: Path, batch: list[Signed]) -> Path:
    """Write ``batch`` one request per line for the load generators."""
    with open(path, "wb") as out:
        for item in batch:
            line = f"{item.msg_id}\t{item.timestamp}\t{item.signature}\t".encode()
            out.write(line + item.body + b"\n")
    return path


def read_requests(path: Path) -> list[Signed]:
    """The batch ``write_requests`` wrote."""
    batch = []
    with open(path, "rb") as src:
        for line in src:
            msg_id, ts, signature, body = line.rstrip(b"\n").split(b"\t", 3)
            batch.append(Signed(msg_id.decode(), int(ts), signature.decode(), body))
    return batch
