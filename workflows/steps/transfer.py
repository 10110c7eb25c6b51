"""``transfer``: move rows from one connector to another in chunks, counting them.

Sources: an sql ``table`` (read by keyset on ``order_by``, one page per chunk) or paged HTTP
GETs through an http connector (a ``next`` link or a page number). Targets: an http
connector (one request per chunk, the chunk is the body), an sql ``table`` (each chunk
upserted by ``key`` in one transaction) or a records ``collection`` (each row upserted by
``key``). ``where`` on an sql source gives per column a jmespath (equality) or
``{operator: jmespath}`` (``eq ne gt gte lt lte in``)::

    - id: push
      type: transfer
      source: {connector: crm_db, table: members, where: {active: "`true`"}}
      target: {connector: mailer, path: /contacts/bulk, body: "{contacts: rows}"}
      map: "{id: id, email: lower(email)}"
    - id: copy_window
      type: transfer
      source: {connector: shop_db, table: orders,
               where: {created_at: {gt: data.window.start, lte: data.window.end}}}
      target: {connector: dwh, table: orders, key: id}

A chunk whose write fails with a retryable error is written again in place
(``RETRY_DELAYS``), then the step fails as retryable. An sql chunk refused for good under
``on_error: skip`` is written again row by row, so only its bad rows count as failed.
Writing a chunk twice is harmless: sql and records targets upsert by key, and http
requests carry ``Idempotency-Key: <run id>:<step id>:<chunk index>`` for the receiver to
honour, the same on every attempt of the run as long as the source reads the same rows in
the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.errors import ConnectorError
from workflows import expressions
from workflows.context import StepContext
from workflows.errors import ExpressionError, StepFailed
from workflows.registry import Step, register_step
from workflows.schema import (
    JMESPATH,
    KeySpec,
    StepConfig,
    iter_expressions,
    jmespath_field,
    template_field,
    template_map,
    where_map,
)
from workflows.steps.records import COLLECTION, RECORDS, table_field
from workflows.steps.transfer_io import (
    RETRY_DELAYS,
    Writer,
    reader,
    with_retries,
    writer,
)

DEFAULT_CHUNK_SIZE = 500
"""Rows per chunk (and per sql page) when the config does not say."""

MAX_CHUNK_SIZE = 5000
"""Largest chunk a config may ask for."""

DEFAULT_MAX_ROWS = 100_000
"""Most rows one transfer moves when the config does not say; more fails the step."""


MAX_ERRORS_KEPT = 10
"""How many row errors an ``on_error: skip`` transfer lists in its output."""

WRITE_METHODS = ("POST", "PUT", "PATCH")
"""Methods an http target may send a chunk with."""

_HTTP_ONLY = (
    "path",
    "params",
    "items",
    "next",
    "page_param",
    "page_size",
    "size_param",
    "max_pages",
)
_SQL_ONLY = ("where", "order_by")


class SourceConfig(Schema):
    """An sql ``table`` (keyset paging), a records ``collection`` (key order) or an http
    ``path`` read page by page."""

    connector = fields.String(required=True)
    table = table_field()
    where = where_map()
    order_by = fields.List(fields.String(validate=validate.Length(min=1)))
    path = template_field()
    params = template_map()
    items = jmespath_field()
    next = jmespath_field()
    page_param = fields.String(validate=validate.Length(min=1))
    page_size = fields.Integer(validate=validate.Range(min=1, max=MAX_CHUNK_SIZE))
    size_param = fields.String(validate=validate.Length(min=1))
    max_pages = fields.Integer(validate=validate.Range(min=1, max=100_000))
    collection = fields.String(
        validate=validate.Regexp(COLLECTION, error="Not a valid collection name.")
    )

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _shape(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        if "collection" in original:
            extra = [n for n in (*_HTTP_ONLY, *_SQL_ONLY, "table") if n in original]
            if extra:
                raise ValidationError({n: ["Not with a records source."] for n in extra})
            return
        wrong = _HTTP_ONLY if "table" in original else _SQL_ONLY
        errors = {name: ["Not with this source."] for name in wrong if name in original}
        if "next" in original and "page_param" in original:
            errors["page_param"] = ["Give next or page_param (not both)."]
        if "size_param" in original and "page_size" not in original:
            errors["size_param"] = ["Needs page_size."]
        if errors:
            raise ValidationError(errors)


class TargetConfig(Schema):
    """An http ``path`` (a request per chunk), an sql ``table`` or a records ``collection``."""

    connector = fields.String(load_default=RECORDS)
    table = table_field()
    collection = fields.String(
        validate=validate.Regexp(COLLECTION, error="Not a valid collection name.")
    )
    key = KeySpec()
    path = template_field()
    method = fields.String(validate=validate.OneOf(WRITE_METHODS))
    body = jmespath_field()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _shape(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        given = [name for name in ("path", "table", "collection") if name in original]
        if len(given) != 1:
            raise ValidationError("Give path (http), table (sql) or collection (records).", "path")
        if given[0] != "path" and "key" not in original:
            raise ValidationError("Required with table or collection.", "key")
        if given[0] == "path" and "key" in original:
            raise ValidationError("Only with table or collection.", "key")
        if given[0] == "path" and "connector" not in original:
            raise ValidationError("Name the http connector to send to.", "connector")
        if given[0] != "path" and {"method", "body"} & original.keys():
            raise ValidationError("Only with path (http targets).", "body")
        if given[0] == "table" and original.get("connector", RECORDS) == RECORDS:
            raise ValidationError("table is for sql connectors.", "table")


class TransferConfig(StepConfig):
    """``source``, ``target``, an optional per-row ``map`` and the chunking limits."""

    source = fields.Nested(SourceConfig, required=True)
    target = fields.Nested(TargetConfig, required=True)
    map = jmespath_field()
    chunk_size = fields.Integer(
        load_default=DEFAULT_CHUNK_SIZE, validate=validate.Range(min=1, max=MAX_CHUNK_SIZE)
    )
    max_rows = fields.Integer(
        load_default=DEFAULT_MAX_ROWS, validate=validate.Range(min=1, max=10_000_000)
    )
    on_error = fields.String(load_default="fail", validate=validate.OneOf(("fail", "skip")))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _no_foreach(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        # Chunk idempotency keys are per step; a loop would reuse them for other rows.
        if "foreach" in original:
            raise ValidationError(
                "transfer reads its own rows; foreach is not supported.", "foreach"
            )


@register_step
class Transfer(Step):
    """Read rows from a source connector and write them to a target in chunks."""

    type = "transfer"
    Config = TransferConfig

    def validate(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        errors = super().validate(config)
        for part, schema in (("source", SourceConfig()), ("target", TargetConfig())):
            sub = config.get(part)
            if not isinstance(sub, Mapping):
                continue
            for name, kind, src in iter_expressions(schema, sub):
                check = (
                    expressions.check_jmespath if kind == JMESPATH else expressions.check_template
                )
                try:
                    check(src)
                except ExpressionError as exc:
                    errors.setdefault(f"{part}.{name}", []).append(str(exc))
        return errors

    @classmethod
    def connector_refs(cls, config: Mapping[str, Any]) -> list[tuple[str, Any, tuple[str, ...]]]:
        refs: list[tuple[str, Any, tuple[str, ...]]] = []
        source, target = config.get("source"), config.get("target")
        if isinstance(source, Mapping) and "connector" in source:
            kind = "sql" if "table" in source else RECORDS if "collection" in source else "http"
            refs.append(("source.connector", source["connector"], (kind,)))
        if isinstance(target, Mapping) and "connector" in target:
            kind = "http" if "path" in target else "sql" if "table" in target else RECORDS
            refs.append(("target.connector", target["connector"], (kind,)))
        return refs

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        size, cap, mapping = config["chunk_size"], config["max_rows"], config.get("map")
        skip = config["on_error"] == "skip"
        write = writer(config["target"], ctx, skip)
        counts = {"read": 0, "written": 0, "failed": 0, "chunks": 0, "retried_chunks": 0}
        errors: list[str] = []
        chunk: list[Any] = []
        for row in reader(config["source"], ctx, size):
            counts["read"] += 1
            if counts["read"] > cap:
                raise StepFailed(
                    ctx.step_id, f"the source has more than max_rows={cap} rows ({_so_far(counts)})"
                )
            chunk.append(expressions.search(mapping, row) if mapping else row)
            if len(chunk) == size:
                _deliver(write, chunk, counts, errors, ctx)
                chunk = []
        if chunk:
            _deliver(write, chunk, counts, errors, ctx)
        return {**counts, "errors": errors} if skip else counts


def _deliver(
    write: Writer,
    chunk: list[Any],
    counts: dict[str, int],
    errors: list[str],
    ctx: StepContext,
) -> None:
    """Write one chunk, retrying it in place; count it or fail naming it."""
    index, first = counts["chunks"], counts["written"] + counts["failed"]
    try:
        (failed, messages), retries = with_retries(partial(write, chunk, index))
    except ConnectorError as exc:
        after = f" after {len(RETRY_DELAYS)} retries" if exc.retryable else ""
        raise StepFailed(
            ctx.step_id,
            f"chunk {index} (rows {first}-{first + len(chunk) - 1}) failed{after}: "
            f"{type(exc).__name__}: {exc} ({_so_far(counts)})",
            retryable=exc.retryable,
        ) from exc
    counts["chunks"] += 1
    counts["retried_chunks"] += 1 if retries else 0
    counts["failed"] += failed
    counts["written"] += len(chunk) - failed
    errors.extend(f"chunk {index}: {m}" for m in messages[: MAX_ERRORS_KEPT - len(errors)])


def _so_far(counts: Mapping[str, int]) -> str:
    return f"so far read {counts['read']}, written {counts['written']}, failed {counts['failed']}"
