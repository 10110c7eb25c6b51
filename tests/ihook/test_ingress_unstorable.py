"""A webhook whose body holds U+0000 or an unpaired surrogate is refused with 422.

Found by ``tests/security/test_fuzzing.py``: PostgreSQL stores neither, and the event
failed in the database, answered 503 "the database cannot take events right now" while
the database was up, so a sender would retry for ever what can never be stored.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from ihook.models import Event

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "content_type", "where"),
    [
        (b'{"a": "x\\u0000y"}', "application/json", "'a'"),
        (b'{"a": ["ok", "\\ud800"]}', "application/json", "'a.1'"),
        (b'{"k\\u0000": 1}', "application/json", "'k\\x00'"),
        (b'"\\u0000"', "application/json", "'<body>'"),
        (b"a=%00", FORM, "'a'"),
    ],
)
def test_an_unstorable_body_is_422_and_stores_nothing(client, platform, body, content_type, where):
    created = client.post("/api/v1/endpoints", json={"name": "e", "auth": {"type": "none"}})
    path = "/hooks/" + created.json["ingest_url"].rsplit("/", 1)[1]
    answer = client.raw.post(path, data=body, headers={"Content-Type": content_type})
    assert answer.status_code == 422, answer.json
    assert answer.json["message"] == (
        f"the body at {where} holds U+0000 or an unpaired surrogate, which cannot be stored"
    )
    with platform.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0
    assert client.raw.post(path, json={"a": "x"}).status_code == 202  # the endpoint works
