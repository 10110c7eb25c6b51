"""``transfer``: move rows from one connector to another in chunks, counting them.

Sources: an sql ``table`` (read by keyset on ``order_by``, one page per chunk) or paged HTTP
GETs through an http connector (a ``next`` link or a page number). Targets: an http
connector (one request per chunk, the chunk is the body), an sql ``table`` or a records
``collection`` (each row upserted by ``key``)::

    - id: push
      type: transfer
      source: {connector: crm_db, table: members, where: {active: "`true`"}}
      target: {connector: mailer, path: /contacts/bulk, body: "{contacts: rows}"}
      map: "{id: id, email: lower(email)}"

A chunk whose write fails with a retryable error is written again in place
(``RETRY_DELAYS``), then the step fails as retryable. Writing a chunk twice is harmless:
sql and records targets upsert by key, and http requests carry
``Idempotency-Key: <run id>:<step id>:<chunk index>`` for the receiver to honour, the same
on every attempt of the run as long as the source reads the same rows in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connectors.errors import ConnectorError, TransientError
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
    jmespath_map,
    template_field,
    template_map,
)
from workflows.steps.records import COLLECTION, RECORDS, table_field

DEFAULT_CHUNK_SIZE = 500
"""Rows per chunk (and per sql page) when the config does not say."""

MAX_CHUNK_SIZE = 5000
"""Largest chunk a config may ask for."""

DEFAULT_MAX_ROWS = 100_000
"""Most rows one transfer moves when the config does not say; more fails the step."""

DEFAULT_MAX_PAGES = 1000
"""Most HTTP pages one transfer reads when the config does not say."""

RETRY_DELAYS = (0.2, 0.5, 1.0)
"""Seconds to wait before each in-place retry of a chunk that failed with a retryable error."""

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
    """An sql ``table`` (keyset paging) or an http ``path`` read page by page."""

    connector = fields.String(required=True)
    table = table_field()
    where = jmespath_map()
    order_by = fields.List(fields.String(validate=validate.Length(min=1)))
    path = template_field()
    params = template_map()
    items = jmespath_field()
    next = jmespath_field()
    page_param = fields.String(validate=validate.Length(min=1))
    page_size = fields.Integer(validate=validate.Range(min=1, max=MAX_CHUNK_SIZE))
    size_param = fields.String(validate=validate.Length(min=1))
    max_pages = fields.Integer(validate=validate.Range(min=1, max=100_000))
    collection = fields.Raw()

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _shape(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        if "collection" in original:
            raise ValidationError(
                "Records cannot be a source yet (the store is not listed); use sql or http.",
                "collection",
            )
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


Failures = tuple[int, list[str]]
"""Rows of a chunk skipped under ``on_error: skip``, and their error messages."""

Writer = Callable[[list[Any], int], Failures]
"""Writes one chunk (its rows and index)."""

T = TypeVar("T")


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
            kind = "sql" if "table" in source else "http"
            refs.append(("source.connector", source["connector"], (kind,)))
        if isinstance(target, Mapping) and "connector" in target:
            kind = "http" if "path" in target else "sql" if "table" in target else RECORDS
            refs.append(("target.connector", target["connector"], (kind,)))
        return refs

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        size, cap, mapping = config["chunk_size"], config["max_rows"], config.get("map")
        skip = config["on_error"] == "skip"
        write = _writer(config["target"], ctx, skip)
        counts = {"read": 0, "written": 0, "failed": 0, "chunks": 0, "retried_chunks": 0}
        errors: list[str] = []
        chunk: list[Any] = []
        for row in _reader(config["source"], ctx, size):
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
        (failed, messages), retries = _with_retries(partial(write, chunk, index))
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


def _with_retries(call: Callable[[], T]) -> tuple[T, int]:
    """``call()`` and how many times it was retried after a retryable error."""
    for attempt, delay in enumerate(RETRY_DELAYS):
        try:
            return call(), attempt
        except TransientError:
            time.sleep(delay)
    return call(), len(RETRY_DELAYS)


def _connector(ctx: StepContext, name: str, kind: str, role: str) -> Any:
    connector = ctx.connector(name)
    actual = getattr(connector, "kind", None)
    if actual != kind:
        raise StepFailed(
            ctx.step_id, f"{role} connector {name!r} is {actual}; this {role} needs {kind}"
        )
    return connector


# -- sources -----------------------------------------------------------------------------


def _reader(source: Mapping[str, Any], ctx: StepContext, size: int) -> Iterator[Any]:
    if "table" in source:
        return _sql_rows(source, ctx, _connector(ctx, source["connector"], "sql", "source"), size)
    return _http_rows(source, ctx, _connector(ctx, source["connector"], "http", "source"))


def _sql_rows(source: Mapping[str, Any], ctx: StepContext, sql: Any, size: int) -> Iterator[Any]:
    """Pages of ``size`` rows by keyset, each starting after the last row of the one before."""
    where = {column: ctx.search(expr) for column, expr in source.get("where", {}).items()}
    after: dict[str, Any] | None = None
    while True:
        read = partial(
            sql.select_page,
            source["table"],
            where,
            after=after,
            order_by=source.get("order_by"),
            limit=size,
        )
        page, _ = _with_retries(read)
        yield from page
        if len(page) < size:
            return
        after = page[-1]


def _http_rows(source: Mapping[str, Any], ctx: StepContext, http: Any) -> Iterator[Any]:
    """GET page after page: follow ``next`` or count ``page_param`` up until a short page."""
    path = ctx.render(source.get("path", ""))
    params = {name: ctx.render(t) for name, t in source.get("params", {}).items()}
    page_param, page_size = source.get("page_param"), source.get("page_size")
    follow = source.get("next")
    if page_size and source.get("size_param"):
        params[source["size_param"]] = str(page_size)
    max_pages = source.get("max_pages", DEFAULT_MAX_PAGES)
    for number in range(1, max_pages + 1):
        query = {**params, page_param: str(number)} if page_param else params
        try:
            response, _ = _with_retries(partial(http.request, "GET", path, params=query))
        except ConnectorError as exc:
            raise StepFailed(
                ctx.step_id,
                f"reading page {number}: {type(exc).__name__}: {exc}",
                retryable=exc.retryable,
            ) from exc
        body = response["body"]
        items = expressions.search(source.get("items", "@"), body)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise StepFailed(
                ctx.step_id,
                f"items must select a list in page {number}, got {type(items).__name__}",
            )
        yield from items
        if follow:
            link = expressions.search(follow, body)
            if not link:
                return
            path, params = _relative(http, link, ctx), {}
        elif not page_param or not items or (page_size and len(items) < page_size):
            return
    raise StepFailed(ctx.step_id, f"the source has more than max_pages={max_pages} pages")


def _relative(http: Any, link: Any, ctx: StepContext) -> str:
    """A next link as a path under the connector's base URL (its credentials go nowhere else)."""
    if not isinstance(link, str):
        raise StepFailed(ctx.step_id, f"next must select a URL or path, got {link!r:.80}")
    if "://" not in link.split("?", 1)[0]:
        return link
    base = http.base_url.rstrip("/")
    rest = link[len(base) :]
    if not link.startswith(base) or rest[:1] not in ("", "/", "?"):
        raise StepFailed(ctx.step_id, f"next link {link!r:.200} is not under {base}")
    return rest


# -- targets -----------------------------------------------------------------------------


def _writer(target: Mapping[str, Any], ctx: StepContext, skip: bool) -> Writer:
    name = target["connector"]
    if "path" in target:
        return partial(_post_chunk, target, ctx, _connector(ctx, name, "http", "target"), skip)
    if "table" in target:
        sql = _connector(ctx, name, "sql", "target")
        return partial(
            _upsert_rows, lambda row: sql.write(target["table"], target["key"], row), skip
        )
    records = _connector(ctx, name, RECORDS, "target")

    def put(row: Any) -> Any:
        key = records.make_key(target["key"], row)
        return records.write(target["collection"], key, row, "upsert")

    return partial(_upsert_rows, put, skip)


def _post_chunk(
    target: Mapping[str, Any], ctx: StepContext, http: Any, skip: bool, rows: list[Any], index: int
) -> Failures:
    """One request per chunk, keyed so that a receiver can drop a chunk it already has."""
    run_id = (ctx.data.get("run") or {}).get("id")
    headers = {"Idempotency-Key": f"{run_id}:{ctx.step_id}:{index}"} if run_id else {}
    body = expressions.search(target.get("body", "rows"), {**ctx.data, "rows": rows})
    try:
        http.request(
            target.get("method", "POST"), ctx.render(target["path"]), headers=headers, json=body
        )
    except ConnectorError as exc:
        if exc.retryable or not skip:
            raise
        return len(rows), [f"{type(exc).__name__}: {exc}"]
    return 0, []


def _upsert_rows(put: Callable[[Any], Any], skip: bool, rows: list[Any], index: int) -> Failures:
    """Upsert row by row: a retried chunk rewrites the same keys, never adds rows."""
    failed, messages = 0, []
    for offset, row in enumerate(rows):
        try:
            put(row)
        except ConnectorError as exc:
            if exc.retryable or not skip:
                raise
            failed += 1
            messages.append(f"row {offset}: {type(exc).__name__}: {exc}")
    return failed, messages
