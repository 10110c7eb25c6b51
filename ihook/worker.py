"""The RQ worker classes ``ihook worker`` runs: RQ's own, made to stop cleanly on a deploy.

On SIGTERM (or Ctrl-C) RQ finishes the job in hand before it exits, and a drain job can
hold a worker for ``DRAIN_SECONDS``. These classes tell the drain job to claim nothing more
(``stop_draining``), so the worker exits after the run or delivery attempts it holds; a
forking worker passes the request to its work horse with SIGUSR1. RQ's scheduler process
gets a bounded time to stop, then is killed: it holds nothing that its locks' expiry does
not free, and a deploy must never wait on it.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from rq import SimpleWorker, Worker

from ihook.queue import stop_draining

log = logging.getLogger(__name__)

SCHEDULER_STOP_SECONDS = 5.0
"""How long a stopping worker waits for RQ's scheduler process before it kills it."""


def relay_stop_to_horses() -> None:
    """Have SIGUSR1 stop this process's drain jobs; a work horse inherits it from its parent."""
    signal.signal(signal.SIGUSR1, lambda *_: stop_draining())


class CleanStop:
    """What both worker classes add to RQ's (a mixin: put it before RQ's class)."""

    def request_stop(self, signum: int, frame: Any) -> None:
        log.info("asked to stop (%s): finishing the work in hand", signal.Signals(signum).name)
        stop_draining()  # the drain job in hand ends after its current item
        horse = getattr(self, "horse_pid", 0)
        if horse:
            os.kill(horse, signal.SIGUSR1)
        super().request_stop(signum, frame)  # type: ignore[misc]

    def stop_scheduler(self) -> None:
        scheduler = getattr(self, "scheduler", None)
        process = scheduler._process if scheduler is not None else None
        if process is None or not process.pid:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
        except OSError:
            pass
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            log.warning(
                "RQ's scheduler process %s did not stop within %s s: killed",
                process.pid,
                SCHEDULER_STOP_SECONDS,
            )
            process.kill()
            process.join()


class IhookWorker(CleanStop, SimpleWorker):
    """Runs each job in the worker's own process (the default)."""


class IhookForkingWorker(CleanStop, Worker):
    """Runs each job in a forked work horse (``ihook worker --fork``)."""
