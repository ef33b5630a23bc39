"""The part of the Cloud Logging filter language the fake understands.

Grammar (a subset of https://cloud.google.com/logging/docs/view/logging-query-language)::

    expr       := conj ("OR" conj)*
    conj       := unary ("AND" unary)*
    unary      := "NOT" unary | "(" expr ")" | comparison
    comparison := field OP values
    field      := NAME ("." (NAME | STRING))*
    OP         := "=" | "!=" | ">" | ">=" | "<" | "<="
    values     := value | "(" value ("OR" value)* ")"
    value      := STRING | NAME

Anything else raises :class:`FilterError` (the fake answers 400, as the service does).
Comparisons on ``timestamp`` compare instants; the rest compare strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

__all__ = ["FilterError", "compile_filter", "names_timestamp"]

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|[=<>().])|(?P<word>[^\s=<>!().":]+))'
)


class FilterError(ValueError):
    """The filter text is outside the supported grammar."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"cannot read the filter at column {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        if match["str"] is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", match["str"][1:-1])))
        elif match["op"] is not None:
            out.append(("op", match["op"]))
        else:
            out.append(("word", match["word"]))
    return out


def _instant(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"not a timestamp: {value!r}") from None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("the filter ends too early")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1] != value:
            raise FilterError(f"expected {value!r}, got {token[1]!r}")

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token == ("word", word)

    def parse(self) -> Predicate:
        predicate = self.expr()
        if self.peek() is not None:
            raise FilterError(f"unexpected {self.peek()!r}")
        return predicate

    def expr(self) -> Predicate:
        parts = [self.conj()]
        while self.is_word("OR"):
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else (lambda e: any(p(e) for p in parts))

    def conj(self) -> Predicate:
        parts = [self.unary()]
        while self.is_word("AND"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda e: all(p(e) for p in parts))

    def unary(self) -> Predicate:
        if self.is_word("NOT"):
            self.take()
            inner = self.unary()
            return lambda e: not inner(e)
        if self.peek() == ("op", "("):
            self.take()
            inner = self.expr()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Predicate:
        kind, first = self.take()
        if kind != "word":
            raise FilterError(f"expected a field name, got {first!r}")
        path = [first]
        while self.peek() == ("op", "."):
            self.take()
            kind, part = self.take()
            if kind not in {"word", "str"}:
                raise FilterError(f"bad field name part {part!r}")
            path.append(part)
        kind, op = self.take()
        if kind != "op" or op not in _COMPARE:
            raise FilterError(f"expected a comparison after {'.'.join(path)}, got {op!r}")
        values = self.values()
        compare = _COMPARE[op]
        is_time = path == ["timestamp"]
        if op not in {"=", "!="} and len(values) > 1:
            raise FilterError("only = and != take a group of values")
        wanted = [_instant(v) for v in values] if is_time else values

        def predicate(entry: dict[str, Any]) -> bool:
            found: Any = entry
            for part in path:
                found = found.get(part) if isinstance(found, dict) else None
            if found is None:
                return op == "!="
            actual = _instant(found) if is_time else str(found)
            if op == "!=":
                return all(compare(actual, w) for w in wanted)
            return any(compare(actual, w) for w in wanted)

        return predicate

    def values(self) -> list[str]:
        if self.peek() == ("op", "("):
            self.take()
            values = [self.value()]
            while self.is_word("OR"):
                self.take()
                values.append(self.value())
            self.expect(")")
            return values
        return [self.value()]

    def value(self) -> str:
        kind, text = self.take()
        if kind not in {"str", "word"}:
            raise FilterError(f"expected a value, got {text!r}")
        return text


def compile_filter(text: str) -> Predicate:
    """Return a predicate over log entries for ``text`` (empty: match everything)."""
    if not text.strip():
        return lambda _entry: True
    return _Parser(text).parse()


def names_timestamp(text: str) -> bool:
    """Return whether the filter bounds ``timestamp`` (the real service's 24 h default)."""
    return any(token == ("word", "timestamp") for token in _tokens(text))
