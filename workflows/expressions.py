"""Expressions: jmespath for selecting data, sandboxed jinja2 for building text.

Both are compiled once and cached; the run loop evaluates the same few sources per event.
"""

from __future__ import annotations

import json
import re
import uuid as _uuid
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2
import jmespath
from jinja2.sandbox import SandboxedEnvironment
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from workflows.errors import ExpressionError

CACHE_SIZE = 1024
"""How many compiled expressions and templates are kept."""

_STEP_REF = re.compile(r"(?<![\w.])steps\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


def utc_now() -> str:
    """The current time as ISO-8601 UTC with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Functions(functions.Functions):
    """jmespath's built-ins plus the few that workflow authors keep asking for."""

    @functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @functions.signature({"types": ["string"]})
    def _func_trim(self, value: str) -> str:
        return value.strip()

    @functions.signature({"types": []}, {"types": []})
    def _func_default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None else value

    @functions.signature()
    def _func_now(self) -> str:
        return utc_now()

    @functions.signature()
    def _func_uuid(self) -> str:
        return str(_uuid.uuid4())

    @functions.signature({"types": ["string", "number"]})
    def _func_parse_time(self, value: str | float) -> str:
        return parse_time(value)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_parse_time_format(self, value: str, fmt: str) -> str:
        try:
            return parse_time(value, fmt)
        except ValueError as exc:
            raise ExpressionError(f"parse_time_format: {exc}") from None

    @functions.signature({"types": ["string", "number"]}, {"types": ["string"]})
    def _func_format_time(self, value: str | float, fmt: str) -> str:
        return _as_datetime(value).strftime(fmt)

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, value: str, sep: str) -> list[str]:
        return value.split(sep) if sep else list(value)

    @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_replace(self, value: str, old: str, new: str) -> str:
        return value.replace(old, new)


def parse_time(value: str | float, fmt: str | None = None) -> str:
    """A time (ISO-8601, epoch seconds, or text in ``fmt``) as ISO-8601 UTC with a ``Z``.

    Times without a zone are taken as UTC.
    """
    moment = datetime.strptime(value, fmt) if fmt and isinstance(value, str) else None
    moment = moment or _as_datetime(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _as_datetime(value: str | float) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExpressionError(f"not a time: {value!r} (ISO-8601 or epoch seconds)") from None


_FUNCTIONS = _Functions()
_OPTIONS = jmespath.Options(custom_functions=_FUNCTIONS)
_FUNCTION_NAMES = frozenset(_FUNCTIONS.FUNCTION_TABLE)


@lru_cache(maxsize=CACHE_SIZE)
def compile_jmespath(src: str) -> ParsedResult:
    """Compile a jmespath expression; raise ExpressionError naming the problem."""
    if not isinstance(src, str) or not src.strip():
        raise ExpressionError("expression must be a non-empty string")
    try:
        parsed = jmespath.compile(src)
    except JMESPathError as exc:
        raise ExpressionError(f"bad jmespath {src!r}: {exc}") from None
    # Unknown functions only fail at evaluation time; catch typos at save time instead.
    unknown = sorted(_function_names(parsed.parsed) - _FUNCTION_NAMES)
    if unknown:
        raise ExpressionError(f"bad jmespath {src!r}: unknown function(s) {', '.join(unknown)}")
    return parsed


def _function_names(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    names = {node["value"]} if node.get("type") == "function_expression" else set()
    for child in node.get("children", ()):
        names |= _function_names(child)
    return names


def search(expr: str, data: Any) -> Any:
    """Evaluate a jmespath expression against ``data``."""
    try:
        return compile_jmespath(expr).search(data, options=_OPTIONS)
    except JMESPathError as exc:
        raise ExpressionError(f"jmespath {expr!r} failed: {exc}") from None


def truthy(value: Any) -> bool:
    """jmespath truthiness: null, false and empty string/list/object are false; 0 is true."""
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and not value)


def _tojson(value: Any) -> str:
    # Jinja's own tojson escapes for HTML; templates here build JSON and plain text.
    return json.dumps(value, ensure_ascii=False, default=str)


_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["tojson"] = _tojson
_ENV.globals.update(now=utc_now, uuid=lambda: str(_uuid.uuid4()))


@lru_cache(maxsize=CACHE_SIZE)
def compile_template(src: str) -> jinja2.Template:
    """Compile a jinja2 template in the sandbox; raise ExpressionError on syntax errors."""
    if not isinstance(src, str):
        raise ExpressionError("template must be a string")
    try:
        return _ENV.from_string(src)
    except jinja2.TemplateError as exc:
        raise ExpressionError(f"bad template: {exc}") from None


def render(template: str, context: dict[str, Any]) -> str:
    """Render a template against the context; undefined names and unsafe access fail."""
    try:
        return compile_template(template).render(context)
    except jinja2.TemplateError as exc:  # SecurityError and UndefinedError included
        raise ExpressionError(f"template failed: {exc}") from None


def check_jmespath(src: str) -> None:
    """Raise ExpressionError unless ``src`` compiles as jmespath."""
    compile_jmespath(src)


def check_template(src: str) -> None:
    """Raise ExpressionError unless ``src`` compiles as a jinja2 template."""
    compile_template(src)


def referenced_steps(src: str) -> set[str]:
    """Step ids an expression reads as ``steps.<id>`` (a best-effort textual scan)."""
    return set(_STEP_REF.findall(src)) if isinstance(src, str) else set()
