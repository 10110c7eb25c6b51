"""Group commit: writes that arrive together in one process share one transaction.

Under a threaded server many webhooks are stored at once. Each would otherwise begin
and commit a transaction of its own, one after another (SQLite has one writer at a
time), and a transaction's begin and commit cost more than its few inserts. Here the
first thread to find no transaction in progress writes everything waiting, its own
write and the others', in one transaction; the others wait for that commit and take
their results from it. A thread is only answered once its write is committed, so "commit
before the answer" holds for each of them.

A write must be all-or-nothing within the transaction it is given. If any write of a
group fails, the group is rolled back and each write runs again alone, in a transaction
of its own, so that one failure (a duplicate, a changed configuration) only reaches the
caller it belongs to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")

MAX_GROUP = 64
"""Most writes one transaction takes; the rest wait for the next."""


@dataclass
class _Write(Generic[T]):
    write: Callable[[Session], T]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class GroupCommit:
    """Runs ``write(session)`` calls of one process's threads in shared transactions."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]]):
        self._transaction = transaction
        self._writer = threading.Lock()  # one group in flight at a time
        self._guard = threading.Lock()  # guards the waiting list
        self._waiting: list[_Write[Any]] = []

    def run(self, write: Callable[[Session], T]) -> T:
        """Run ``write`` in a transaction, with others that wait; its result once committed."""
        item: _Write[T] = _Write(write)
        with self._guard:
            self._waiting.append(item)
        while not item.done:
            with self._writer:
                if item.done:
                    break
                with self._guard:
                    group = self._waiting[:MAX_GROUP]
                    del self._waiting[:MAX_GROUP]
                self._commit(group)
        if item.error is not None:
            raise item.error
        return item.result

    def _commit(self, group: list[_Write[Any]]) -> None:
        try:
            self._commit_group(group)
        except BaseException as exc:  # interrupted: no waiting thread may wait for ever
            for item in group:
                if not item.done:
                    item.error, item.done = exc, True
            raise

    def _commit_group(self, group: list[_Write[Any]]) -> None:
        if len(group) > 1:
            try:
                with self._transaction() as session:
                    results = [item.write(session) for item in group]
            except Exception:  # noqa: BLE001 - each write is tried alone below
                pass
            else:
                for item, result in zip(group, results, strict=True):
                    item.result, item.done = result, True
                return
        for item in group:
            try:
                with self._transaction() as session:
                    item.result = item.write(session)
            except Exception as exc:  # handed to the thread that asked for it
                item.error = exc
            item.done = True
