"""The processes a scenario measures, all on 127.0.0.1, all stopped when it ends.

A ``Stack`` owns a temporary directory, its own ``redis-server`` (no persistence, the
same server for ihook and for the baselines), a freshly migrated database, the
receiver, and whatever a scenario starts: ``ihook api`` (gunicorn), ``ihook worker``
processes, ``ihook scheduler``, baseline servers and workers. Every child runs in its
own process group, so stopping it stops its gunicorn workers too, and every child is
stopped on exit, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import create_engine, text

from ihook.db import upgrade

ADMIN_TOKEN = "bench-admin-token"
"""The management API token of every bench stack."""
SECRET_KEY = "bench-secret-key"
"""IHOOK_SECRET_KEY of every bench stack."""
START_TIMEOUT = 30.0
"""Seconds a server or worker has to come up."""
STOP_TIMEOUT = 10.0
"""Seconds a child has to exit after SIGTERM before it is killed."""
REPO = Path(__file__).resolve().parent.parent
"""The repository root: children run there so ``bench`` and ``ihook`` import."""


class StackError(RuntimeError):
    """Raised when a process of the stack does not start or a check cannot be made."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    """A process the stack started, in its own process group, logging to a file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Api:
    """A started HTTP server: its child process and base URL."""

    child: Child
    url: str

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)


@dataclass
class Stack:
    """One scenario's processes. Use as a context manager; ``close()`` stops them all."""

    database: str = "sqlite"
    """``sqlite`` (a file in the temp dir) or a PostgreSQL URL the bench may wipe."""
    keep: bool = False
    """Keep the temp directory (logs, database) after closing."""
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ihook-bench-")))
    children: list[Child] = field(default_factory=list)
    redis_url: str = ""
    database_url: str = ""
    receiver_url: str = ""

    def __enter__(self) -> Stack:
        _stop_on_sigterm()
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the shared pieces ------------------------------------------------------------

    def start(self) -> None:
        """Redis, the database (migrated) and the receiver."""
        self._start_redis()
        self.database_url = self._fresh_database()
        port = free_port()
        self.spawn("receiver", [sys.executable, "-m", "bench.receiver", "--port", str(port)])
        self.receiver_url = f"http://127.0.0.1:{port}"
        self.wait_http(self.receiver_url + "/_bench/stats", "receiver")

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed (apt-get install redis-server)")
        port = free_port()
        redis_dir = self.root / "redis"
        redis_dir.mkdir()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(redis_dir)]
        self.spawn("redis", args)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        client = self.redis()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except Exception:
                time.sleep(0.05)
        raise StackError("redis-server did not start")

    def _fresh_database(self) -> str:
        if self.database == "sqlite":
            url = f"sqlite:///{self.root / 'ihook.db'}"
            engine = create_engine(url)
        else:
            url = self.database
            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade(engine)
        engine.dispose()
        return url

    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an ihook process of this stack (like the tests' ``settings_env``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IHOOK_", "GUNICORN"))}
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            IHOOK_DATA_DIR=str(self.root),
            IHOOK_SECRET_KEY=SECRET_KEY,
            IHOOK_ADMIN_TOKEN=ADMIN_TOKEN,
            IHOOK_ALLOW_PRIVATE_NETWORKS="true",
            IHOOK_ALLOW_HTTP="true",
            IHOOK_RETENTION_DAYS="0",
            PYTHONPATH=str(REPO),
        )
        env.update(extra)
        return env

    # -- children ---------------------------------------------------------------------

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        """Start ``args`` in a new process group, output to ``<root>/logs/<name>.log``."""
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        log = logs / f"{name}-{len(self.children)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=REPO,
                env=env or self.env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, *children: Child) -> None:
        """SIGTERM each child's group, wait, then SIGKILL what is left."""
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.proc.wait()
            # gunicorn's workers share the group; make sure none outlives its master
            _signal_group(child, signal.SIGKILL)
            if child in self.children:
                self.children.remove(child)

    def close(self) -> None:
        """Stop every child (Redis last) and remove the temp directory unless kept."""
        redis = [c for c in self.children if c.name == "redis"]
        self.stop(*[c for c in self.children if c.name != "redis"])
        self.stop(*redis)
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- ihook ------------------------------------------------------------------------

    def start_api(self, workers: int = 2) -> Api:
        """``python -m ihook api --bind 127.0.0.1:<port> --workers N``, once it answers."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = self.env(IHOOK_PUBLIC_URL=url)
        args = [sys.executable, "-m", "ihook", "api", "--bind", f"127.0.0.1:{port}"]
        child = self.spawn("api", [*args, "--workers", str(workers)], env)
        self.wait_http(url + "/api/v1/health", "ihook api", child)
        return Api(child, url)

    def start_workers(self, count: int, *extra: str) -> list[Child]:
        """``count`` ``python -m ihook worker`` processes, once RQ lists them."""
        before = _worker_count(self.redis())
        workers = [
            self.spawn("worker", [sys.executable, "-m", "ihook", "worker", *extra])
            for _ in range(count)
        ]
        self.wait_workers(before + count, workers)
        return workers

    def start_scheduler(self) -> Child:
        return self.spawn("scheduler", [sys.executable, "-m", "ihook", "scheduler"])

    def wait_workers(self, count: int, children: list[Child]) -> None:
        """Wait until RQ knows ``count`` workers (registered, so ready to take jobs)."""
        client = self.redis()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _worker_count(client) >= count:
                return
            for child in children:
                if not child.alive():
                    raise StackError(f"{child.name} exited:\n{child.tail()}")
            time.sleep(0.05)
        raise StackError(f"{count} RQ worker(s) did not register within {START_TIMEOUT}s")

    def wait_http(self, url: str, what: str, child: Child | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                status, _ = request("GET", url)
                if status < 500:
                    return
            except OSError:
                pass
            if child is not None and not child.alive():
                raise StackError(f"{what} exited:\n{child.tail()}")
            time.sleep(0.05)
        raise StackError(f"{what} did not answer at {url} within {START_TIMEOUT}s")

    def api_call(self, api: Api, method: str, path: str, body: Any = None) -> Any:
        """A management API call with the admin token; the JSON answer, or StackError."""
        auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        status, answer = request(method, api.url + path, body, headers=auth)
        if status >= 300:
            raise StackError(f"{method} {path} answered {status}: {answer}")
        return answer

    def receiver(self, route: str, method: str = "GET") -> Any:
        """A control call to the receiver (``stats?prefix=``, ``arrivals?prefix=``, ``reset``)."""
        return request(method, f"{self.receiver_url}/_bench/{route}")[1]


def request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One plain HTTP call (JSON in and out) with a new connection."""
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.partition(":")
    conn = http.client.HTTPConnection(name, int(port or 80), timeout=60)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {"content-type": "application/json", **(headers or {})}
        conn.request(method, "/" + rest, body=data, headers=sent)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def _worker_count(client: Redis) -> int:
    from rq import Worker

    return Worker.count(connection=client)


def _signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_on_sigterm() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt, so ``finally`` stops the children.

    SIGINT too: a shell that starts the bench in the background leaves it ignored.
    """

    def _raise(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise)
