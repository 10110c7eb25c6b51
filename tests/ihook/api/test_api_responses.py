"""The OpenAPI document declares the errors each operation really answers.

Found by ``tests/security/test_fuzzing.py``: operations answered 400 (malformed JSON),
401, 404, 409, 413 and 503 without declaring them (only flask-smorest's ``default``).
"""

from __future__ import annotations

from ihook.api.responses import response_name


def _responses(client, path: str, method: str) -> set[str]:
    spec = client.raw.get("/api/openapi.json").json
    return set(spec["paths"][path][method]["responses"])


def test_each_operation_declares_its_errors(client):
    assert {"400", "401", "409", "413", "422"} <= _responses(client, "/api/v1/endpoints", "post")
    by_id = "/api/v1/endpoints/{endpoint_id}"
    assert {"401", "404"} <= _responses(client, by_id, "get")
    assert {"401", "404", "409"} <= _responses(client, by_id, "patch")
    retry = _responses(client, "/api/v1/deliveries/{delivery_id}/retry", "post")
    assert {"404", "409"} <= retry
    assert "503" in _responses(client, "/api/v1/pollers/{poller_id}/poll-now", "post")
    health = _responses(client, "/api/v1/health", "get")
    assert "401" not in health and "503" in health  # no token needed


def test_the_declared_errors_are_the_ones_answered(client, settings):
    spec = client.raw.get("/api/openapi.json").json
    assert response_name(413) in spec["components"]["responses"]
    assert client.raw.get("/api/v1/endpoints").status_code == 401
    assert client.get("/api/v1/endpoints/ep_missing").status_code == 404
    malformed = client.post(
        "/api/v1/endpoints", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    big = b'{"name": "' + b"x" * settings.max_body_bytes + b'"}'
    too_big = client.post("/api/v1/events", data=big, headers={"Content-Type": "application/json"})
    assert too_big.status_code == 413
    body = {"name": "e", "auth": {"type": "none"}}
    assert client.post("/api/v1/endpoints", json=body).status_code == 201
    assert client.post("/api/v1/endpoints", json=body).status_code == 409
