"""The ``ihook`` command: processes (api, worker, scheduler, up) and admin tasks."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

import click
from redis.exceptions import RedisError

from ihook import __version__
from ihook.platform import Platform
from ihook.settings import Settings, SettingsError

if TYPE_CHECKING:
    from ihook.errors import IhookError


def _platform() -> Platform:
    try:
        return Platform(Settings.from_env())
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(__version__, prog_name="ihook")
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level.")
def main(log_level: str) -> None:
    """ihook: incoming, outgoing and polling webhooks with workflows."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every URL at INFO; URLs may carry credentials in their query strings.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="host:port to serve.")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option(
    "--threads",
    default=1,
    show_default=True,
    envvar="IHOOK_API_THREADS",
    help="Threads per worker (more than 1: gunicorn's gthread workers).",
)
def api(bind: str, workers: int, threads: int) -> None:
    """Serve the API and /hooks/{key} with gunicorn."""
    args = ["gunicorn", "--bind", bind, "--workers", str(workers), "--threads", str(threads)]
    args += ["--access-logfile", "-", "--logger-class", "ihook.accesslog.RedactingLogger"]
    os.execvp(sys.executable, [sys.executable, "-m", *args, "ihook.wsgi:app"])


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@click.option("--fork", is_flag=True, help="Run each job in a forked child (RQ's Worker).")
def worker(burst: bool, fork: bool) -> None:
    """Execute queued runs and deliveries (an RQ worker with RQ's scheduler for retries)."""
    from ihook import jobs
    from ihook.worker import IhookForkingWorker, IhookWorker, relay_stop_to_horses
    from workflows.plugins import load_plugins

    p = _platform()
    load_plugins()
    jobs.use_platform(p)
    worker_class = IhookForkingWorker if fork else IhookWorker
    relay_stop_to_horses()

    while True:
        rq_worker = None
        try:
            queues = [p.queue.queue, p.deliveries.queue, p.polls.queue]
            rq_worker = worker_class(queues, connection=p.redis)
            rq_worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
        except RedisError as exc:
            logging.getLogger(__name__).warning("Redis unavailable: %s", exc)
        stopping = rq_worker is not None and rq_worker._shutdown_requested_date is not None
        if burst or stopping:
            return  # done, or asked to stop (SIGTERM / Ctrl-C)
        # RQ's worker quits when Redis goes away; runs wait safely in the database, so
        # start a new one once Redis answers again rather than leave the host without one.
        logging.getLogger(__name__).warning("worker stopped unexpectedly; restarting in 1 s")
        time.sleep(1)


@main.command()
@click.option("--interval", default=1.0, show_default=True, help="Seconds between ticks.")
def scheduler(interval: float) -> None:
    """Fire scheduled workflows; sweep runs left queued or stuck, so nothing is lost."""
    from ihook.scheduler import run_forever

    run_forever(_platform(), interval=interval)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the migrations."""
    _platform().db.upgrade()
    click.echo("database is up to date")


@main.group()
def secrets() -> None:
    """Secrets at rest."""


@secrets.command("reencrypt")
def secrets_reencrypt() -> None:
    """Re-encrypt every stored secret under the first IHOOK_SECRET_KEY (after a key change)."""
    from ihook.secrets import SecretError
    from ihook.services.rekey import reencrypt_all

    p = _platform()
    try:
        with p.db.session() as session:
            count = reencrypt_all(session, p.vault)
    except SecretError as exc:
        raise click.ClickException(f"{exc}; nothing was changed") from None
    click.echo(f"re-encrypted {count} secret(s) under the first key")


@main.group()
def token() -> None:
    """Management API tokens."""


@token.command("create")
@click.option("--name", default="admin", show_default=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("admin",),
    show_default=True,
    type=click.Choice(["read", "publish", "write", "admin"]),
    help="What the token may do; repeat for more than one.",
)
@click.option("--expires-in-days", type=click.IntRange(min=1), help="Refused after this many days.")
def token_create(name: str, scopes: tuple[str, ...], expires_in_days: int | None) -> None:
    """Create a token and print it (shown this once)."""
    from datetime import timedelta

    from ihook.models import utcnow
    from ihook.services.tokens import create_token

    p = _platform()
    p.db.upgrade()  # a fresh install may create its first token before anything else
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    with p.db.session() as session:
        _, value = create_token(session, name, scopes, expires)
    click.echo(value)


@token.command("list")
def token_list() -> None:
    """List tokens: id, name, scopes, last use, expiry, revocation (never their values)."""
    from ihook.services.tokens import list_tokens

    with _platform().db.read() as session:
        for row in list_tokens(session):
            used = row.last_used_at.isoformat() if row.last_used_at else "never used"
            state = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
            expiry = f"expires {row.expires_at.isoformat()}" if row.expires_at else "no expiry"
            scopes = ",".join(row.scopes)
            click.echo(f"{row.id}\t{row.name}\t{scopes}\t{used}\t{expiry}\t{state}")


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token by id: refused from its next request on."""
    from ihook.errors import IhookError
    from ihook.services.tokens import revoke_token

    try:
        with _platform().db.session() as session:
            revoke_token(session, token_id)
    except IhookError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"revoked {token_id}")


@main.group()
def user() -> None:
    """Console users: sign in to the web console with a user name and a password."""


def _new_password(from_stdin: bool) -> str:
    """A password from one line of stdin, or typed twice at a prompt that does not echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _refused(exc: IhookError) -> click.ClickException:
    """A service's refusal as the command's error, each field's reasons on the line."""
    reasons = "; ".join(f"{field}: {', '.join(map(str, why))}" for field, why in exc.errors.items())
    return click.ClickException(f"{exc.message}: {reasons}" if reasons else exc.message)


PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
"""The option of commands that take a password without a prompt (scripts)."""


@user.command("create")
@click.argument("username")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("read",),
    show_default=True,
    type=click.Choice(["read", "publish", "write", "admin"]),
    help="What the user may do; repeat for more than one. The console needs read.",
)
@click.option("--display-name", help="How the console names the user.")
@PASSWORD_STDIN
def user_create(
    username: str, scopes: tuple[str, ...], display_name: str | None, password_stdin: bool
) -> None:
    """Create a user; the password is asked for twice (or read from stdin)."""
    from ihook.errors import IhookError
    from ihook.services.users import create_user

    password = _new_password(password_stdin)
    p = _platform()
    p.db.upgrade()  # a fresh install may create its first user before anything else
    try:
        with p.db.session() as session:
            row = create_user(session, username, password, scopes, display_name)
    except IhookError as exc:
        raise _refused(exc) from None
    click.echo(f"created user {row.username} ({row.id})")


@user.command("list")
def user_list() -> None:
    """List users: id, name, display name, scopes, enabled, last sign-in (never passwords)."""
    from ihook.services.users import list_users

    with _platform().db.read() as session:
        for row in list_users(session):
            signed = row.last_sign_in_at.isoformat() if row.last_sign_in_at else "never signed in"
            state = "enabled" if row.enabled else "disabled"
            scopes = ",".join(row.scopes)
            shown = row.display_name or "-"
            click.echo(f"{row.id}\t{row.username}\t{shown}\t{scopes}\t{state}\t{signed}")


def _change_user(username: str, changes: dict[str, object]) -> str:
    """Apply ``changes`` to the user named ``username``; its name as stored."""
    from ihook.errors import IhookError
    from ihook.services.users import find_user, update_user

    try:
        with _platform().db.session() as session:
            return update_user(session, find_user(session, username).id, changes).username
    except IhookError as exc:
        raise _refused(exc) from None


@user.command("set-password")
@click.argument("username")
@PASSWORD_STDIN
def user_set_password(username: str, password_stdin: bool) -> None:
    """Give a user a new password; its console sessions are signed out."""
    name = _change_user(username, {"password": _new_password(password_stdin)})
    click.echo(f"password of {name} changed")


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable a user: no sign-in, and its console sessions are signed out."""
    click.echo(f"disabled {_change_user(username, {'enabled': False})}")


@user.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    """Enable a disabled user again (sessions signed out by the disabling stay out)."""
    click.echo(f"enabled {_change_user(username, {'enabled': True})}")


@user.command("delete")
@click.argument("username")
def user_delete(username: str) -> None:
    """Delete a user; its console sessions end at their next page."""
    from ihook.errors import IhookError
    from ihook.services.users import delete_user, find_user

    try:
        with _platform().db.session() as session:
            row = find_user(session, username)
            name = row.username
            delete_user(session, row.id)
    except IhookError as exc:
        raise _refused(exc) from None
    click.echo(f"deleted {name}")


@main.command("apply")
@click.option(
    "-f", "--file", "path", required=True, type=click.Path(exists=True), help="YAML file or dir."
)
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; change nothing.")
def apply_definitions(path: str, dry_run: bool) -> None:
    """Create or update connectors and workflows from YAML definitions (idempotent)."""
    from ihook.errors import IhookError
    from ihook.secrets import SecretError
    from ihook.services.manifests import apply, error_lines, load_documents
    from workflows.plugins import load_plugins

    p = _platform()
    p.db.upgrade()
    load_plugins()  # plugin step types and connectors must be known to validate against
    try:
        docs = load_documents(path)
        with p.db.sessions() as session:
            # ${NAME} references in the files are the operator's environment, read here at
            # the edge and passed down like settings.
            changes = apply(session, p.vault, docs, dict(os.environ))
            session.rollback() if dry_run else session.commit()
    except IhookError as exc:
        click.echo(f"error: {exc.message}", err=True)
        for line in error_lines(exc.errors):
            click.echo(f"  {line}", err=True)
        sys.exit(1)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from None
    if not changes:
        click.echo(f"nothing to apply in {path}")
    for change in changes:
        click.echo(str(change))
    if dry_run:
        click.echo("dry run: nothing was applied")


@main.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File (default: stdout).")
def export_definitions(output: str | None) -> None:
    """Write every connector (secrets left out) and workflow as YAML for `ihook apply`."""
    from ihook.services.manifests import export

    p = _platform()
    p.db.upgrade()
    with p.db.session() as session:
        text = export(session)
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as file:
        file.write(text)
    click.echo(f"exported to {output}")


@main.command()
def plugins() -> None:
    """List step and connector plugins: where each came from, what it provides or why not."""
    from workflows.plugins import load_plugins

    report = load_plugins()
    if not report:
        click.echo("no plugins installed (entry point groups ihook.steps, ihook.connectors)")
        return
    rows = [("GROUP", "NAME", "DISTRIBUTION", "PROVIDES")]
    for info in report:
        noun = "step" if info.group == "ihook.steps" else "connector"
        provides = f"{noun} {', '.join(info.provides)}" if info.ok else f"BROKEN: {info.error}"
        origin = f"{info.distribution or '?'} {info.version or ''}".strip()
        rows.append((info.group, info.name, origin, provides))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        click.echo("  ".join([*cells, row[3]]))


@main.command()
@click.option("--port", default=8000, show_default=True, help="API port on 127.0.0.1.")
def up(port: int) -> None:
    """Run everything on this machine: SQLite, a local redis-server, API, worker, scheduler."""
    from ihook.up import run_all

    sys.exit(run_all(port=port))
