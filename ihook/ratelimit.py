"""Per-endpoint rate limits: a fixed-window counter in Redis, leased out in small blocks.

Each window of each endpoint has a counter in Redis. A process does not ask Redis for
every request: it takes a block of requests at once (``INCRBY``) and answers from that
block until it is used up. Blocks are a sixteenth of what the window has left, at most
``MAX_BLOCK``, so they shrink to single requests near the limit: a small limit is exact,
and with several processes the requests leased but unused when a window ends (at most
a sixteenth of the remainder per process) are all a client can lose.

When Redis is unreachable the limit is not enforced (fail open): refusing webhooks we
could store would lose data, which is worse than letting a burst through.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "ihook:rl:"
"""Prefix of the Redis counters."""
MAX_BLOCK = 64
"""Most requests a process takes from a window at once."""
SHARE = 16
"""A block is at most this fraction of what is left of the window's limit."""


@dataclass
class _Lease:
    bucket: int
    left: int  # requests of the block not used yet
    total: int  # the window's count in Redis when last seen


class Limiter:
    """One process's view of the rate limits; safe to share between its threads."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}

    def hit(self, name: str, *, limit: int, window: int, now: float | None = None) -> int:
        """Count one request against ``name``; the seconds to wait when over, else 0."""
        now = time.time() if now is None else now
        bucket = int(now // window)
        with self._lock:
            lease = self._leases.get(name)
            if lease is None or lease.bucket != bucket:
                lease = self._leases[name] = _Lease(bucket, 0, 0)
            if lease.left > 0:
                lease.left -= 1
                return 0
            block = max(1, min(MAX_BLOCK, (limit - lease.total) // SHARE))
        key = f"{KEY_PREFIX}{name}:{bucket}"
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.incrby(key, block)
                pipe.expire(key, window + 1)
                total = pipe.execute()[0]
        except RedisError as exc:
            log.debug("rate limit not enforced, Redis unavailable: %s", exc)
            return 0
        granted = min(block, max(0, limit - (total - block)))
        with self._lock:
            if lease.bucket == bucket:
                lease.total = max(lease.total, total)
                lease.left += max(0, granted - 1)
        if granted > 0:
            return 0
        return max(1, math.ceil((bucket + 1) * window - now))
