"""Rate limits: counted in Redis, leased to each process in blocks that shrink near the limit."""

from __future__ import annotations

import itertools

import pytest
from redis import Redis

from ihook.ratelimit import KEY_PREFIX, MAX_BLOCK, Limiter
from tests.support import free_port

NOW = 1_800_000_000.0  # the start of a window for every window length used here


@pytest.fixture
def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def admitted(limiter: Limiter, hits: int, *, limit: int, window: int = 60) -> int:
    return sum(limiter.hit("ep", limit=limit, window=window, now=NOW) == 0 for _ in range(hits))


def test_a_small_limit_is_exact_and_names_the_wait(redis):
    limiter = Limiter(redis)
    answers = [limiter.hit("ep", limit=3, window=60, now=NOW + 15) for _ in range(5)]
    assert answers == [0, 0, 0, 45, 45]


def test_a_process_takes_blocks_not_single_requests(redis):
    limiter = Limiter(redis)
    assert admitted(limiter, 10 * MAX_BLOCK, limit=1_000_000) == 10 * MAX_BLOCK
    key = f"{KEY_PREFIX}ep:{int(NOW // 60)}"
    assert int(redis.get(key)) == 10 * MAX_BLOCK  # ten round trips for 640 requests
    admitted(limiter, 1, limit=1_000_000)
    assert int(redis.get(key)) == 11 * MAX_BLOCK


def test_processes_sharing_a_limit_never_admit_more_and_lose_little(redis):
    processes = [Limiter(redis) for _ in range(3)]
    turns = itertools.cycle(processes)
    total = sum(next(turns).hit("ep", limit=600, window=60, now=NOW) == 0 for _ in range(1200))
    assert 600 - 3 * 600 // 16 <= total <= 600


def test_each_window_starts_again(redis):
    limiter = Limiter(redis)
    assert admitted(limiter, 5, limit=2, window=10) == 2
    assert limiter.hit("ep", limit=2, window=10, now=NOW + 10) == 0  # the next window


def test_without_redis_the_limit_is_not_enforced():
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    assert Limiter(dead).hit("ep", limit=1, window=60, now=NOW) == 0
    assert Limiter(dead).hit("ep", limit=1, window=60, now=NOW) == 0
