"""Routing conditions: a small, bounded subset of Python expressions, never ``eval``ed.

A condition is parsed once with :func:`ast.parse` (``mode="eval"``) and a strict
whitelist walker compiles the tree into plain Python closures; user text never reaches
``eval``, ``exec`` or ``compile``. The accepted grammar, in Python's own terms::

    condition   := expression                        (at most 4096 bytes)
    expression  := disjunction ["if" disjunction "else" expression]
    disjunction := conjunction ("or" conjunction)*
    conjunction := inversion ("and" inversion)*
    inversion   := "not" inversion | comparison
    comparison  := sum (compare_op sum)*
    compare_op  := "==" | "!=" | "<" | "<=" | ">" | ">=" | ["not"] "in" | "is" ["not"]
    sum         := term (("+" | "-") term)*
    term        := factor (("*" | "/" | "//" | "%") factor)*
    factor      := ("+" | "-") factor | power
    power       := primary ["**" factor]
    primary     := atom | primary "." NAME | primary "[" expression "]"
                 | ("len" | "min" | "max") "(" arguments ")"
                 | primary "." STRING_METHOD "(" arguments ")"
    atom        := NAME | NUMBER | STRING+ | "True" | "False" | "None"
                 | "(" expression ")" | tuple | list | set | dict
    STRING_METHOD := "startswith" | "endswith" | "lower" | "upper" | "strip" | "split"

NAME never starts with ``_`` (neither does an attribute). Everything else Python
allows in an expression (other calls, comprehensions, lambdas, slices, f-strings,
``:=``, ``*x``, bitwise operators, bytes and complex literals) is refused at compile
time with a :class:`~jobrelay.errors.RuleError` that carries the column.

Evaluation follows Python's semantics on plain data, within bounds: an integer result
beyond 2**64, a string result beyond 65,536 characters, or a ``**`` exponent over 64
raises ``RuleError``, as does an unknown name or any failing operation (arithmetic is
on ``int``, ``float``, ``Decimal`` and ``bool``, plus ``str + str`` and ``str * int``;
an integer operand beyond 2**64 is refused before anything is computed, and so is a
``**`` whose result would be). A ``Decimal`` (such as an hourly rate in ``cost``)
compares with a ``float`` as the float is written: ``cost["x"] <= 0.04`` holds for a
rate of exactly 0.04, though the float nearest 0.04 is a little more. A
sub-expression made only of constants is computed once, at compile time, so ``2**65``
or ``1 / 0`` is a compile error even in a branch that would never run. Attribute
access reads non-underscore attributes of ordinary objects and keys of mappings
(``labels.team`` is ``labels["team"]``); modules, classes, functions, frames and code
objects expose nothing, and a job's ``secrets`` are never readable. A name bound to
``None`` is just ``None``, so ``user and "premium" in user.groups`` works without a user.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs

from jobrelay._rule_compiler import Compiler, Source
from jobrelay._rule_ops import (
    EMPTY,
    MAX_DEPTH,
    MAX_INT,
    MAX_POWER,
    MAX_STRING,
    MAX_TEXT,
    Context,
    Fn,
    Where,
    short,
    tname,
)
from jobrelay.errors import RuleError

__all__ = ["MAX_DEPTH", "MAX_INT", "MAX_POWER", "MAX_STRING", "MAX_TEXT", "Rule", "compile_rule"]


@attrs.frozen
class Rule:
    """A compiled routing condition; build one with :func:`compile_rule`.

    Rules are immutable and thread-safe; evaluating one never changes the context.

    Example::

        rule = compile_rule('memory_mb > 8192 or name.startswith("ml-")')
        rule.evaluate({"memory_mb": 16384, "name": "etl"})   # True

    Attributes:
        text: the condition as written.
        names: the context names the condition reads.
    """

    text: str
    names: frozenset[str]
    _fn: Fn = attrs.field(repr=False, eq=False, alias="fn")

    def value(self, context: Context | None = None) -> Any:
        """Evaluate the condition and return its value (``and``/``or`` keep Python's values).

        Raises:
            RuleError: an unknown name, a failing operation, or a bound exceeded.
        """
        try:
            return self._fn(EMPTY if context is None else context)
        except RuleError:
            raise
        except Exception as exc:
            # A context object's own method (__eq__, __len__, a property) failed.
            raise _failed(self.text, exc) from exc

    def evaluate(self, context: Context | None = None) -> bool:
        """Return whether the condition holds for ``context`` (a name -> value mapping).

        Raises:
            RuleError: as :meth:`value`.
        """
        try:
            return bool(self._fn(EMPTY if context is None else context))
        except RuleError:
            raise
        except Exception as exc:
            raise _failed(self.text, exc) from exc


def compile_rule(text: str) -> Rule:
    """Compile a condition once; evaluate the returned :class:`Rule` many times.

    Example::

        rule = compile_rule('user and "premium" in user.groups')
        rule.evaluate({"user": None})   # False

    Raises:
        RuleError: the text is not a condition in the allowed language, is longer than
            4096 bytes or nests deeper than 50 levels; ``column`` points at the cause.
    """
    if not isinstance(text, str):
        raise RuleError(f"a condition must be a string, got {tname(text)}")
    if len(text) > MAX_TEXT or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT:
        raise RuleError(f"condition longer than {MAX_TEXT} bytes", text=short(text))
    return _compile(str(text))


@functools.lru_cache(maxsize=512)
def _compile(text: str) -> Rule:
    # Rules are immutable, so one compiled rule serves every router that names it.
    source = Source(text)
    tree = source.parse()
    compiler = Compiler(source)
    code = compiler.compile(tree.body, 0)
    return Rule(text, frozenset(compiler.names), code.fn)


def rule_function(rule: Rule) -> Fn:
    """Return the compiled closure behind ``rule``.

    For callers in this package that evaluate many rules in a row and handle every
    exception themselves (the Router), skipping :meth:`Rule.evaluate`'s wrapping.
    """
    return rule._fn  # noqa: SLF001 - same module


def _failed(text: str, exc: Exception) -> RuleError:
    return Where(text, None).error(
        f"evaluation failed with {type(exc).__name__}: {short(str(exc))}"
    )
