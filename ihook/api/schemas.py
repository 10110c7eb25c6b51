"""Marshmallow schemas of the management API: what it takes and what it answers."""

from __future__ import annotations

import ipaddress
from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from ihook.ingress_auth import AUTH_TYPES, HMAC_SCHEMES
from ihook.services.event_types import NAME_PATTERN as EVENT_TYPE_NAME
from ihook.services.tokens import SCOPES

NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
    error="letters, digits, '_', '.', '-'; starting with a letter or digit; at most 100",
)


class AuthSchema(Schema):
    """How an endpoint authenticates callers. ``secret`` is write-only."""

    type = fields.Str(required=True, validate=validate.OneOf(AUTH_TYPES))
    scheme = fields.Str(validate=validate.OneOf(HMAC_SCHEMES), metadata={"description": "hmac"})
    username = fields.Str(metadata={"description": "basic: the user name"})
    header = fields.Str(metadata={"description": "header / hmac generic: the header name"})
    algorithm = fields.Str(validate=validate.OneOf(["sha256", "sha1", "sha512"]))
    encoding = fields.Str(validate=validate.OneOf(["hex", "base64"]))
    prefix = fields.Str(metadata={"description": "hmac generic: text before the digest"})
    secret = fields.Str(
        load_only=True,
        validate=validate.Length(min=8, max=500),
        metadata={"description": "the password / token / value / HMAC key; generated if absent"},
    )

    @validates_schema
    def _complete(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["type"]
        if kind == "hmac" and "scheme" not in data:
            raise ValidationError("hmac needs a scheme", "scheme")
        if kind == "basic" and not data.get("username"):
            raise ValidationError("basic needs a username", "username")
        needs_header = kind == "header" or data.get("scheme") == "generic"
        if needs_header and not data.get("header"):
            raise ValidationError("this auth needs a header name", "header")


class RateLimitSchema(Schema):
    """At most ``requests`` per ``per_seconds`` window; more are answered 429."""

    requests = fields.Int(required=True, validate=validate.Range(min=1))
    per_seconds = fields.Int(required=True, validate=validate.Range(min=1, max=86_400))


class EndpointSchema(Schema):
    """An incoming webhook endpoint."""

    id = fields.Str(dump_only=True)
    name = fields.Str(required=True, validate=NAME)
    description = fields.Str()
    enabled = fields.Bool()
    auth = fields.Nested(AuthSchema)
    allow_ips = fields.List(fields.Str(), metadata={"description": "CIDRs or addresses"})
    schema = fields.Dict(allow_none=True, metadata={"description": "JSON Schema of the body"})
    dedupe = fields.Str(allow_none=True, metadata={"description": "jmespath over {headers, data}"})
    event_type = fields.Str(
        allow_none=True, metadata={"description": "jmespath over {headers, data} naming the type"}
    )
    rate_limit = fields.Nested(RateLimitSchema, allow_none=True)
    response_mode = fields.Str(validate=validate.OneOf(["async", "sync"]))
    sync_timeout = fields.Float(validate=validate.Range(min=0.1, max=30))
    workflows = fields.List(fields.Str(), metadata={"description": "ids of triggered workflows"})
    key_hint = fields.Str(dump_only=True, metadata={"description": "first characters of the key"})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)

    @validates("allow_ips")
    def _ips(self, value: list[str], **_: Any) -> None:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValidationError(f"{item!r} is not an address or CIDR") from None


class EndpointPatchSchema(EndpointSchema):
    """Fields of an endpoint to change; the others keep their values.

    Only ``name`` stops being required: nested rules (auth, rate_limit) are still
    checked whole, so a change can never leave an endpoint half-configured.
    """

    name = fields.Str(validate=NAME)


class EndpointSecretsSchema(EndpointSchema):
    """An endpoint as created or rotated: the only answers that carry its key and secret."""

    ingest_url = fields.Str(dump_only=True)
    secret = fields.Str(dump_only=True)


class RotateSchema(Schema):
    """Rotation options; ``auth`` switches to another auth rule at the same time."""

    auth = fields.Nested(AuthSchema, metadata={"description": "a new auth rule (optional)"})
    secret = fields.Str(validate=validate.Length(min=8, max=500), load_only=True)
    grace_seconds = fields.Int(load_default=86_400, validate=validate.Range(min=0, max=30 * 86400))
    rotate_key = fields.Bool(load_default=False, metadata={"description": "also a new URL key"})


class ConnectorSchema(Schema):
    """A named connection; ``config`` follows its kind's schema (secrets write-only)."""

    id = fields.Str(dump_only=True)
    name = fields.Str(required=True, validate=NAME)
    kind = fields.Str(required=True, metadata={"description": "http"})
    config = fields.Dict(metadata={"description": "e.g. {base_url, auth, headers, timeout}"})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class ConnectorPatchSchema(Schema):
    """What may change: the name, and config fields (merged into the stored config)."""

    name = fields.Str(validate=NAME)
    config = fields.Dict()


class WorkflowSchema(Schema):
    """A workflow definition; saving a changed one makes a new version."""

    id = fields.Str(dump_only=True)
    name = fields.Str(required=True, validate=NAME)
    description = fields.Str()
    enabled = fields.Bool()
    trigger = fields.Dict()
    vars = fields.Dict()
    steps = fields.List(fields.Dict(), required=True)
    version = fields.Int(dump_only=True)
    endpoints = fields.List(fields.Str(), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class WorkflowPatchSchema(Schema):
    """Switch a workflow on or off without a new version."""

    enabled = fields.Bool(required=True)


class ListArgs(Schema):
    """Paging and time range shared by the lists."""

    since = fields.AwareDateTime(default_timezone=UTC, metadata={"description": "ISO-8601"})
    until = fields.AwareDateTime(default_timezone=UTC, metadata={"description": "exclusive"})
    after = fields.Str(metadata={"description": "resume after this id (the last one seen)"})
    limit = fields.Int(validate=validate.Range(min=1, max=1000))


class EventListArgs(ListArgs):
    """Filters of the event list."""

    type = fields.Str()
    source = fields.Str()
    environment = fields.Str(validate=validate.OneOf(["live", "sandbox"]))
    endpoint_id = fields.Str(metadata={"description": "only events this endpoint accepted"})


class RunListArgs(ListArgs):
    """Filters of the run list."""

    workflow_id = fields.Str()
    event_id = fields.Str()
    status = fields.Str(
        validate=validate.OneOf(["queued", "running", "succeeded", "failed", "skipped"])
    )


class EventSchema(Schema):
    """A stored event."""

    id = fields.Str()
    type = fields.Str()
    source = fields.Str()
    endpoint_id = fields.Str(allow_none=True)
    data = fields.Raw()
    headers = fields.Dict(metadata={"description": "as received, secrets redacted"})
    dedupe_key = fields.Str(allow_none=True)
    environment = fields.Str(dump_only=True, metadata={"description": "live or sandbox"})
    received_at = fields.DateTime()


class StepLogSchema(Schema):
    """One step of a run."""

    id = fields.Str()
    type = fields.Str()
    status = fields.Str()
    started_at = fields.Str(allow_none=True)
    finished_at = fields.Str(allow_none=True)
    duration_ms = fields.Float(allow_none=True)
    input = fields.Str(allow_none=True)
    output = fields.Str(allow_none=True)
    error = fields.Str(allow_none=True)
    truncated = fields.Bool()


class RunSchema(Schema):
    """A run of a workflow version for an event."""

    id = fields.Str()
    workflow_id = fields.Str()
    workflow_version = fields.Int()
    event_id = fields.Str()
    status = fields.Str()
    attempt = fields.Int()
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime(allow_none=True)
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    error = fields.Str(allow_none=True)
    failed_step = fields.Str(allow_none=True)
    output = fields.Raw(allow_none=True)
    response = fields.Raw(allow_none=True, metadata={"description": "set by a respond step"})


class RunDetailSchema(RunSchema):
    """A run with its step log."""

    steps = fields.List(fields.Nested(StepLogSchema))


class PublishSchema(Schema):
    """An event published through the API; workflows triggered by its type run.

    When the type is in the catalogue with a schema, ``data`` must meet it (422 otherwise).
    """

    type = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    data = fields.Raw(required=True, metadata={"description": "any JSON"})
    source = fields.Str(load_default="api", validate=validate.Length(min=1, max=200))
    id = fields.Str(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "idempotency key: a repeat stores nothing (200 duplicate)"},
    )
    idempotency_key = fields.Str(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "deprecated: the same as `id`", "deprecated": True},
    )
    environment = fields.Str(
        load_default="live",
        validate=validate.OneOf(["live", "sandbox"]),
        metadata={"description": "which subscriptions receive it"},
    )

    @validates_schema
    def _one_key(self, data: dict[str, Any], **_: Any) -> None:
        key, alias = data.get("id"), data.get("idempotency_key")
        if key is not None and alias is not None and key != alias:
            raise ValidationError("differs from idempotency_key (give one of them)", "id")


class ManualRunSchema(Schema):
    """The payload of a manual run: it becomes the event's ``data``."""

    data = fields.Raw(required=True, metadata={"description": "any JSON; `data` in expressions"})
    type = fields.Str(
        load_default="manual",
        validate=validate.Length(max=200),
        metadata={"description": "event type"},
    )


class QueuedSchema(Schema):
    """Runs queued by a replay or retry."""

    event_id = fields.Str()
    runs = fields.List(fields.Str())
    duplicate = fields.Bool()


class RejectionSchema(Schema):
    """A refused ingress request (secrets redacted)."""

    id = fields.Str()
    endpoint_id = fields.Str()
    at = fields.DateTime()
    status = fields.Int()
    reason = fields.Str()
    remote_addr = fields.Str(allow_none=True)
    headers = fields.Dict()


class RecordSchema(Schema):
    """A record of the built-in store."""

    collection = fields.Str()
    key = fields.Str()
    data = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class RecordListArgs(Schema):
    """Paging of a collection, in key order."""

    after = fields.Str(metadata={"description": "resume after this key"})
    limit = fields.Int(validate=validate.Range(min=1, max=1000))


class HealthSchema(Schema):
    """Whether the parts are up, and how much work waits."""

    status = fields.Str()
    database = fields.Str()
    redis = fields.Str()
    workers = fields.Int(allow_none=True)
    schedulers = fields.Int(
        allow_none=True,
        metadata={
            "description": "schedulers that ticked in the last 30 s (the sweeper runs in them)"
        },
    )
    scheduler_last_tick_seconds = fields.Float(
        allow_none=True, metadata={"description": "seconds since the newest tick; null: never"}
    )
    queue_depth = fields.Int(allow_none=True)
    queued_runs = fields.Int(allow_none=True)
    delivery_queue_depth = fields.Int(allow_none=True)
    pending_deliveries = fields.Int(allow_none=True)
    version = fields.Str()


class EventTypeSchema(Schema):
    """An event type of the catalogue: built-in (read-only) or your own."""

    name = fields.Str(
        required=True,
        metadata={
            "description": "e.g. `invoice.paid`; no `*`",
            "pattern": EVENT_TYPE_NAME,
            "maxLength": 200,
        },
    )
    description = fields.Str()
    schema = fields.Dict(
        allow_none=True, metadata={"description": "JSON Schema (draft 2020-12) of `data`"}
    )
    builtin = fields.Bool(dump_only=True)
    created_at = fields.DateTime(dump_only=True, allow_none=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)


class EventTypeUpdateSchema(Schema):
    """What may change in your own event type; the fields left out keep their values."""

    name = fields.Str(metadata={"description": "optional; must be the name in the URL"})
    description = fields.Str()
    schema = fields.Dict(
        allow_none=True, metadata={"description": "JSON Schema (draft 2020-12); null: none"}
    )


class SubscriptionAuthSchema(Schema):
    """How ihook authenticates to a subscription's receiver; password and token write-only."""

    type = fields.Str(required=True, validate=validate.OneOf(["none", "basic", "bearer"]))
    username = fields.Str(metadata={"description": "basic: the user name"})
    password = fields.Str(load_only=True, metadata={"description": "basic: the password"})
    token = fields.Str(load_only=True, metadata={"description": "bearer: the token"})


class SubscriptionSchema(Schema):
    """An outgoing webhook: which events go where, shaped and signed how.

    Rules beyond the types (URL, patterns, expressions, headers) are checked by the
    service, which names every field it refuses at once.
    """

    id = fields.Str(dump_only=True)
    name = fields.Str(required=True, metadata={"description": "unique, like endpoint names"})
    description = fields.Str()
    enabled = fields.Bool()
    environment = fields.Str(validate=validate.OneOf(["live", "sandbox"]))
    event_types = fields.List(
        fields.Str(), required=True, metadata={"description": "names or `*` patterns"}
    )
    filter = fields.Str(allow_none=True, metadata={"description": "jmespath over the event"})
    url = fields.Str(required=True, metadata={"description": "https (ports, query kept)"})
    auth = fields.Nested(SubscriptionAuthSchema)
    headers = fields.Dict(
        keys=fields.Str(),
        values=fields.Str(),
        metadata={"description": "custom headers; answers show each value as `***`"},
    )
    mapping = fields.Dict(
        keys=fields.Str(),
        values=fields.Str(),
        allow_none=True,
        metadata={"description": "{name: jmespath over the event}: the body's `data`"},
    )
    fixed_data = fields.Dict(allow_none=True, metadata={"description": "merged into `data`"})
    error_emails = fields.List(fields.Str(), metadata={"description": "told when one fails"})
    retry_schedule = fields.List(
        fields.Int(strict=True), metadata={"description": "seconds to wait before each attempt"}
    )
    disabled_reason = fields.Str(dump_only=True, allow_none=True)
    failing_since = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class SubscriptionPatchSchema(SubscriptionSchema):
    """Settings of a subscription to change; the others keep their values."""

    name = fields.Str()
    event_types = fields.List(fields.Str())
    url = fields.Str()


class SubscriptionSecretSchema(SubscriptionSchema):
    """A subscription as created or rotated: the only answers carrying its signing secret."""

    secret = fields.Str(dump_only=True, metadata={"description": "whsec_…, shown this once"})


class SubscriptionRotateSchema(Schema):
    """How long the rotated-out signing secret keeps signing."""

    grace_seconds = fields.Int(
        load_default=86_400, validate=validate.Range(min=0, max=30 * 86_400), strict=True
    )


class PollerBodySchema(Schema):
    """A poller's definition, as created or replaced.

    Rules beyond the types (templates, expressions, the URL guard, the connector, the
    schedule) are checked by the service, which names every field it refuses at once:
    `request.url`, `pagination.page_param`, `cron`…
    """

    name = fields.Str(required=True, metadata={"description": "unique, like endpoint names"})
    description = fields.Str()
    enabled = fields.Bool(metadata={"description": "default true"})
    request = fields.Dict(
        required=True,
        metadata={
            "description": "`{connector, path}` (an http connector's name) or `{url}`, and "
            "`method` (GET, POST), `params` and `headers` ({name: template}), `json` (POST "
            "body whose strings are templates); templates see `state.cursor`, `now`, `page`"
        },
    )
    interval_seconds = fields.Int(
        strict=True, metadata={"description": "poll every n seconds (or cron)", "minimum": 5}
    )
    cron = fields.Str(metadata={"description": "5 fields or an @alias (or interval_seconds)"})
    timezone = fields.Str(metadata={"description": "of the cron; default UTC"})
    items = fields.Str(metadata={"description": "jmespath to the list of items; default `@`"})
    id = fields.Str(required=True, metadata={"description": "jmespath to an item's identity"})
    cursor = fields.Str(
        allow_none=True,
        metadata={"description": "jmespath over {items, page, state} giving the next cursor"},
    )
    pagination = fields.Dict(
        allow_none=True,
        metadata={
            "description": "null, `{next: jmespath to the next link}` or `{page_param, "
            "first_page (1), page_size, size_param}`"
        },
    )
    max_pages = fields.Int(
        strict=True,
        metadata={"description": "pages one poll may read; default 10", "maximum": 1000},
    )
    format = fields.Str(metadata={"enum": ["auto", "json", "ndjson", "csv"]})
    mode = fields.Str(metadata={"enum": ["item", "batch"], "description": "default item"})
    event_type = fields.Str(metadata={"description": "default `<name>.item` / `<name>.batch`"})
    initial_cursor = fields.Raw(
        allow_none=True,
        metadata={"description": "any JSON: sets the cursor (on create, or to reset it)"},
    )


class PollerPatchSchema(PollerBodySchema):
    """The definition fields to change; the others keep their values."""

    name = fields.Str()
    request = fields.Dict()
    id = fields.Str(metadata={"description": "jmespath to an item's identity"})


class PollerSchema(Schema):
    """A poller: its definition and where it stands.

    `id` and `cursor` are the poller's own; the expressions given as `id` and `cursor`
    are shown as `id_expression` and `cursor_expression`.
    """

    id = fields.Str(metadata={"description": "pol_…"})
    name = fields.Str()
    description = fields.Str()
    enabled = fields.Bool()
    request = fields.Dict()
    interval_seconds = fields.Int(metadata={"description": "present when given"})
    cron = fields.Str(metadata={"description": "present when given"})
    timezone = fields.Str(metadata={"description": "present when given"})
    items = fields.Str()
    id_expression = fields.Str(metadata={"description": "the `id` jmespath"})
    cursor_expression = fields.Str(
        allow_none=True, metadata={"description": "the `cursor` jmespath"}
    )
    pagination = fields.Dict(allow_none=True)
    max_pages = fields.Int()
    format = fields.Str()
    mode = fields.Str()
    event_type = fields.Str()
    workflows = fields.List(
        fields.Str(), metadata={"description": "ids of workflows with trigger {poller: name}"}
    )
    cursor = fields.Raw(allow_none=True, metadata={"description": "the watermark now"})
    failures = fields.Int(metadata={"description": "polls failed in a row"})
    retry_after = fields.DateTime(
        allow_none=True, metadata={"description": "back-off: no scheduled poll before"}
    )
    last_slot = fields.DateTime(allow_none=True, metadata={"description": "newest slot queued"})
    schedule_from = fields.DateTime(
        allow_none=True, metadata={"description": "slots before it never poll; null when off"}
    )
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PollNowSchema(Schema):
    """A poll queued by hand."""

    poller_id = fields.Str()
    job_id = fields.Str()


class PollSchema(Schema):
    """One poll of a poller: when, how long, what it found, where the cursor went."""

    id = fields.Str()
    poller_id = fields.Str()
    slot = fields.DateTime(allow_none=True, metadata={"description": "null for poll-now"})
    trigger = fields.Str(metadata={"description": "schedule or manual"})
    status = fields.Str(metadata={"description": "succeeded or failed"})
    started_at = fields.DateTime()
    duration_ms = fields.Float(allow_none=True)
    http_status = fields.Int(allow_none=True, metadata={"description": "of the last page read"})
    pages = fields.Int()
    items_seen = fields.Int()
    items_new = fields.Int()
    cursor_before = fields.Raw(allow_none=True)
    cursor_after = fields.Raw(allow_none=True)
    error = fields.Str(allow_none=True)


class PollDetailSchema(PollSchema):
    """One poll with the ids of the events it stored."""

    events = fields.List(fields.Str())


class TokenSchema(Schema):
    """A management API token. Its value is shown once, when it is created."""

    id = fields.Str(dump_only=True)
    name = fields.Str(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.Str(validate=validate.OneOf(SCOPES)),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "read, publish, write, admin (see docs/api.md#tokens)"},
    )
    expires_at = fields.AwareDateTime(
        default_timezone=UTC,
        allow_none=True,
        metadata={"description": "refused from this time on; none: never expires"},
    )
    created_at = fields.DateTime(dump_only=True)
    last_used_at = fields.DateTime(dump_only=True, allow_none=True)
    revoked_at = fields.DateTime(dump_only=True, allow_none=True)


class NewTokenSchema(TokenSchema):
    """A token just created, with its value (shown this once)."""

    token = fields.Str(dump_only=True)


class WorkflowVersionSchema(Schema):
    """One stored version of a workflow, as its version list shows it (the definition is
    ``GET /api/v1/workflows/{id}/versions/{n}``)."""

    version = fields.Int()
    name = fields.Str(metadata={"description": "the workflow's name in that version"})
    created_at = fields.DateTime()
    current = fields.Bool(metadata={"description": "true for the version runs now use"})


class SubscriptionTestSchema(Schema):
    """What a subscription's test sends: left out, an ``ihook.test`` event as is; given, a
    sample event of a type the subscription takes, sent through its mapping."""

    event_type = fields.Str(
        validate=validate.Length(min=1, max=200),
        metadata={"description": "a type the subscription takes (or `ihook.test`)"},
    )
    data = fields.Raw(
        allow_none=False,
        metadata={"description": "the sample's data; default: made from the type's schema"},
    )


class UserSchema(Schema):
    """A console user. ``password`` is write-only: no answer holds it or its hash."""

    id = fields.Str(dump_only=True)
    username = fields.Str(
        required=True,
        metadata={
            "description": "letters, digits, '_', '.', '@', '+', '-', starting with a letter "
            "or digit, at most 64; unique whatever its case, and matched whatever its case"
        },
    )
    display_name = fields.Str(
        allow_none=True, metadata={"description": "how the console names the user; optional"}
    )
    scopes = fields.List(
        fields.Str(validate=validate.OneOf(SCOPES)),
        required=True,
        validate=validate.Length(min=1),
        metadata={
            "description": "read, publish, write, admin, as for tokens; the console needs read"
        },
    )
    enabled = fields.Bool(
        load_default=True, metadata={"description": "a disabled user cannot sign in"}
    )
    password = fields.Str(
        required=True,
        load_only=True,
        metadata={
            "description": "write-only: at least 12 characters, at most 1024, not the user "
            "name; stored only as a salted scrypt hash"
        },
    )
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    password_changed_at = fields.DateTime(dump_only=True)
    last_sign_in_at = fields.DateTime(dump_only=True, allow_none=True)


class UserUpdateSchema(Schema):
    """What a PATCH of a user may change; a field left out stays as it is. A new password
    or ``enabled: false`` signs the user's console sessions out."""

    display_name = fields.Str(allow_none=True, metadata={"description": "null or '': none"})
    scopes = fields.List(
        fields.Str(validate=validate.OneOf(SCOPES)), validate=validate.Length(min=1)
    )
    enabled = fields.Bool()
    password = fields.Str(load_only=True, metadata={"description": "write-only: a new password"})
