"""Filters and orderings of ``sql`` reads, built from reflected columns, never from text.

A ``where`` maps column names to what their values must be: a plain value (equality; null
matches NULL), a ``Compare`` or a list of ``Compare`` (all must hold)::

    {"status": "paid",
     "created_at": [Compare("gt", "2024-05-01T00:00:00Z"), Compare("lte", "2024-06-01")]}

Values are converted for their column like written values (ISO-8601 text for dates and
times).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa

from connectors.errors import RecordError
from connectors.sqlvalues import to_db

COMPARE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
"""Operators a ``Compare`` may use."""

Clause = sa.ColumnElement[bool]


class Compare(NamedTuple):
    """One condition on a column's value.

    ``eq`` / ``ne`` with None mean IS NULL / IS NOT NULL; ``ne`` with a value also matches
    NULL (it is exactly not ``eq``). ``gt``, ``gte``, ``lt`` and ``lte`` need a value.
    ``in`` takes a list: an empty one matches nothing, a None in it matches NULL.
    """

    op: str
    value: Any


def conditions(table: sa.Table, where: Mapping[str, Any]) -> list[Clause]:
    """The clauses that ``where`` asks of ``table``'s rows (its columns are already checked)."""
    clauses: list[Clause] = []
    for name, wanted in where.items():
        column = table.c[name]
        if isinstance(wanted, Compare):
            clauses.append(_compare(column, wanted))
        elif isinstance(wanted, list) and wanted and all(isinstance(c, Compare) for c in wanted):
            clauses.extend(_compare(column, c) for c in wanted)
        else:
            clauses.append(_compare(column, Compare("eq", wanted)))
    return clauses


def _compare(column: sa.Column[Any], cond: Compare) -> Clause:
    op, value = cond
    if op not in COMPARE_OPS:
        raise RecordError(
            f"unknown operator {op!r} on {column.name!r} (use {', '.join(COMPARE_OPS)})"
        )
    if op == "in":
        if not isinstance(value, list | tuple):
            raise RecordError(f"'in' on {column.name!r} takes a list, got {value!r:.80}")
        values = [_single(column, v, op) for v in value if v is not None]
        clause: Clause = column.in_(values) if values else sa.false()
        return sa.or_(clause, column.is_(None)) if None in value else clause
    value = _single(column, value, op)
    if op == "eq":
        return column.is_(None) if value is None else column == value
    if op == "ne":
        return column.is_not(None) if value is None else column.is_distinct_from(value)
    if value is None:
        raise RecordError(f"{op!r} on {column.name!r} needs a value, got null")
    if op == "gt":
        return column > value
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    return column <= value


def _single(column: sa.Column[Any], value: Any, op: str) -> Any:
    if isinstance(value, Compare):
        raise RecordError(f"{op!r} on {column.name!r} takes a value, not another condition")
    if isinstance(value, Mapping | list | tuple | set):
        raise RecordError(
            f"filter on {column.name!r} must be a single value or Compare conditions, "
            f"got {type(value).__name__} (use Compare('in', [...]) for a list of values)"
        )
    return to_db(column, value)


def column_names(specs: Sequence[str]) -> list[str]:
    """The columns an ``order_by`` names (``-name`` sorts descending)."""
    return [spec[1:] if spec.startswith("-") else spec for spec in specs]


def ordering(table: sa.Table, specs: Sequence[str]) -> list[sa.UnaryExpression[Any]]:
    """ORDER BY terms for ``specs`` (column names, ``-name`` descending)."""
    return [
        table.c[name].desc() if spec.startswith("-") else table.c[name].asc()
        for spec, name in zip(specs, column_names(specs), strict=True)
    ]


def after_row(table: sa.Table, specs: Sequence[str], after: Mapping[str, Any]) -> Clause:
    """Rows that sort after ``after`` in ``specs`` order: the keyset of the next page."""
    names = column_names(specs)
    missing = [repr(name) for name in names if after.get(name) is None]
    if missing:
        raise RecordError(f"keyset column(s) {', '.join(missing)} missing or null in after")
    # (a, b) after (x, y) is a > x OR (a = x AND b > y); '<' where the order is descending.
    bound = {name: to_db(table.c[name], after[name]) for name in names}
    return sa.or_(
        *(
            sa.and_(
                *(table.c[n] == bound[n] for n in names[:i]),
                table.c[name] < bound[name]
                if spec.startswith("-")
                else table.c[name] > bound[name],
            )
            for i, (spec, name) in enumerate(zip(specs, names, strict=True))
        )
    )
