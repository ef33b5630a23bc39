"""Hypothesis strategies for routing conditions: well-typed expression trees and contexts.

Each generated :class:`Expr` is rendered fully parenthesised, so its text has exactly
the tree the strategy built, and it keeps its sub-expressions so a test can ask
Python, the oracle, about every part of it. Expressions stay inside the language
(whitelisted calls, no slices, small exponents) and mostly well typed, so most of
them evaluate; the ones that fail (division by zero, a missing key) must fail on
both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import attrs
from hypothesis import strategies as st

ALPHABET = "abAB -_.ß0"
KEYS = ("k", "team", "tier")


@attrs.frozen
class Expr:
    """A generated condition: its text and the sub-expressions it is made of."""

    text: str
    parts: tuple[Expr, ...] = ()

    def walk(self) -> list[Expr]:
        """This expression and every sub-expression, outermost first."""
        found = [self]
        for part in self.parts:
            found.extend(part.walk())
        return found


def _leaf(text: str) -> Expr:
    return Expr(text)


def _op(template: str, *parts: Expr) -> Expr:
    return Expr(template.format(*(f"({part.text})" for part in parts)), parts)


# Mostly tiny strings over two letters, so equalities, prefixes and "in" often hold.
short_text = st.one_of(st.text(alphabet="ab", max_size=3), st.text(alphabet=ALPHABET, max_size=6))
small_int = st.one_of(st.integers(-5, 5), st.integers(-1000, 1000))


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    """Plain data under fixed names: the same dict serves both evaluators."""
    return {
        "a": draw(small_int),
        "b": draw(small_int),
        "x": draw(st.floats(-1e3, 1e3, allow_nan=False)),
        "y": draw(st.floats(-1e3, 1e3, allow_nan=False)),
        "s": draw(short_text),
        "t": draw(short_text),
        "flag": draw(st.booleans()),
        "nothing": None,
        "items": draw(st.lists(short_text, max_size=4)),
        "m": draw(st.dictionaries(st.sampled_from(KEYS), st.integers(-9, 9), max_size=3)),
        "obj": SimpleNamespace(
            name=draw(short_text),
            size=draw(st.integers(0, 100)),
            tags=draw(st.lists(short_text, max_size=3)),
            inner=SimpleNamespace(level=draw(st.integers(-5, 5))),
        ),
    }


int_leaves = st.one_of(
    small_int.map(lambda v: _leaf(repr(v))),
    st.sampled_from(["a", "b", "obj.size", "obj.inner.level", "len(items)", "len(m)"]).map(_leaf),
    st.sampled_from(KEYS).map(lambda key: _leaf(f"m[{key!r}]")),
)
float_leaves = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: _leaf(repr(v))),
    st.sampled_from(["x", "y"]).map(_leaf),
)
str_leaves = st.one_of(
    short_text.map(lambda v: _leaf(repr(v))),
    st.sampled_from(["s", "t", "obj.name"]).map(_leaf),
    st.integers(-3, 3).map(lambda i: _leaf(f"items[{i}]")),
)
list_leaves = st.one_of(
    st.sampled_from(["items", "obj.tags"]).map(_leaf),
    st.lists(short_text, max_size=3).map(lambda v: _leaf(repr(v))),
)
bool_leaves = st.sampled_from(["True", "False", "flag", "nothing is None"]).map(_leaf)


def _binary(symbol: str) -> Callable[[tuple[Expr, Expr]], Expr]:
    return lambda pair: _op("{} " + symbol + " {}", *pair)


def _call(template: str) -> Callable[[Expr], Expr]:
    return lambda expr: _op(template, expr)


Typed = dict[str, st.SearchStrategy[Expr]]
LEAVES: Typed = {
    "int": int_leaves,
    "float": float_leaves,
    "str": str_leaves,
    "list": list_leaves,
    "bool": bool_leaves,
}


def _level(sub: Typed) -> Typed:
    """Expressions one level deeper than ``sub``, per result type (half stay as they are)."""
    ints, floats, strs, lists, bools = (sub[k] for k in ("int", "float", "str", "list", "bool"))
    numbers = st.one_of(ints, floats)
    anything = st.one_of(ints, floats, strs, lists, bools)
    int_pair = st.tuples(ints, ints)
    number_pair = st.tuples(numbers, numbers)
    comparison = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])

    def compare(side: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.tuples(side, comparison, side).map(
            lambda p: Expr(f"({p[0].text}) {p[1]} ({p[2].text})", (p[0], p[2]))
        )

    new_ints = st.one_of(
        st.sampled_from(["+", "-", "*", "//", "%"]).flatmap(lambda op: int_pair.map(_binary(op))),
        ints.map(_call("-{}")),
        st.tuples(ints, st.integers(0, 3)).map(lambda p: Expr(f"({p[0].text}) ** {p[1]}", (p[0],))),
        st.sampled_from(["min", "max"]).flatmap(lambda f: int_pair.map(lambda p: _op(f + "({}, {})", *p))),
        strs.map(_call("len({})")),
        lists.map(_call("len({})")),
        st.tuples(bools, ints, ints).map(lambda p: _op("{1} if {0} else {2}", *p)),
    )  # fmt: skip
    new_floats = st.one_of(
        st.sampled_from(["+", "-", "*", "/"]).flatmap(lambda op: number_pair.map(_binary(op))),
        floats.map(_call("-{}")),
        st.tuples(floats, st.integers(0, 2)).map(lambda p: Expr(f"({p[0].text}) ** {p[1]}", (p[0],))),
    )  # fmt: skip
    new_strs = st.one_of(
        st.tuples(strs, strs).map(_binary("+")),
        st.tuples(strs, st.integers(-1, 4)).map(lambda p: Expr(f"({p[0].text}) * {p[1]}", (p[0],))),
        st.sampled_from(["lower", "upper", "strip"]).flatmap(lambda m: strs.map(_call("{}." + m + "()"))),
        strs.map(_call("{}.strip('ab')")),
        st.tuples(bools, strs, strs).map(lambda p: _op("{1} if {0} else {2}", *p)),
        st.tuples(lists, st.integers(-2, 2)).map(lambda p: Expr(f"({p[0].text})[{p[1]}]", (p[0],))),
        st.tuples(strs, st.integers(-2, 2)).map(lambda p: Expr(f"({p[0].text})[{p[1]}]", (p[0],))),
    )  # fmt: skip
    new_lists = st.one_of(
        strs.map(_call("{}.split()")),
        strs.map(_call("{}.split('-')")),
        strs.map(_call("{}.split('-', maxsplit=1)")),
        st.tuples(strs, strs).map(lambda p: _op("[{}, {}]", *p)),
    )
    new_bools = st.one_of(
        compare(numbers),
        compare(strs),
        st.tuples(numbers, comparison, numbers, comparison, numbers).map(
            lambda p: Expr(
                f"({p[0].text}) {p[1]} ({p[2].text}) {p[3]} ({p[4].text})", (p[0], p[2], p[4])
            )
        ),
        st.tuples(strs, strs).map(lambda p: _op("{} in {}", *p)),
        st.tuples(strs, lists).map(lambda p: _op("{} in {}", *p)),
        st.tuples(strs, lists).map(lambda p: _op("{} not in {}", *p)),
        st.sampled_from(KEYS).map(lambda key: _leaf(f"{key!r} in m")),
        st.tuples(strs, strs).map(lambda p: _op("{}.startswith({})", *p)),
        st.tuples(strs, strs).map(lambda p: _op("{}.endswith({})", *p)),
        anything.map(_call("not {}")),
        anything.map(_call("{} is None")),
        anything.map(_call("{} is not None")),
        st.tuples(anything, anything).map(_binary("and")),
        st.tuples(anything, anything).map(_binary("or")),
    )
    return {
        "int": st.one_of(ints, new_ints),
        "float": st.one_of(floats, new_floats),
        "str": st.one_of(strs, new_strs),
        "list": st.one_of(lists, new_lists),
        "bool": st.one_of(bools, new_bools),
    }


def expressions(depth: int = 5) -> st.SearchStrategy[Expr]:
    """Conditions of any result type, at most ``depth`` operators deep."""
    typed = LEAVES
    for _ in range(depth):
        typed = _level(typed)
    return st.one_of(*typed.values())


# Every operator and call of the language, each with operands of fitting types, by name.
_NUMBER_LEAVES = st.one_of(int_leaves, float_leaves)
_STR_OR_LIST = st.one_of(str_leaves, list_leaves)


def _unary(template: str, leaves: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return leaves.map(_call(template))


def _pair(
    template: str, left: st.SearchStrategy[Expr], right: st.SearchStrategy[Expr]
) -> st.SearchStrategy[Expr]:
    return st.tuples(left, right).map(lambda p: _op(template, *p))


OPERATIONS: dict[str, st.SearchStrategy[Expr]] = {
    **{
        f"number {op} number": _pair("{} " + op + " {}", _NUMBER_LEAVES, _NUMBER_LEAVES)
        for op in ("+", "-", "*", "/", "//", "%", "<", "<=", ">", ">=", "==", "!=")
    },
    **{
        f"str {op} str": _pair("{} " + op + " {}", str_leaves, str_leaves)
        for op in ("+", "<", "<=", ">", ">=", "==", "!=", "in", "not in")
    },
    "str in list": _pair("{} in {}", str_leaves, list_leaves),
    "str not in list": _pair("{} not in {}", str_leaves, list_leaves),
    "str * int": _pair("{} * {}", str_leaves, int_leaves),
    "int * str": _pair("{} * {}", int_leaves, str_leaves),
    "number ** small": st.tuples(_NUMBER_LEAVES, st.integers(-3, 3)).map(
        lambda p: Expr(f"({p[0].text}) ** {p[1]}", (p[0],))
    ),
    "-number": _unary("-{}", _NUMBER_LEAVES),
    "+number": _unary("+{}", _NUMBER_LEAVES),
    "not any": _unary("not {}", st.one_of(_NUMBER_LEAVES, _STR_OR_LIST, bool_leaves)),
    "any is None": _unary("{} is None", st.one_of(_NUMBER_LEAVES, str_leaves, bool_leaves)),
    **{
        f"any {op} any": _pair(
            "{} " + op + " {}",
            st.one_of(bool_leaves, _NUMBER_LEAVES, str_leaves),
            st.one_of(bool_leaves, _NUMBER_LEAVES, _STR_OR_LIST),
        )
        for op in ("and", "or")
    },
    "bool + number": _pair("{} + {}", bool_leaves, _NUMBER_LEAVES),
    **{f"str.{m}(str)": _pair("{}." + m + "({})", str_leaves, str_leaves) for m in (
        "startswith", "endswith", "strip", "split")},
    **{f"str.{m}()": _unary("{}." + m + "()", str_leaves) for m in ("lower", "upper", "strip", "split")},
    "str.split(str, maxsplit=int)": st.tuples(str_leaves, str_leaves, st.integers(-1, 2)).map(
        lambda p: Expr(f"({p[0].text}).split(({p[1].text}), maxsplit={p[2]})", p[:2])
    ),
    "index": st.tuples(_STR_OR_LIST, st.integers(-4, 4)).map(
        lambda p: Expr(f"({p[0].text})[{p[1]}]", (p[0],))
    ),
    "mapping[key]": st.sampled_from(KEYS).map(lambda key: _leaf(f"m[{key!r}]")),
    "key in mapping": st.sampled_from(KEYS).map(lambda key: _leaf(f"{key!r} in m")),
    **{f"{f}(number, number)": _pair(f + "({}, {})", _NUMBER_LEAVES, _NUMBER_LEAVES) for f in (
        "min", "max")},
    **{f"{f}(str or list)": _unary(f + "({})", _STR_OR_LIST) for f in ("len", "min", "max")},
    "x if c else y": st.tuples(bool_leaves, _NUMBER_LEAVES, str_leaves).map(
        lambda p: _op("{1} if {0} else {2}", *p)
    ),
    "a < b <= c": st.tuples(_NUMBER_LEAVES, _NUMBER_LEAVES, _NUMBER_LEAVES).map(
        lambda p: _op("{} < {} <= {}", *p)
    ),
    "[a, b]": _pair("[{}, {}]", str_leaves, _NUMBER_LEAVES),
}  # fmt: skip


TOKENS = [
    "a", "b", "s", "x", "obj", "name", "job", "user", "_x", "__class__", "__import__",
    "len", "min", "max", "startswith", "split", "format", "True", "None", "not", "and",
    "or", "in", "is", "if", "else", "lambda", "for", "await", "yield", ":=", ":", ",",
    ".", "(", ")", "[", "]", "{", "}", "+", "-", "*", "**", "/", "//", "%", "<", "<=",
    "==", "!=", ">", "@", "~", "<<", "&", "|", "^", "=", "0", "1", "2**64", "9**99",
    "1e308", "1j", "0x10", "'a'", '"b"', "b'c'", "f'{a}'", "'''", "\\", "#", "\n", "\t",
    "...", "*a", "**m",
]  # fmt: skip
token_soup = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)
