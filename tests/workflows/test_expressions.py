from __future__ import annotations

import re

import pytest

from workflows.errors import ExpressionError
from workflows.expressions import (
    check_jmespath,
    check_template,
    compile_jmespath,
    compile_template,
    referenced_steps,
    render,
    search,
    truthy,
)


def test_custom_functions() -> None:
    data = {"name": " Ada ", "missing": None}
    assert search("lower(name)", data) == " ada "
    assert search("upper(name)", data) == " ADA "
    assert search("trim(name)", data) == "Ada"
    assert search("default(missing, 'x')", data) == "x"
    assert search("default(name, 'x')", data) == " Ada "
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", search("now()", {}))
    assert re.fullmatch(r"[0-9a-f-]{36}", search("uuid()", {}))


def test_builtin_jmespath_still_works() -> None:
    assert search("items[?n > `1`].n", {"items": [{"n": 1}, {"n": 2}]}) == [2]


def test_compiled_expressions_are_cached() -> None:
    assert compile_jmespath("a.b") is compile_jmespath("a.b")
    assert compile_template("{{ a }}") is compile_template("{{ a }}")


def test_bad_jmespath_is_refused() -> None:
    with pytest.raises(ExpressionError, match="bad jmespath"):
        check_jmespath("a[")
    with pytest.raises(ExpressionError, match="unknown function"):
        check_jmespath("nope(a)")
    with pytest.raises(ExpressionError):
        check_jmespath("")


def test_failing_evaluation_raises_expression_error() -> None:
    with pytest.raises(ExpressionError, match="failed"):
        search("lower(n)", {"n": 5})


def test_render_and_tojson() -> None:
    assert render("Hi {{ data.name }}", {"data": {"name": "Ada"}}) == "Hi Ada"
    assert render("{{ v | tojson }}", {"v": {"a": "<&>"}}) == '{"a": "<&>"}'
    assert len(render("{{ uuid() }}", {})) == 36


def test_undefined_names_fail() -> None:
    with pytest.raises(ExpressionError, match="has no attribute"):
        render("{{ data.nope }}", {"data": {}})


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ data.__class__ }}",
    ],
)
def test_sandbox_refuses_unsafe_access(template: str) -> None:
    with pytest.raises(ExpressionError):
        render(template, {"data": {}})


def test_check_template() -> None:
    check_template("{{ a }} {% if b %}x{% endif %}")
    with pytest.raises(ExpressionError, match="bad template"):
        check_template("{{ a ")
    with pytest.raises(ExpressionError):
        check_template("{{ a | no_such_filter }}")


def test_truthy_follows_jmespath() -> None:
    assert [truthy(v) for v in (None, False, "", [], {})] == [False] * 5
    assert all(truthy(v) for v in (0, "x", [0], {"a": 1}, True))


def test_referenced_steps() -> None:
    src = "steps.a.x && data.steps.b || steps . c"
    assert referenced_steps(src) == {"a", "c"}
    assert referenced_steps("/m/{{ steps.save.key }}") == {"save"}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("parse_time(t)", "2026-11-20T09:00:00.000Z"),
        ("parse_time(epoch)", "2026-11-18T11:06:40.000Z"),
        ("parse_time_format(dmy, '%d/%m/%Y')", "2026-11-20T00:00:00.000Z"),
        ("format_time(t, '%Y-%m-%d %H:%M')", "2026-11-20 10:00"),
        ("split(csv, ',')", ["a", "b"]),
        ("replace(csv, ',', ';')", "a;b"),
        ('merge(`{"a": 1}`, `{"b": 2}`)', {"a": 1, "b": 2}),
    ],
)
def test_time_and_text_functions(expression: str, expected: object) -> None:
    data = {
        "t": "2026-11-20T10:00:00+01:00",
        "epoch": 1795000000,
        "dmy": "20/11/2026",
        "csv": "a,b",
    }
    assert search(expression, data) == expected


@pytest.mark.parametrize("expression", ["parse_time('soon')", "parse_time_format(dmy, '%Y')"])
def test_unreadable_times_are_expression_errors(expression: str) -> None:
    with pytest.raises(ExpressionError):
        search(expression, {"dmy": "20/11/2026"})


def test_the_caps_leave_ordinary_templates_alone() -> None:
    """Big numbers, percent signs and braces in data, modest widths: all render."""
    context = {"data": {"ts": 1700000000, "id": "A-1", "text": "Order {1234567}: 50% off"}}
    cases = {
        "{{ data.ts }} {{ data.ts|string }} {{ data.ts|int }}": "1700000000 " * 2 + "1700000000",
        "{{ '%d'|format(data.ts) }} {{ '{}'.format(data.ts) }}": "1700000000 1700000000",
        "{{ 'Order 1234567: %s' % data.id }}": "Order 1234567: A-1",
        "{{ range(data.ts, data.ts + 2)|list }}": "[1700000000, 1700000001]",
        "{{ data.text|upper }}": "ORDER {1234567}: 50% OFF",
        "{{ '%.2f'|format(3.14159) }}|{{ '{:>4}'.format('x') }}": "3.14|   x",
        "{{ 'x'.center(3) }}": " x ",
        "{% for n in range(3) %}{{ n }}{% else %}none{% endfor %}": "012",
        "{% for n in [] %}{{ n }}{% else %}none{% endfor %}": "none",
    }
    for template, expected in cases.items():
        assert render(template, context) == expected, template
