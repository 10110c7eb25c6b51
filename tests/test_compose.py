"""docker-compose.yml runs the CLI's processes on Redis (append-only) and PostgreSQL."""

from __future__ import annotations

from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
APP_SERVICES = ("api", "worker", "scheduler", "migrate")
CLI_COMMANDS = {"api", "worker", "scheduler", "db upgrade"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def command_of(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def subcommand_of(service: dict[str, Any]) -> str:
    """The CLI subcommand a service runs, without its options (`api --bind …` → `api`)."""
    words = command_of(service).split()
    return " ".join(takewhile(lambda word: not word.startswith("-"), words))


def test_all_services_are_declared(services: dict[str, Any]) -> None:
    assert {"redis", "postgres", *APP_SERVICES} <= services.keys()


def test_redis_keeps_an_append_only_file(services: dict[str, Any]) -> None:
    assert "--appendonly yes" in command_of(services["redis"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_run_a_cli_command(services: dict[str, Any], name: str) -> None:
    assert subcommand_of(services[name]) in CLI_COMMANDS


@pytest.mark.parametrize("name", ["api", "worker", "scheduler"])
def test_app_services_start_after_the_migration(services: dict[str, Any], name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
