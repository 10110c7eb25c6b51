"""Shared fixtures: real Redis, a fresh database per test, the app, workers, receivers."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import request
from redis import Redis
from sqlalchemy import create_engine, text

from ihook.app import create_app
from ihook.db import upgrade
from ihook.platform import Platform
from ihook.settings import Settings
from tests.log_sweep import Sweep, SweepHandler
from tests.support import free_port

ADMIN_TOKEN = "test-admin-token"
PUBLIC_IP = "93.184.215.14"
"""What ``*.example.com`` resolves to under the ``public_dns`` fixture."""
SECRET_KEY = "test-secret-key"
PG_URL = os.environ.get("IHOOK_TEST_DATABASE_URL")
SWEEP = Sweep(constants=(ADMIN_TOKEN, SECRET_KEY))
"""The secret sweep of every log of this run (``tests/log_sweep.py``)."""
REQUIRE_PG = os.environ.get("IHOOK_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session", autouse=True)
def log_sweep() -> Iterator[Sweep]:
    """Check every log record of the run as it is emitted and, at the end, every log file
    of the processes tests started; fail the run if any holds a secret."""
    handler = SweepHandler(SWEEP)
    # The suite's own HTTP client logs every URL it calls, ingest keys included; ihook's
    # processes quiet it the same way (``ihook.cli``).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) or logging.INFO)
    yield SWEEP
    root.removeHandler(handler)
    root.setLevel(level)
    SWEEP.check_files()
    if SWEEP.found:
        pytest.fail(f"secrets in the logs of this run:\n{SWEEP.report()}", pytrace=False)


class RedisServer:
    """A real redis-server on 127.0.0.1 that a test can stop and start again."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ihook.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless a test module parametrizes it (indirectly) with ``postgres``."""
    return getattr(request, "param", "sqlite")


def _fresh_postgres() -> str:
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("IHOOK_TEST_DATABASE_URL is not set but IHOOK_REQUIRE_POSTGRES=1")
        pytest.skip("no PostgreSQL: set IHOOK_TEST_DATABASE_URL")
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    engine.dispose()
    return PG_URL


@pytest.fixture
def database_url(backend: str, sqlite_template: Path, tmp_path: Path) -> str:
    if backend == "postgres":
        return _fresh_postgres()
    path = tmp_path / "ihook.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        secret_keys=(SECRET_KEY,),
        admin_token=ADMIN_TOKEN,
        allow_private_networks=True,
        run_timeout=30,
        sweep_grace=1,
        max_attempts=5,
    )


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform(settings)
    yield p
    p.close()


@pytest.fixture
def app(platform: Platform):
    """The app; a test fails if any request it makes is answered with a 5xx but 503."""
    app = create_app(platform=platform)
    app.config["TESTING"] = True
    errors: list[str] = []

    @app.after_request
    def _no_server_errors(response):
        if response.status_code >= 500 and response.status_code != 503:
            errors.append(f"{response.status_code} for {request.method} {request.path}")
        return response

    yield app
    assert not errors, errors


class ApiClient:
    """The Flask test client with the admin token on every call."""

    def __init__(self, client):
        self.raw = client
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def __getattr__(self, method: str):
        def call(path: str, **kwargs):
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return getattr(self.raw, method)(path, headers=headers, **kwargs)

        return call


@pytest.fixture
def client(app) -> ApiClient:
    return ApiClient(app.test_client())


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a subprocess needs to see ``settings``."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url or "",
        IHOOK_DATA_DIR=str(settings.data_dir),
        IHOOK_SECRET_KEY=",".join(settings.secret_keys),
        IHOOK_ADMIN_TOKEN=settings.admin_token or "",
        IHOOK_ALLOW_PRIVATE_NETWORKS="true" if settings.allow_private_networks else "false",
        IHOOK_RUN_TIMEOUT=str(settings.run_timeout),
        IHOOK_SWEEP_GRACE=str(settings.sweep_grace),
        IHOOK_MAX_ATTEMPTS=str(settings.max_attempts),
        IHOOK_ALLOW_HTTP="true" if settings.allow_http else "false",
        IHOOK_DELIVERY_TIMEOUT=str(settings.delivery_timeout),
        IHOOK_DISABLE_AFTER=str(settings.disable_after),
        IHOOK_ALERT_CONNECTOR=settings.alert_connector or "",
        IHOOK_RETENTION_DAYS=str(settings.retention_days),
    )
    return env


class Processes:
    """ihook processes (worker, scheduler) started by a test and stopped after it."""

    def __init__(self, settings: Settings, log_dir: Path):
        self.settings = settings
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        SWEEP.log_dirs.append(log_dir)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{args[0]}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "ihook", *args],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(settings, logs)
    yield procs
    procs.stop_all()


@pytest.fixture
def worker(processes: Processes) -> subprocess.Popen[bytes]:
    """A real RQ worker process (``ihook worker``) on the test's database and Redis."""
    return processes.start("worker")


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    return ("127.0.0.1", 0)


@pytest.fixture
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*.example.com`` resolves to a public address; other names as usual (no network).

    For tests of the outbound guard's checks at save time, which resolve host names.
    """
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".example.com"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def client_for(settings: Settings, **changes: object) -> tuple[ApiClient, Platform]:
    """An API client of an app whose install settings differ from the test defaults."""
    p = Platform(settings.replace(**changes))
    app = create_app(platform=p)
    app.config["TESTING"] = True
    return ApiClient(app.test_client()), p


@pytest.fixture
def strict_client(settings: Settings) -> Iterator[ApiClient]:
    """An install that keeps outbound requests off private networks (the default)."""
    client, p = client_for(settings, allow_private_networks=False)
    yield client
    p.close()
