"""Conditions under hostile numbers and nestings, and with ``Decimal`` money."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from jobrelay import RuleError, compile_rule

HUGE = 10**5000
DEEP: list[Any] = []
for _ in range(3000):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    ("text", "x", "message"),
    [
        # Computing these first would take seconds or minutes; the bound comes first.
        ("x ** 64", 2**63, r"integer result beyond 2\*\*64"),
        ("x ** 64", 3, r"integer result beyond 2\*\*64"),
        ("x ** 64", HUGE, r"integer operand of \*\* beyond 2\*\*64"),
        ("x ** 64", 2 ** (10**6), r"integer operand of \*\* beyond 2\*\*64"),
        ("x % 3", HUGE, r"integer operand of % beyond 2\*\*64"),
        ("x // 7", -HUGE, r"integer operand of // beyond 2\*\*64"),
        ("x * x", 2**40, r"integer result beyond 2\*\*64"),
        ("x / 3", HUGE, r"integer operand of / beyond 2\*\*64"),
        ("labels[x]", HUGE, r"no key an integer of 5001 digits in the dict"),
    ],
    ids=["pow-2**63", "pow-3", "pow-huge", "pow-2**1e6", "mod", "floordiv", "mul", "div", "key"],
)
def test_bounds_are_checked_before_computing(text: str, x: object, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        compile_rule(text).evaluate({"x": x, "labels": {}})


@pytest.mark.parametrize(
    ("text", "x", "expected"),
    [
        ("x ** 64", 2, 2**64),
        ("x ** 40", 3, 3**40),
        ("x ** 64", -1, 1),
        ("x ** 64", 1, 1),
        ("x ** 64", 0, 0),
        ("x ** -2", 2, 0.25),
        ("x > 5", HUGE, True),  # comparing a huge number is cheap, and allowed
    ],
    ids=["2**64", "3**40", "-1", "1", "0", "negative", "compare-huge"],
)
def test_results_within_bounds_are_computed(text: str, x: object, expected: object) -> None:
    assert compile_rule(text).value({"x": x}) == expected


def test_deeply_nested_context_values_give_rule_errors() -> None:
    other: list[Any] = []
    for _ in range(3000):
        other = [other]
    rule = compile_rule("x == y")
    with pytest.raises(RuleError, match="RecursionError"):
        rule.evaluate({"x": DEEP, "y": other})
    assert compile_rule("x == 1").evaluate({"x": DEEP}) is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rate < 0.05", True),
        ("rate >= 0.04", True),
        ("rate == 0.04", True),  # as written, though the float nearest 0.04 is not 4/100
        ("rate <= 0.04", True),
        ("0.04 >= rate", True),
        ("0.03 < rate <= 0.04", True),
        ("rate != 0.04", False),
        ("rate < 0.04", False),
        ("rate == x", True),
        ('rate == rates["a"]', True),
        ("rate * 2 < 0.1", True),
        ("rate + 1 > 1", True),
        ("-rate < 0", True),
        ("max(rate, 0.01) == rate", True),
        ("rate in [rates['a']]", True),
        ("rate < inf", True),
    ],
)
def test_decimal_rates_compare_with_floats_and_ints(text: str, expected: object) -> None:
    context = {
        "rate": Decimal("0.04"),
        "rates": {"a": Decimal("0.040")},
        "x": 0.04,
        "inf": float("inf"),
    }
    assert compile_rule(text).evaluate(context) is expected


def test_decimal_and_float_arithmetic_is_a_rule_error() -> None:
    # Python refuses to mix them rather than lose exactness; so does the language.
    with pytest.raises(RuleError, match=r"\* failed with TypeError"):
        compile_rule("rate * 0.5 < 1").evaluate({"rate": Decimal("0.04")})
