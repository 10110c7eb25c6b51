"""The receiver every scenario sends to: a small asyncio HTTP/1.1 server that counts.

It stands for the CRM or the subscriber at the far end, so it must cost little: one
process, keep-alive, no framework. Each request is keyed by its ``webhook-id`` header,
else the ``bench_id`` of its JSON body, else its path; the receiver keeps, per key, how
many times it came and when it first arrived (``time.time()``), and answers ``200
{"ok":true}``. The bench reads what it got from ``GET /_bench/stats`` and
``GET /_bench/arrivals`` and clears it with ``POST /_bench/reset``.

Two more routes serve the polling scenario:

- ``POST /bulk/<prefix>``: a bulk body, a JSON array of rows (or an object holding one
  array, such as ``{"rows": [...]}``). Each row is counted on its own, keyed by
  ``<prefix>`` + its ``bench_id`` (else its ``id``), so a row sent twice shows up doubled.
- ``GET /source/items?page=P&per_page=S&total=N``: a paged source of ``N`` items (ids
  ``item-0`` … ``item-<N-1>``, about 300 bytes each), page ``P`` counted from 1, as
  ``{"data": [...], "page": P, "total": N}``; a page past the end is empty. Stateless:
  the pages are computed from the query, and nothing is counted.

Run it as ``python -m bench.receiver --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

OK = b'{"ok":true}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(OK),
    OK,
)
CLOSE_ANSWER = ANSWER.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
MAX_HEAD = 64 * 1024
"""A request head longer than this closes the connection."""
BULK = "/bulk/"
"""Bulk bodies: each row is counted under ``<prefix after /bulk/>`` + its ``bench_id``."""
SOURCE = "/source/items"
"""The paged source the polling scenario reads."""
ITEM_PADDING = "x" * 70
"""Makes one source item about 300 bytes of JSON."""


class Tally:
    """What the receiver got: per key, the count and the first arrival."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.first: dict[str, float] = {}

    def reset(self) -> None:
        self.counts.clear()
        self.first.clear()

    def note_rows(self, prefix: str, body: bytes) -> int:
        """Count each row of a bulk body under ``prefix``; how many rows it held."""
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, list)), None)
        if not isinstance(value, list):
            self.note(prefix + "!unreadable")
            return 0
        for row in value:
            ident = row.get("bench_id", row.get("id")) if isinstance(row, dict) else None
            self.note(f"{prefix}{ident}")
        return len(value)

    def note(self, key: str) -> None:
        count = self.counts.get(key)
        if count is None:
            self.counts[key] = 1
            self.first[key] = time.time()
        else:
            self.counts[key] = count + 1

    def stats(self, prefix: str) -> dict[str, Any]:
        keys = [k for k in self.counts if k.startswith(prefix)]
        doubled = [k for k in keys if self.counts[k] > 1]
        return {
            "requests": sum(self.counts[k] for k in keys),
            "distinct": len(keys),
            "doubled": len(doubled),
            "doubled_keys": doubled[:20],
            "last_arrival": max((self.first[k] for k in keys), default=None),
        }

    def arrivals(self, prefix: str) -> dict[str, list[float]]:
        return {k: [self.first[k], self.counts[k]] for k in self.counts if k.startswith(prefix)}


class Connection(asyncio.Protocol):
    """One keep-alive connection; parses heads and Content-Length bodies by hand."""

    def __init__(self, tally: Tally):
        self.tally = tally
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._one():
            pass

    def _one(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD and self.transport:
                self.transport.close()
            return False
        head = bytes(self.buffer[:end]).decode("latin-1")
        lines = head.split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.rsplit(" ", 1)[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        close = headers.get("connection", "").lower() == "close"
        assert self.transport is not None
        if path.startswith("/_bench/"):
            self.transport.write(self._control(method, path, body))
        elif path.startswith(SOURCE) and method == "GET":
            self.transport.write(_json_answer(source_page(path.partition("?")[2]), close))
        elif path.startswith(BULK) and method in ("POST", "PUT", "PATCH"):
            self.tally.note_rows(path[len(BULK) :].partition("?")[0], body)
            self.transport.write(CLOSE_ANSWER if close else ANSWER)
        else:
            self.tally.note(_key(headers, body, path))
            self.transport.write(CLOSE_ANSWER if close else ANSWER)
        if close:
            self.transport.close()
            return False
        return True

    def _control(self, method: str, path: str, body: bytes) -> bytes:
        route, _, query = path.partition("?")
        prefix = query.partition("prefix=")[2].split("&")[0]
        if method == "POST" and route == "/_bench/reset":
            self.tally.reset()
            answer: Any = {"ok": True}
        elif route == "/_bench/stats":
            answer = self.tally.stats(prefix)
        elif route == "/_bench/arrivals":
            answer = self.tally.arrivals(prefix)
        else:
            answer = {"error": "unknown control route"}
        return _json_answer(json.dumps(answer).encode())


def _json_answer(data: bytes, close: bool = False) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
        % (len(data), extra, data)
    )


def source_item(n: int) -> dict[str, Any]:
    """Item ``n`` of the paged source: about 300 bytes as JSON."""
    return {
        "id": f"item-{n}",
        "seq": n,
        "status": "completed",
        "learner": {"external_id": f"m-{n}", "email": f"learner{n}@example.org"},
        "course": {"code": "CS101", "title": "Introduction to computing"},
        "updated_at": "2026-11-20T10:00:00Z",
        "notes": ITEM_PADDING,
    }


def source_page(query: str) -> bytes:
    """The body of ``GET /source/items?<query>`` (``page`` from 1, ``per_page``, ``total``)."""
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    page = int(params.get("page") or 1)
    size = int(params.get("per_page") or 100)
    total = int(params.get("total") or 0)
    first = (page - 1) * size
    items = [source_item(n) for n in range(max(first, 0), min(first + size, total))]
    body = {"data": items, "page": page, "total": total}
    return json.dumps(body, separators=(",", ":")).encode()


def _key(headers: dict[str, str], body: bytes, path: str) -> str:
    key = headers.get("webhook-id")
    if key:
        return key
    if body[:1] == b"{":
        try:
            value = json.loads(body).get("bench_id")
        except (ValueError, AttributeError):
            value = None
        if value is not None:
            return str(value)
    return path


async def serve(port: int) -> None:
    tally = Tally()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Connection(tally), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
