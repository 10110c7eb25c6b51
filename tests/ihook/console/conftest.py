"""Fixtures of the console's tests: clients signed in or not, and stored tokens."""

from __future__ import annotations

import pytest

from tests.ihook.console.support import Console


@pytest.fixture
def browser(app) -> Console:
    """A console client not signed in."""
    return Console(app.test_client())


@pytest.fixture
def ui(browser) -> Console:
    """A console client signed in with the admin token."""
    answer = browser.sign_in()
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return browser


def make_token(client, *scopes: str, **fields) -> dict:
    """A stored API token (with its one-time value) created through the API."""
    made = client.post("/api/v1/tokens", json={"name": "console", "scopes": list(scopes), **fields})
    assert made.status_code == 201, made.json
    return made.json


@pytest.fixture
def token(client):
    """Make a stored API token with some scopes: ``token("read")``."""
    return lambda *scopes, **fields: make_token(client, *scopes, **fields)
