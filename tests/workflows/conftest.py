"""Fixtures for engine tests: an in-memory record store, resources, a local HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from connectors import RecordsConnector
from connectors.outbound import OutboundPolicy
from tests.support import MemoryStore
from workflows import Resources, RunResult, run_workflow, validate_definition


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def resources(store: MemoryStore) -> Resources:
    return Resources(
        connectors={"records": RecordsConnector(store)},
        outbound=OutboundPolicy(allow_private=True),
    )


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def server(http_server: HTTPServer) -> Iterator[HTTPServer]:
    """The session's local HTTP server, cleared after each test."""
    yield http_server
    http_server.clear()


RunSteps = Callable[..., RunResult]
"""What the run_steps fixture returns."""


@pytest.fixture
def run_steps(resources: Resources) -> RunSteps:
    """Validate a definition made of ``steps`` and run it for an event with ``data``."""

    def run(steps: list[dict[str, Any]], data: Any = None, **kwargs: Any) -> RunResult:
        kinds = {name: conn.kind for name, conn in resources.connectors.items()}
        definition = validate_definition({"name": "test", "steps": steps}, connectors=kinds)
        event = {"id": "evt_1", "type": "test", "source": "test", "data": data, "headers": {}}
        return run_workflow(definition, event, resources=resources, **kwargs)

    return run
