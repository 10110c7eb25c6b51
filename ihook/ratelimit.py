"""Per-endpoint rate limits: a fixed-window counter in Redis.

When Redis is unreachable the limit is not enforced (fail open): refusing webhooks we
could store would lose data, which is worse than letting a burst through.
"""

from __future__ import annotations

import logging
import math
import time

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "ihook:rl:"
"""Prefix of the Redis counters."""


def hit(redis: Redis, name: str, *, limit: int, window: int, now: float | None = None) -> int:
    """Count one request against ``name``; the seconds to wait when over, else 0."""
    now = time.time() if now is None else now
    bucket = int(now // window)
    key = f"{KEY_PREFIX}{name}:{bucket}"
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, window + 1)
            count = pipe.execute()[0]
    except RedisError as exc:
        log.debug("rate limit not enforced, Redis unavailable: %s", exc)
        return 0
    if count <= limit:
        return 0
    return max(1, math.ceil((bucket + 1) * window - now))
