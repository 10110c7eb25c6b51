"""Reading a polled page's body: JSON, NDJSON or CSV, in the charset it declares.

``parse_body`` takes the raw bytes and the Content-Type and answers the parsed page, or
raises ValueError saying why it does not parse. ``format: auto`` picks NDJSON or CSV by
media type (JSON otherwise); the text is decoded by the ``charset`` parameter (UTF-8 when
none, a BOM dropped). JSON's NaN and Infinity are refused, and a CSV row with more fields
than the header is an error rather than a ``None`` key.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from typing import Any

NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonl"}
)
"""Content types read as one JSON value per line by ``format: auto``."""
CSV_TYPES = frozenset({"text/csv", "application/csv"})
"""Content types read as CSV with a header row by ``format: auto``."""


def parse_body(body: bytes, content_type: str, config: dict) -> Any:
    """A page's body as JSON, NDJSON (a list) or CSV (a list of row objects).

    Raises ValueError saying why it does not parse.
    """
    media, _, rest = content_type.partition(";")
    media = media.strip().lower()
    fmt = config.get("format", "auto")
    if fmt == "auto":
        if media in NDJSON_TYPES:
            fmt = "ndjson"
        elif media in CSV_TYPES:
            fmt = "csv"
        else:
            fmt = "json"
    text = _decode(body, _charset(rest))
    if fmt == "ndjson":
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        return [_json(line, f"line {n} is not JSON") for n, line in lines]
    if fmt == "csv":
        return _csv(text)
    return _json(text, f"body is not JSON (content-type {media or 'none'})")


def _charset(params: str) -> str:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def _decode(body: bytes, charset: str) -> str:
    try:
        codec = codecs.lookup(charset).name
    except LookupError:
        raise ValueError(f"unknown charset {charset!r}") from None
    try:
        text = body.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not {charset} text: {exc}") from None
    return text.removeprefix("\ufeff")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _csv(text: str) -> list[dict[str, Any]]:
    rows = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if None in row:
                raise ValueError(f"CSV line {reader.line_num} has more fields than the header")
            rows.append(row)
    except csv.Error as exc:
        raise ValueError(f"CSV line {reader.line_num}: {exc}") from None
    return rows
