"""Expressions: jmespath for selecting data, sandboxed jinja2 for building text.

Both are compiled once and cached; the run loop evaluates the same few sources per event.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid as _uuid
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jinja2
import jmespath
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from workflows.errors import ExpressionError

CACHE_SIZE = 1024
"""How many compiled expressions and templates are kept."""
MAX_EXPRESSION_CHARS = 4096
"""Longest jmespath expression or template source accepted."""
MAX_EXPRESSION_DEPTH = 64
"""Deepest nesting of a jmespath expression (its parse tree)."""
MAX_TEXT_CHARS = 1_048_576
"""Longest text a template may render, or a string an expression or template may build."""
MAX_LOOP_ITEMS = 1_000_000
"""Items all the loops of one rendering may go through together."""
MAX_RENDER_SECONDS = 1.0
"""How long one rendering may take."""

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
        if (
            old
            and len(new) > len(old)
            and (len(value) + value.count(old) * (len(new) - len(old)) > MAX_TEXT_CHARS)
        ):
            raise ExpressionError(f"replace: the result would be over {MAX_TEXT_CHARS} characters")
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
    if len(src) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        parsed = jmespath.compile(src)
    except JMESPathError as exc:
        raise ExpressionError(f"bad jmespath {src!r}: {exc}") from None
    except RecursionError:  # the parser recurses per level of nesting
        raise ExpressionError(f"expression nested deeper than {MAX_EXPRESSION_DEPTH}") from None
    if _depth(parsed.parsed) > MAX_EXPRESSION_DEPTH:
        raise ExpressionError(f"expression nested deeper than {MAX_EXPRESSION_DEPTH}")
    # Unknown functions only fail at evaluation time; catch typos at save time instead.
    unknown = sorted(_function_names(parsed.parsed) - _FUNCTION_NAMES)
    if unknown:
        raise ExpressionError(f"bad jmespath {src!r}: unknown function(s) {', '.join(unknown)}")
    return parsed


def _depth(tree: Any) -> int:
    """The depth of a jmespath parse tree, walked without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.get("children", ()))
    return deepest


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


class _Budget:
    """What one rendering may still spend: loop items and time."""

    def __init__(self) -> None:
        self.items = MAX_LOOP_ITEMS
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise SecurityError(f"rendering took longer than {MAX_RENDER_SECONDS:g} s")


_budget: ContextVar[_Budget | None] = ContextVar("ihook_template_budget", default=None)


def _spend() -> _Budget:
    budget = _budget.get()
    if budget is None:  # rendered outside ``render`` (a plugin's own template): fresh
        budget = _Budget()
        _budget.set(budget)
    budget.check_time()
    return budget


LOOP_CHECK_EVERY = 1000
"""Loop items between two looks at the rendering's time."""


def _counted(items: Any) -> Iterator[Any]:
    """What a ``{% for %}`` goes through: every item counts against the rendering's
    budget, and every thousandth looks at its time (the compiler wraps each loop)."""
    budget, n = _spend(), 0
    for n, item in enumerate(items, 1):
        if n % LOOP_CHECK_EVERY == 0:
            budget.items -= LOOP_CHECK_EVERY
            if budget.items < 0:
                raise SecurityError(f"loops over more than {MAX_LOOP_ITEMS} items in one template")
            budget.check_time()
        yield item
    budget.items -= n % LOOP_CHECK_EVERY


COUNTED = "ihook_counted"
"""The filter every ``{% for %}`` goes through (``_Sandbox._parse`` adds it)."""


def _too_long(value: Any) -> bool:
    return isinstance(value, str | list | tuple | bytes) and len(value) > MAX_TEXT_CHARS


_PRINTF_WIDE = re.compile(r"%[-+ #0]*(\d{7,}|\d*\.\d{7,})")
_FORMAT_WIDE = re.compile(r"\{[^{}]*:[^{}]*\d{7,}[^{}]*\}")
_FORMAT_NESTED = re.compile(r"\{[^{}]*:[^{}]*\{")
"""A printf or ``str.format`` width or precision of a million or more, and a format
whose width comes from an argument (``'{:>{}}'``)."""
_SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
"""String methods whose number argument is the size of what they build."""
_SIZED_FILTERS = frozenset({"center", "indent"})
"""Filters whose number arguments (after the value) are the size of what they build."""


def _check_sizes(name: str, values: Iterable[Any]) -> None:
    """Refuse, before it runs, a call asked to build something over the cap."""
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TEXT_CHARS:
            raise SecurityError(f"{name}: an argument over {MAX_TEXT_CHARS}")


def _check_format(name: str, fmt: Any, args: Iterable[Any] = ()) -> None:
    """Refuse a format string whose width or precision would build over the cap."""
    if not isinstance(fmt, str):
        return
    if _PRINTF_WIDE.search(fmt) or _FORMAT_WIDE.search(fmt):
        raise SecurityError(f"{name}: a format width of a million or more")
    if _FORMAT_NESTED.search(fmt) or "*" in fmt:  # a width taken from the arguments
        _check_sizes(name, args)


def _capped_filter(name: str, function: Any) -> Any:
    """A filter that checks the size it is asked for and the size of what it returns."""

    @functools.wraps(function)  # keeps Jinja's pass_context / pass_environment marks
    def capped(*args: Any, **kwargs: Any) -> Any:
        _spend()
        if name in _SIZED_FILTERS:
            _check_sizes(f"filter {name}", (*args[1:], *kwargs.values()))
        elif name == "format" and args:
            _check_format("filter format", args[0], (*args[1:], *kwargs.values()))
        result = function(*args, **kwargs)
        if _too_long(result):
            raise SecurityError(f"filter {name}: a value over {MAX_TEXT_CHARS} characters")
        return result

    return capped


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox (no unsafe attributes or calls), plus caps on what a template can
    make: strings and lists by ``*``, ``+``, filters, sized methods and format widths,
    numbers by ``**``, loop items, and time. Each check raises ``SecurityError``."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        """The template's tree, each ``{% for x in items %}`` made ``items|ihook_counted``."""
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, COUNTED, [], [], None, None, lineno=loop.lineno)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _spend()
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int):
                    if len(seq) * count > MAX_TEXT_CHARS:
                        raise SecurityError(f"'*' would build over {MAX_TEXT_CHARS} items")
        if operator == "**" and isinstance(right, int | float) and abs(right) > 1024:
            raise SecurityError("'**' with an exponent over 1024")
        if operator == "%":
            _check_format("'%'", left, right if isinstance(right, tuple) else (right,))
        result = super().call_binop(context, operator, left, right)
        if _too_long(result):
            raise SecurityError(f"a value over {MAX_TEXT_CHARS} characters")
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _spend()
        name = getattr(__obj, "__name__", "")
        subject = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(subject, str):
            if name in _SIZED_METHODS:
                _check_sizes(name, (*args, *kwargs.values()))
            elif name in ("format", "format_map"):
                _check_format(name, subject, (*args, *kwargs.values()))
        result = super().call(__context, __obj, *args, **kwargs)
        if _too_long(result):
            raise SecurityError(f"a value over {MAX_TEXT_CHARS} characters")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        value = super().getattr(obj, attribute)
        if _too_long(value):  # e.g. a namespace attribute grown in a loop
            raise SecurityError(f"a value over {MAX_TEXT_CHARS} characters")
        return value


_ENV = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False)
_ENV.filters["tojson"] = _tojson
_ENV.filters.update({name: _capped_filter(name, f) for name, f in _ENV.filters.items()})
_ENV.filters[COUNTED] = _counted
_ENV.globals.update(now=utc_now, uuid=lambda: str(_uuid.uuid4()))


@lru_cache(maxsize=CACHE_SIZE)
def compile_template(src: str) -> jinja2.Template:
    """Compile a jinja2 template in the sandbox; raise ExpressionError on syntax errors."""
    if not isinstance(src, str):
        raise ExpressionError("template must be a string")
    if len(src) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"template longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        return _ENV.from_string(src)
    except jinja2.TemplateError as exc:
        raise ExpressionError(f"bad template: {exc}") from None


def render(template: str, context: dict[str, Any]) -> str:
    """Render a template against the context; undefined names and unsafe access fail,
    and so does a rendering over ``MAX_TEXT_CHARS``, ``MAX_LOOP_ITEMS`` or
    ``MAX_RENDER_SECONDS`` (``ExpressionError`` naming the cap)."""
    token = _budget.set(_Budget())
    try:
        parts, size = [], 0
        for part in compile_template(template).generate(context):
            size += len(part)
            if size > MAX_TEXT_CHARS:
                raise SecurityError(f"output over {MAX_TEXT_CHARS} characters")
            _spend()
            parts.append(part)
        return "".join(parts)
    except jinja2.TemplateError as exc:  # SecurityError and UndefinedError included
        raise ExpressionError(f"template failed: {exc}") from None
    except (RecursionError, MemoryError) as exc:
        raise ExpressionError(f"template failed: {type(exc).__name__}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:  # 1/0, 'a' + 1 …
        raise ExpressionError(f"template failed: {type(exc).__name__}: {exc}") from None
    finally:
        _budget.reset(token)


def check_jmespath(src: str) -> None:
    """Raise ExpressionError unless ``src`` compiles as jmespath."""
    compile_jmespath(src)


def check_template(src: str) -> None:
    """Raise ExpressionError unless ``src`` compiles as a jinja2 template."""
    compile_template(src)


def referenced_steps(src: str) -> set[str]:
    """Step ids an expression reads as ``steps.<id>`` (a best-effort textual scan)."""
    return set(_STEP_REF.findall(src)) if isinstance(src, str) else set()
