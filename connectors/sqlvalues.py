"""Values between JSON and SQL columns: what a run holds and what a table takes."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

from connectors.errors import RecordError


def to_json_value(value: Any) -> Any:
    """``value`` as JSON can hold it: dates as ISO strings, decimals as float (or str)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, Decimal):
        if value.is_finite() and Decimal(repr(float(value))) == value:
            return float(value)
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json_value(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def to_db(column: sa.Column[Any], value: Any) -> Any:
    """Accept JSON input for typed columns: ISO strings for dates, objects only for JSON."""
    kind = column.type
    if isinstance(value, Mapping | list) and not isinstance(kind, sqltypes.JSON | sqltypes.ARRAY):
        raise RecordError(
            f"column {column.name!r} takes a single value, got {type(value).__name__}"
        )
    if not isinstance(value, str):
        return value
    parse: Callable[[str], Any] | None = None
    if isinstance(kind, sqltypes.DateTime):
        parse = datetime.fromisoformat
    elif isinstance(kind, sqltypes.Date):
        parse = date.fromisoformat
    elif isinstance(kind, sqltypes.Time):
        parse = time_of_day.fromisoformat
    if parse is None:
        return value
    try:
        parsed = parse(value)
    except ValueError:
        raise RecordError(
            f"column {column.name!r} needs an ISO-8601 {kind.__visit_name__}, got {value!r:.40}"
        ) from None
    if isinstance(parsed, datetime) and parsed.tzinfo and not getattr(kind, "timezone", False):
        # A column without a time zone holds UTC (the platform's times are UTC); drivers
        # would otherwise drop the offset and keep the wall-clock time.
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed
