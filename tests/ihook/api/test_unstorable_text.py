"""U+0000 and unpaired surrogates (found by ``tests/security/test_fuzzing.py``).

PostgreSQL stores neither: before, a path, query argument or JSON body holding one
failed in the database and was answered 500. Now the path is a 404, the argument or
body field a 422 naming it; nothing is stored.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/connectors/a%00",
        "/api/v1/events/a%00",
        "/api/v1/event-types/a%00",
        "/api/v1/records/a%00",
        "/api/v1/records/a/b%00",
        "/api/v1/workflows/%00",
    ],
)
def test_an_unstorable_path_is_404(client, path):
    answer = client.get(path)
    assert answer.status_code == 404, answer.json
    assert "U+0000 or an unpaired surrogate" in answer.json["message"]


@pytest.mark.parametrize("query", ["after=%00", "type=a%00", "source=x%00y"])
def test_an_unstorable_query_argument_is_422_naming_it(client, query):
    answer = client.get(f"/api/v1/events?{query}")
    assert answer.status_code == 422, answer.json
    assert list(answer.json["errors"]["query"]) == [query.split("=")[0]]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/events", b'{"type": "a", "data": {"x": ["ok", "\\u0000"]}}', "data.x.1"),
        ("/api/v1/events", b'{"type": "a\\u0000", "data": {}}', "type"),
        ("/api/v1/events", b'{"type": "a", "data": {"\\ud800": 1}}', "data.\ud800"),
        ("/api/v1/endpoints", b'{"name": "e", "description": "\\u0000"}', "description"),
    ],
)
def test_an_unstorable_body_field_is_422_naming_it(client, path, body, field):
    answer = client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.json
    assert list(answer.json["errors"]["json"]) == [field]
    assert client.get(path).json == []  # nothing stored
