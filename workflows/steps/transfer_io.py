"""Where ``transfer`` reads rows and writes chunks: sql and http sources; http, sql and
records targets. A read or write that fails with a retryable error is tried again in
place (``RETRY_DELAYS``) before it fails the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

from connectors.errors import ConnectorError, TransientError
from workflows import expressions
from workflows.context import StepContext
from workflows.errors import StepFailed
from workflows.schema import where_values
from workflows.steps.records import RECORDS

DEFAULT_MAX_PAGES = 1000
"""Most HTTP pages one transfer reads when the config does not say."""

RETRY_DELAYS = (0.2, 0.5, 1.0)
"""Seconds to wait before each in-place retry of a chunk that failed with a retryable error."""

Failures = tuple[int, list[str]]
"""Rows of a chunk skipped under ``on_error: skip``, and their error messages."""

Writer = Callable[[list[Any], int], Failures]
"""Writes one chunk (its rows and index)."""

T = TypeVar("T")


def with_retries(call: Callable[[], T]) -> tuple[T, int]:
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


def reader(source: Mapping[str, Any], ctx: StepContext, size: int) -> Iterator[Any]:
    if "collection" in source:
        records = _connector(ctx, source["connector"], RECORDS, "source")
        return _record_rows(source["collection"], records, size)
    if "table" in source:
        return _sql_rows(source, ctx, _connector(ctx, source["connector"], "sql", "source"), size)
    return _http_rows(source, ctx, _connector(ctx, source["connector"], "http", "source"))


def _record_rows(collection: str, records: Any, size: int) -> Iterator[Any]:
    """A collection's records' data, a page of ``size`` at a time, in key order."""
    after: str | None = None
    while True:
        page, _ = with_retries(partial(records.page, collection, after, size))
        yield from (data for _, data in page)
        if len(page) < size:
            return
        after = page[-1][0]


def _sql_rows(source: Mapping[str, Any], ctx: StepContext, sql: Any, size: int) -> Iterator[Any]:
    """Pages of ``size`` rows by keyset, each starting after the last row of the one before."""
    where = where_values(source.get("where", {}), ctx.search)
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
        page, _ = with_retries(read)
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
            response, _ = with_retries(partial(http.request, "GET", path, params=query))
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


def writer(target: Mapping[str, Any], ctx: StepContext, skip: bool) -> Writer:
    name = target["connector"]
    if "path" in target:
        return partial(_post_chunk, target, ctx, _connector(ctx, name, "http", "target"), skip)
    if "table" in target:
        sql = _connector(ctx, name, "sql", "target")
        return partial(_sql_chunk, sql, target["table"], target["key"], skip)
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


def _sql_chunk(sql: Any, table: str, key: Any, skip: bool, rows: list[Any], index: int) -> Failures:
    """Upsert the chunk in one transaction; under ``skip``, a chunk refused for good is
    written again row by row so that only its bad rows fail."""
    try:
        sql.write_many(table, key, rows)
    except ConnectorError as exc:
        if exc.retryable or not skip:
            raise
        return _upsert_rows(lambda row: sql.write(table, key, row), skip, rows, index)
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
