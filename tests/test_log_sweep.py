"""The log sweep finds each kind of secret and lets redacted values through."""

from __future__ import annotations

from tests.log_sweep import found_in


def test_each_kind_of_secret_is_found():
    assert found_in(
        [
            "sent with secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "headers {'authorization': 'Bearer abcdefgh12345678'}",
            "Authorization: Basic bG1zOnNlY3JldA==",
            '"POST /hooks/k3y0fAnEndpoint12345678 HTTP/1.1" 202',
        ]
    ) == [
        "a whsec_ secret",
        "an Authorization value",
        "a bearer or basic credential",
        "an Authorization value",
        "a bearer or basic credential",
        "an endpoint key",
    ]


def test_redacted_and_ordinary_lines_pass():
    assert not found_in(
        [
            "headers {'authorization': '[redacted]', 'x-api-key': '[redacted]'}",
            '"POST /hooks/[redacted] HTTP/1.1" 202',
            "authentication failed: missing Authorization header",
            "the endpoint uses Bearer auth",
            "re-encrypted 9 secret(s) under the first key",
        ]
    )
