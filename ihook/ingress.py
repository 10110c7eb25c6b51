"""``POST /hooks/{key}``: where external systems' callbacks land.

The answer is given only after the event and its queued runs are committed; jobs are
enqueued after the commit, and if Redis is down the sweeper enqueues them later. Every
refusal has its own status and reason (DESIGN.md §3) and is logged without secrets.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import jmespath
from flask import Blueprint, Response, g, jsonify, request
from jmespath.exceptions import JMESPathError
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.formparser import parse_form_data

from ihook.api.context import platform
from ihook.ids import new_id
from ihook.ingress_auth import AuthFailed, check_ip, secret_header_names, verify_request
from ihook.models import FINISHED, Endpoint, Rejection, Run
from ihook.routing import ConfigChanged, read_generation, snapshot_of
from ihook.secrets import SecretError, hash_token, redact_headers
from ihook.services.endpoints import current_secrets
from ihook.services.events import store_event
from ihook.storable import REASON, storable, unstorable_at

log = logging.getLogger(__name__)

bp = Blueprint("ingress", __name__)

DEFAULT_EVENT_TYPE = "webhook.received"
"""Event type when the endpoint names no ``event_type`` expression."""
SYNC_POLL = 0.05
"""Seconds between two looks at a sync endpoint's runs."""
MAX_TYPE_LENGTH = 200
"""Longest event type (the column's size)."""
MAX_DEDUPE_LENGTH = 200
"""Longer dedupe keys are stored as their SHA-256, which fits the column and stays unique."""


class Refused(Exception):
    """Raised inside ingress to answer with an error status and reason."""

    def __init__(self, status: int, message: str, errors: Any = None, headers: Any = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers


@bp.post("/hooks/<key>")
def receive(key: str) -> Response | tuple[Response, int]:
    """Accept one webhook for the endpoint whose key is in the URL.

    The endpoint is looked up in this process's last configuration snapshot, without a
    query; the transaction that stores the event checks that the configuration is still
    that one, and a refusal is only given once the snapshot is known to be current. When
    the configuration has changed, the webhook is checked again against the new one.
    """
    p = platform()
    key_hash = hash_token(key)
    snapshot = p.db.routing.last()
    if snapshot is not None:
        try:
            return _receive(snapshot.endpoint(key_hash), snapshot.generation)
        except (ConfigChanged, Outdated):
            pass
    try:
        with p.db.read() as session:
            endpoint = snapshot_of(session).endpoint(key_hash)
    except SQLAlchemyError as exc:
        log.error("ingress: database unavailable: %s", exc)
        return _answer(Refused(503, "the database cannot take events right now"))
    return _receive(endpoint, None)


class Outdated(Exception):
    """A refusal was decided with a snapshot the configuration has moved on from."""


def _receive(endpoint: Endpoint | None, generation: int | None) -> tuple[Response, int]:
    """Accept or refuse with ``endpoint`` as the snapshot of ``generation`` holds it.

    ``generation`` None: the snapshot was read for this request and is used as it is.
    Otherwise the event is stored only if that is still the configuration
    (``ConfigChanged``), and a refusal is given only if it still is (``Outdated``).
    """
    try:
        if endpoint is None or not endpoint.enabled:
            raise Refused(404, "no such endpoint")
        return _accept(endpoint, generation)
    except Refused as refused:
        if generation is not None and _changed_since(generation):
            raise Outdated from None
        if endpoint is not None and refused.status not in (404, 429):
            _log_rejection(endpoint, refused)
        return _answer(refused)


def _changed_since(generation: int) -> bool:
    """Whether the configuration moved on from ``generation`` (False if it cannot be read)."""
    try:
        with platform().db.read() as session:
            return read_generation(session) != generation
    except SQLAlchemyError:
        return False


def _body() -> bytes:
    """The request's body, read once, at most the configured size (else 413)."""
    body = g.get("ihook_body")
    if body is None:
        limit = platform().settings.max_body_bytes
        if (request.content_length or 0) > limit:
            raise Refused(413, f"body larger than {limit} bytes")
        body = request.stream.read(limit + 1)
        if len(body) > limit:
            raise Refused(413, f"body larger than {limit} bytes")
        g.ihook_body = body
    return body


def _accept(endpoint: Endpoint, generation: int | None) -> tuple[Response, int]:
    p = platform()
    body = _body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    if endpoint.allow_ips and not check_ip(endpoint.allow_ips, request.remote_addr or ""):
        raise Refused(401, f"source address {request.remote_addr} is not allowed")
    if endpoint.rate_limit:
        wait = p.limiter.hit(
            endpoint.id,
            limit=endpoint.rate_limit["requests"],
            window=endpoint.rate_limit["per_seconds"],
        )
        if wait:
            raise Refused(429, "rate limit exceeded", headers={"Retry-After": str(wait)})
    try:
        secrets = current_secrets(endpoint, p.vault)
    except SecretError:
        log.error(
            "ingress: cannot decrypt the secret of %s (IHOOK_SECRET_KEY changed?)", endpoint.name
        )
        raise Refused(503, "this endpoint's secret cannot be read; the operator is told") from None
    try:
        verify_request(endpoint.auth, secrets, headers, body)
    except AuthFailed as exc:
        raise Refused(401, f"authentication failed: {exc.reason}") from None
    data = _parse(headers.get("content-type", ""), body)
    _refuse_unstorable(headers, body, data)
    if endpoint.schema is not None:
        _validate(endpoint, data)
    scope = {"headers": headers, "data": data}
    event_type = _evaluate(endpoint.event_type, scope, "event_type") or DEFAULT_EVENT_TYPE
    if len(event_type) > MAX_TYPE_LENGTH:
        raise Refused(422, f"event type longer than {MAX_TYPE_LENGTH} characters")
    dedupe_key = _evaluate(endpoint.dedupe, scope, "dedupe")
    if dedupe_key is not None and len(dedupe_key) > MAX_DEDUPE_LENGTH:
        dedupe_key = "sha256:" + hashlib.sha256(dedupe_key.encode()).hexdigest()
    try:
        accepted = store_event(
            p.db,
            type=event_type,
            source=f"endpoint:{endpoint.name}",
            data=data,
            headers=redact_headers(headers, secret_header_names(endpoint.auth)),
            endpoint_id=endpoint.id,
            dedupe_key=dedupe_key,
            generation=generation,
        )
    except SQLAlchemyError as exc:
        log.error("ingress: could not store event for %s: %s", endpoint.name, exc)
        raise Refused(503, "the database cannot take events right now") from None
    if accepted.duplicate:
        return jsonify(event_id=accepted.event_id, duplicate=True), 200
    p.dispatch(accepted)
    if endpoint.response_mode == "sync" and accepted.run_ids:
        return _wait_for_runs(accepted.event_id, accepted.run_ids, endpoint.sync_timeout)
    return jsonify(event_id=accepted.event_id, runs=accepted.run_ids), 202


def _parse(content_type: str, body: bytes) -> Any:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Refused(400, f"malformed JSON body: {exc}") from None
    if mime == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError) as exc:
            raise Refused(400, f"malformed form body: {exc}") from None
        return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}
    if mime == "multipart/form-data":
        # The stream was read for the signature; parse the same bytes again.
        environ = {
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": content_type,
            "REQUEST_METHOD": "POST",
        }
        _, form, files = parse_form_data(environ)
        if files:
            raise Refused(415, "file uploads are not accepted; send the fields only")
        return {name: values[0] if len(values) == 1 else values for name, values in form.lists()}
    raise Refused(
        415,
        f"content type {mime or '(none)'!r} is not accepted; send application/json or a form",
    )


def _refuse_unstorable(headers: dict[str, str], body: bytes, data: Any) -> None:
    """400/422 for a header or body the database cannot store (``ihook.storable``).

    Before, such a request reached the database and was answered 503, as if the
    database were down: the sender would retry, forever, what can never be stored.
    Parsed text can only hold such a character if the body has a NUL byte, a ``\\u``
    escape (JSON) or a ``%`` escape (a form); other bodies are not walked.
    """
    if not storable("".join(headers)) or not storable("".join(headers.values())):
        where = unstorable_at(headers)
        raise Refused(400, f"header {where!r} {REASON}")
    if b"\\u" not in body and b"\x00" not in body and b"%" not in body:
        return
    where = unstorable_at(data)
    if where is not None:
        raise Refused(422, f"the body at {where or '<body>'!r} {REASON}")


NO_REMOTE_REFS = Registry()
"""Schemas reach what they hold and the meta-schemas; a remote ``$ref`` is never fetched."""

# Compiled per endpoint and kept until the endpoint changes: compiling is the costly part.
_validators: dict[str, tuple[datetime, Draft202012Validator]] = {}


def _validate(endpoint: Endpoint, data: Any) -> None:
    cached = _validators.get(endpoint.id)
    if cached is None or cached[0] != endpoint.updated_at:
        cached = _validators[endpoint.id] = (
            endpoint.updated_at,
            Draft202012Validator(endpoint.schema or {}, registry=NO_REMOTE_REFS),
        )
    validator = cached[1]
    problems: dict[str, list[str]] = {}
    try:
        for error in validator.iter_errors(data):
            path = ".".join(str(part) for part in error.absolute_path) or "<body>"
            problems.setdefault(path, []).append(error.message)
    except Unresolvable as exc:  # a remote $ref: never fetched from here
        raise Refused(422, f"the endpoint's schema refers to {exc.ref!r}, not found") from None
    if problems:
        raise Refused(422, "body does not match the endpoint's schema", {"json": problems})


def _evaluate(expression: str | None, scope: dict[str, Any], field: str) -> str | None:
    if not expression:
        return None
    try:
        value = jmespath.search(expression, scope)
    except JMESPathError as exc:
        raise Refused(422, f"{field} expression failed: {exc}") from None
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _wait_for_runs(event_id: str, run_ids: list[str], timeout: float) -> tuple[Response, int]:
    p = platform()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with p.db.session() as session:
            runs = list(session.scalars(select(Run).where(Run.id.in_(run_ids)).order_by(Run.id)))
        if all(run.status in FINISHED for run in runs):
            return _sync_answer(event_id, run_ids, runs)
        time.sleep(SYNC_POLL)
    return jsonify(event_id=event_id, runs=run_ids), 202


def _sync_answer(event_id: str, run_ids: list[str], runs: list[Run]) -> tuple[Response, int]:
    """The first run's ``respond`` answer, or its status and output when it gave none."""
    first = runs[0]
    answer = first.response
    if not isinstance(answer, dict):
        body = {
            "event_id": event_id,
            "runs": run_ids,
            "status": first.status,
            "output": first.output,
        }
        return jsonify(body), 200
    response = jsonify(answer.get("body"))
    for name, value in (answer.get("headers") or {}).items():
        if name.lower() not in ("content-length", "content-type", "transfer-encoding"):
            response.headers[name] = value
    return response, int(answer.get("status") or 200)


def _answer(refused: Refused) -> tuple[Response, int]:
    body: dict[str, Any] = {
        "code": refused.status,
        "status": HTTPStatus(refused.status).phrase,
        "message": refused.message,
    }
    if refused.errors:
        body["errors"] = refused.errors
    response = jsonify(body)
    for name, value in (refused.headers or {}).items():
        response.headers[name] = value
    return response, refused.status


def _log_rejection(endpoint: Endpoint, refused: Refused) -> None:
    headers = {name.lower(): value for name, value in request.headers.items()}
    log.info("ingress: %s refused %d: %s", endpoint.name, refused.status, refused.message)
    try:
        with platform().db.session() as session:
            session.add(
                Rejection(
                    id=new_id("rej"),
                    endpoint_id=endpoint.id,
                    status=refused.status,
                    reason=refused.message,
                    remote_addr=request.remote_addr,
                    headers=redact_headers(headers, secret_header_names(endpoint.auth)),
                )
            )
    except SQLAlchemyError as exc:
        log.warning("could not log rejection: %s", exc)
