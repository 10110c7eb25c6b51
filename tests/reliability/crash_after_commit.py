"""Store webhooks through the real ingress and die between the commit and the enqueue.

``python -m tests.reliability.crash_after_commit COUNT PATH`` posts COUNT webhooks
(``{"n": 0}`` …) to PATH, each from a process of its own forked from this one, which
exits with status 137 (as if killed) at the very point where the ingress has committed the
event and its runs and is about to wake a worker. Prints how many processes died there.
The settings come from the environment (``DATABASE_URL``, ``REDIS_URL``, …).
"""

from __future__ import annotations

import os
import sys

from ihook.app import create_app
from ihook.platform import Platform
from ihook.routing import snapshot_of
from ihook.settings import Settings

CRASHED = 137


def crash(accepted: object) -> None:
    """Stands in for ``Platform.dispatch``: the process dies before anything is enqueued."""
    os._exit(CRASHED)


def main(count: int, path: str) -> int:
    platform = Platform(Settings.from_env())
    platform.dispatch = crash  # type: ignore[method-assign]
    app = create_app(platform=platform)
    with platform.db.read() as session:
        snapshot_of(session)  # the configuration, read once for all the processes to come
    platform.db.engine.dispose()
    crashed = 0
    for n in range(count):
        pid = os.fork()
        if pid == 0:
            platform.db.engine.dispose(close=False)  # connections of this process's own
            answer = app.test_client().post(path, json={"n": n})
            print(f"webhook {n}: answered {answer.status_code} {answer.json}", file=sys.stderr)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        crashed += os.waitstatus_to_exitcode(status) == CRASHED
    return crashed


if __name__ == "__main__":
    print(main(int(sys.argv[1]), sys.argv[2]))
