"""``ihook up``: the whole platform on one machine, for development and small installs.

Fills local defaults (data directory, secret key, SQLite, a redis-server on a Unix
socket in the data directory), migrates, then runs the API, one worker and the
scheduler as child processes until interrupted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from ihook.platform import Platform
from ihook.queue import connect
from ihook.services.tokens import create_token
from ihook.settings import Settings

REDIS_START_TIMEOUT = 10.0
"""Seconds to wait for the local redis-server to answer."""


def run_all(*, port: int = 8000) -> int:
    """Start everything and wait; returns the exit status."""
    env = dict(os.environ)
    data_dir = Path(env.setdefault("IHOOK_DATA_DIR", "./.ihook")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env["IHOOK_DATA_DIR"] = str(data_dir)
    env.setdefault("IHOOK_SECRET_KEY", _kept_secret(data_dir / "secret_key"))
    env.setdefault("IHOOK_PUBLIC_URL", f"http://127.0.0.1:{port}")
    children: list[subprocess.Popen[bytes]] = []
    if not env.get("REDIS_URL"):
        redis_proc, env["REDIS_URL"] = _start_redis(data_dir)
        children.append(redis_proc)
    platform = Platform(Settings.from_env(env))
    platform.db.upgrade()
    token = env.get("IHOOK_ADMIN_TOKEN") or _admin_token(platform, data_dir / "admin_token")
    platform.close()
    me = [sys.executable, "-m", "ihook"]
    children += [
        subprocess.Popen([*me, "api", "--bind", f"127.0.0.1:{port}"], env=env),
        subprocess.Popen([*me, "worker"], env=env),
        subprocess.Popen([*me, "scheduler"], env=env),
    ]
    click.echo(
        f"\nihook is up (data in {data_dir})\n"
        f"  API        http://127.0.0.1:{port}/api/v1   (Authorization: Bearer {token})\n"
        f"  API docs   http://127.0.0.1:{port}/api/docs\n"
        f"  webhooks   http://127.0.0.1:{port}/hooks/<endpoint key>\n"
        f"  database   {platform.settings.database_url}\n"
        f"  redis      {env['REDIS_URL']}\n"
        "Press Ctrl-C to stop.\n"
    )
    return _wait(children)


def _kept_secret(path: Path) -> str:
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _admin_token(platform: Platform, path: Path) -> str:
    # The token is stored hashed; the plain one is kept beside the data so `up` can print it.
    if path.exists():
        return path.read_text().strip()
    with platform.db.session() as session:
        _, token = create_token(session, "ihook up")
    path.write_text(token)
    path.chmod(0o600)
    return token


def _start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException(
            "redis-server is not installed: `sudo apt-get install redis-server` "
            "(or set REDIS_URL to a running Redis)"
        )
    sock = data_dir / "redis.sock"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if connect(url).ping():
                return proc, url
        except Exception:  # not listening yet
            time.sleep(0.1)
    proc.kill()
    raise click.ClickException(f"redis-server did not start on {sock}")


def _wait(children: list[subprocess.Popen[bytes]]) -> int:
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    status = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                click.echo(
                    f"{' '.join(map(str, child.args))} exited ({child.returncode})", err=True
                )
                stopping, status = True, 1
        time.sleep(0.2)
    for child in reversed(children):  # redis-server last: the others flush to it
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
    return status
