"""Load generators: wrk when it is installed, else a Python one; and a batch poster.

``run_load`` keeps ``connections`` requests in flight for ``duration`` seconds (a closed
loop, like wrk) and reports the answered rate, latency percentiles and the count of
each status. It uses ``wrk`` with ``signed.lua`` when ``wrk`` is on PATH, otherwise
threads with one keep-alive ``http.client`` connection each (GIL-bound: it measures
lower rates than wrk and takes CPU from the server, so results say which one ran).

``post_batch`` sends a fixed list of requests exactly once each and records every
answer, for scenarios that must account for each request.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.payloads import Signed, read_requests

LUA_SCRIPT = Path(__file__).with_name("signed.lua")
"""The wrk script that sends a requests file."""
WRK_THREADS = 2
"""wrk threads (one per core of the 2-core machines the targets are set for)."""
REQUEST_TIMEOUT = 10.0
"""Seconds before a request counts as timed out."""


@dataclass
class LoadResult:
    """What a load run measured."""

    generator: str
    connections: int
    duration_s: float
    requests: int
    """Answers received (any status)."""
    rate: float
    """Answers per second."""
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    """Connection errors and timeouts."""
    wrapped: int = 0
    """Times the generator ran out of distinct requests and repeated some."""

    def count(self, status: int) -> int:
        return self.statuses.get(str(status), 0)

    def to_dict(self) -> dict:
        return asdict(self)


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def run_load(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    duration: float,
    generator: str | None = None,
) -> LoadResult:
    """POST the file's requests to ``url`` with ``connections`` in flight for ``duration`` s."""
    generator = generator or generator_name()
    if generator == "wrk":
        return _wrk(url, requests_file, connections, duration)
    return _python(url, read_requests(requests_file), connections, duration)


def _wrk(url: str, requests_file: Path, connections: int, duration: float) -> LoadResult:
    threads = min(WRK_THREADS, connections)
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    args += [f"--timeout={int(REQUEST_TIMEOUT)}s", "-s", str(LUA_SCRIPT), url]
    args += ["--", str(requests_file), str(threads)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return LoadResult(
        generator="wrk",
        connections=connections,
        duration_s=round(seconds, 2),
        requests=data["requests"],
        rate=round(data["requests"] / seconds, 1),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={str(k): v for k, v in data["statuses"].items()},
        errors=errors,
        wrapped=data["wrapped"],
    )


class _Client:
    """One keep-alive connection that reconnects when the server closes it."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(
                    self.host, self.port, timeout=REQUEST_TIMEOUT
                )
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()  # a keep-alive the server had closed: once more, fresh
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _python(url: str, batch: list[Signed], connections: int, duration: float) -> LoadResult:
    path = urlsplit(url).path or "/"
    picks = itertools.count()
    deadline = time.monotonic() + duration
    latencies: list[list[float]] = [[] for _ in range(connections)]
    statuses: list[Counter[int]] = [Counter() for _ in range(connections)]
    errors = [0] * connections

    def worker(n: int) -> None:
        client = _Client(url)
        while time.monotonic() < deadline:
            item = batch[next(picks) % len(batch)]
            started = time.perf_counter()
            try:
                status = client.post(path, item.headers(), item.body)
            except OSError:
                errors[n] += 1
                client.close()
                continue
            latencies[n].append(time.perf_counter() - started)
            statuses[n][status] += 1
        client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    every = sorted(x for part in latencies for x in part)
    total = sum(statuses, Counter())
    answered = sum(total.values())
    sent = next(picks)
    return LoadResult(
        generator="python",
        connections=connections,
        duration_s=round(seconds, 2),
        requests=answered,
        rate=round(answered / seconds, 1),
        p50_ms=(percentile(every, 50) or 0.0) * 1000,
        p90_ms=(percentile(every, 90) or 0.0) * 1000,
        p99_ms=(percentile(every, 99) or 0.0) * 1000,
        max_ms=(every[-1] if every else 0.0) * 1000,
        statuses={str(k): v for k, v in sorted(total.items())},
        errors=sum(errors),
        wrapped=max(0, sent - 1) // len(batch),
    )


def percentile(values: list[float], pct: float) -> float | None:
    """The nearest-rank ``pct`` percentile of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


@dataclass
class Posted:
    """One request of a batch and its answer."""

    key: str
    status: int
    sent_at: float
    """``time.time()`` when the request was sent."""
    answered_at: float


def post_batch(
    url: str,
    items: list[tuple[str, str, dict[str, str], bytes]],
    *,
    concurrency: int,
    rate: float | None = None,
) -> list[Posted]:
    """POST each ``(key, path, headers, body)`` once, ``concurrency`` at a time, in order.

    With ``rate``, item n is sent no sooner than n / rate seconds after the start (an
    open loop, for latency at a given load). Status 0: the request failed at the socket.
    """
    picks = itertools.count()
    results: list[Posted | None] = [None] * len(items)
    start = time.monotonic()

    def worker() -> None:
        client = _Client(url)
        while True:
            n = next(picks)
            if n >= len(items):
                break
            if rate:
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
            key, path, headers, body = items[n]
            sent = time.time()
            try:
                status = client.post(path, headers, body)
            except OSError:
                status = 0
                client.close()
            results[n] = Posted(key, status, sent, time.time())
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None]
