"""Settings read from the environment, in one place.

Nothing else in ihook reads ``os.environ``: ``Settings.from_env()`` is called at the
edges (CLI, WSGI entry point) and the result is passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_DATA_DIR = "./.ihook"
"""Where ``ihook up`` keeps its database, Redis files and secret key."""
DEFAULT_MAX_BODY_BYTES = 1_048_576
"""Ingress body cap (1 MiB)."""
DEFAULT_RUN_TIMEOUT = 300
"""Seconds a run may stay ``running`` before the sweeper decides its worker died."""
DEFAULT_MAX_ATTEMPTS = 5
"""Attempts of a run (retryable failures, lost workers) before it fails for good."""
DEFAULT_SWEEP_GRACE = 10
"""Seconds a run may stay ``queued`` with no job in Redis before the sweeper enqueues it."""
DEFAULT_QUEUE = "ihook"
"""The RQ queue runs go to (deliveries go to ``<queue>-deliveries``)."""
DEFAULT_DELIVERY_TIMEOUT = 15
"""Seconds a receiver has to answer a delivery with a 2xx."""
DEFAULT_DISABLE_AFTER = 5 * 24 * 3600
"""Seconds a subscription may keep failing before it is disabled (5 days)."""
DEFAULT_RETENTION_DAYS = 30
"""Days finished runs, deliveries, polls and their events are kept (0: for ever)."""

_TRUE = {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """Raised when an environment variable holds a value that cannot be used."""


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name)
    return default if value in (None, "") else value.strip().lower() in _TRUE


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one ihook install."""

    database_url: str
    redis_url: str | None = None
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    secret_keys: tuple[str, ...] = ()
    admin_token: str | None = None
    allow_private_networks: bool = False
    allow_http: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    run_timeout: int = DEFAULT_RUN_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    sweep_grace: int = DEFAULT_SWEEP_GRACE
    queue_name: str = DEFAULT_QUEUE
    public_url: str = "http://127.0.0.1:8000"
    delivery_timeout: int = DEFAULT_DELIVERY_TIMEOUT
    disable_after: int = DEFAULT_DISABLE_AFTER
    alert_connector: str | None = None
    """The smtp connector that sends failed-delivery e-mails (default: the only one)."""
    retention_days: int = DEFAULT_RETENTION_DAYS
    """Days history is kept before the scheduler's clean-up removes it; 0 keeps everything."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("IHOOK_DATA_DIR") or DEFAULT_DATA_DIR)
        database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir.resolve()}/ihook.db"
        keys = tuple(k.strip() for k in (env.get("IHOOK_SECRET_KEY") or "").split(",") if k.strip())
        retention_days = _int(env, "IHOOK_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
        if retention_days < 0:
            raise SettingsError(f"IHOOK_RETENTION_DAYS must be 0 or more, got {retention_days}")
        return cls(
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            data_dir=data_dir,
            secret_keys=keys,
            admin_token=env.get("IHOOK_ADMIN_TOKEN") or None,
            allow_private_networks=_flag(env, "IHOOK_ALLOW_PRIVATE_NETWORKS"),
            allow_http=_flag(env, "IHOOK_ALLOW_HTTP"),
            max_body_bytes=_int(env, "IHOOK_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            run_timeout=_int(env, "IHOOK_RUN_TIMEOUT", DEFAULT_RUN_TIMEOUT),
            max_attempts=_int(env, "IHOOK_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS),
            sweep_grace=_int(env, "IHOOK_SWEEP_GRACE", DEFAULT_SWEEP_GRACE),
            queue_name=env.get("IHOOK_QUEUE") or DEFAULT_QUEUE,
            public_url=(env.get("IHOOK_PUBLIC_URL") or "http://127.0.0.1:8000").rstrip("/"),
            delivery_timeout=_int(env, "IHOOK_DELIVERY_TIMEOUT", DEFAULT_DELIVERY_TIMEOUT),
            disable_after=_int(env, "IHOOK_DISABLE_AFTER", DEFAULT_DISABLE_AFTER),
            alert_connector=env.get("IHOOK_ALERT_CONNECTOR") or None,
            retention_days=retention_days,
        )

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests, ``ihook up``)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def require_secret_keys(self) -> tuple[str, ...]:
        """The encryption keys, or a clear error when none is configured."""
        if not self.secret_keys:
            raise SettingsError(
                "IHOOK_SECRET_KEY is not set: it encrypts secrets at rest "
                "(`ihook up` generates one into its data directory)"
            )
        return self.secret_keys

    def require_redis_url(self) -> str:
        """The Redis URL, or a clear error when none is configured."""
        if not self.redis_url:
            raise SettingsError("REDIS_URL is not set (`ihook up` starts a local redis-server)")
        return self.redis_url
