"""Compiling routing conditions: parse with :mod:`ast`, walk a whitelist, build closures.

See :mod:`jobrelay._rules` for the language. Nothing here runs user text: the parser
only builds a tree, and each allowed node becomes a closure over the operations of
:mod:`jobrelay._rule_ops`. Sub-expressions made only of constants are computed once,
at compile time, so a constant that breaks a bound is a compile error.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from jobrelay._rule_ops import (
    BINARY,
    BUILTINS,
    COMPARE,
    EMPTY,
    FUNCTIONS,
    MAX_DEPTH,
    MAX_INT,
    METHODS,
    NUMBER,
    REFUSED_OPERATORS,
    STR_METHODS,
    Context,
    Fail,
    Fn,
    Operand,
    Where,
    bounded,
    compare_one,
    constant,
    decimal_aware,
    function_call,
    item,
    method_call,
    name_attribute,
    raise_at,
    read,
    tname,
)
from jobrelay.errors import RuleError


class Code(NamedTuple):
    """A compiled sub-expression: its closure, and what its readers may inline."""

    fn: Fn
    const: bool = False
    value: Any = None
    # A bare ``name`` or ``name.attr``: readers of these look them up inline, not by call.
    name: str | None = None
    where: Where | None = None
    attr: tuple[str, Where] | None = None


FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Starred: "starred expressions are not allowed",
    ast.Slice: "slices are not allowed; index with a single value",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


# -- source text and positions ------------------------------------------------------------


class Source:
    """The condition text, leading whitespace set aside, with column bookkeeping."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.body = text.lstrip()
        skipped = text[: len(text) - len(self.body)]
        self.line_shift = skipped.count("\n")
        self.col_shift = len(skipped) - (skipped.rfind("\n") + 1)
        self.lines = self.body.splitlines() or [""]
        self.multiline = "\n" in text.strip()

    def at(self, line: int, column: int) -> Where:
        """Position from a 1-based line of the body and a 0-based character column."""
        if line == 1:
            column += self.col_shift
        return Where(self.text, column + 1, line + self.line_shift if self.multiline else None)

    def node(self, node: ast.AST, *, end_name: str | None = None) -> Where:
        """Position of ``node`` (or of its trailing ``end_name``, for an attribute)."""
        if end_name is not None:
            line = getattr(node, "end_lineno", None) or 1
            offset = (getattr(node, "end_col_offset", None) or 0) - len(end_name.encode())
        else:
            line = getattr(node, "lineno", 1)
            offset = getattr(node, "col_offset", 0)
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        chars = len(
            raw.encode("utf-8", "surrogatepass")[: max(offset, 0)].decode("utf-8", "ignore")
        )
        return self.at(line, chars)

    def parse(self) -> ast.Expression:
        if not self.body.strip():
            raise Where(self.text, None).error("empty condition")
        self._check_brackets()
        try:
            with warnings.catch_warnings():
                # Invalid escapes and the like are the parser's chatter, not our errors.
                warnings.simplefilter("ignore")
                tree = ast.parse(self.body, mode="eval")
        except SyntaxError as exc:
            message = exc.msg or "invalid syntax"
            if not exc.offset:  # the parser ran out of text
                line, column = len(self.lines), len(self.lines[-1].rstrip())
                message = "unexpected end of condition" if message == "invalid syntax" else message
            else:
                line, column = exc.lineno or 1, exc.offset - 1
            raise self.at(line, max(column, 0)).error(message) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            # Null bytes (ValueError before 3.12) or a parser stack exhausted by nesting.
            reason = "nested too deeply" if not isinstance(exc, ValueError) else str(exc)
            raise Where(self.text, None).error(reason) from None
        return tree

    def _check_brackets(self) -> None:
        """Refuse bracket nesting deeper than MAX_DEPTH before the parser sees it."""
        body, depth, i, line, line_start = self.body, 0, 0, 1, 0
        while i < len(body):
            char = body[i]
            if char in "\"'":
                quote = char * 3 if body.startswith(char * 3, i) else char
                end = i + len(quote)
                while end < len(body) and not body.startswith(quote, end):
                    end += 2 if body[end] == "\\" else 1
                line += body.count("\n", i, end)
                if "\n" in body[i:end]:
                    line_start = body.rfind("\n", i, end) + 1
                i = end + len(quote)
                continue
            if char == "#":
                newline = body.find("\n", i)
                i = len(body) if newline < 0 else newline
                continue
            if char == "\n":
                line, line_start = line + 1, i + 1
            elif char in "([{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise self.at(line, i - line_start).error(
                        f"brackets nested deeper than {MAX_DEPTH} levels"
                    )
            elif char in ")]}":
                depth -= 1
            i += 1


# -- the compiler -------------------------------------------------------------------------


class Compiler:
    """Walks a parsed condition, refusing what is not allowed, building closures."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.names: set[str] = set()
        self.handlers: dict[type[ast.AST], Callable[[Any, int], Code]] = {
            ast.Constant: self._constant,
            ast.Name: self._name,
            ast.Attribute: self._attribute,
            ast.Subscript: self._subscript,
            ast.Call: self._call,
            ast.BoolOp: self._boolop,
            ast.UnaryOp: self._unaryop,
            ast.BinOp: self._binop,
            ast.Compare: self._compare,
            ast.IfExp: self._ifexp,
            ast.Tuple: self._sequence,
            ast.List: self._sequence,
            ast.Set: self._sequence,
            ast.Dict: self._dict,
        }

    def compile(self, node: ast.AST, depth: int) -> Code:
        if depth > MAX_DEPTH:
            raise self.source.node(node).error(f"expression nested deeper than {MAX_DEPTH} levels")
        handler = self.handlers.get(type(node))
        if handler is None:
            message = FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed")
            raise self.source.node(node).error(message)
        return handler(node, depth + 1)

    def _fold(self, fn: Fn, node: ast.AST) -> Code:
        """Compute a sub-expression made only of constants now; its failure is a bug."""
        try:
            value = fn(EMPTY)
        except RuleError:
            raise
        except Exception as exc:
            raise self.source.node(node).error(f"failed with {type(exc).__name__}") from exc
        if isinstance(value, (list, set, dict)):
            return Code(fn)  # mutable: rebuilt on each evaluation
        return Code(constant(value), const=True, value=value)

    def _wrap(self, node: ast.AST, fn: Fn, children: Sequence[Code]) -> Code:
        if all(child.const for child in children):
            return self._fold(fn, node)
        return Code(fn)

    def _constant(self, node: ast.Constant, _depth: int) -> Code:
        value = node.value
        if isinstance(value, (bytes, complex)) or value is Ellipsis:
            kind = "..." if value is Ellipsis else type(value).__name__
            raise self.source.node(node).error(f"{kind} literals are not allowed")
        if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
            raise self.source.node(node).error("integer literal beyond 2**64")
        return Code(constant(value), const=True, value=value)

    def _name(self, node: ast.Name, _depth: int) -> Code:
        name = node.id
        where = self.source.node(node)
        if name.startswith("_"):
            raise where.error(f"names starting with '_' are not allowed ({name!r})")
        if name in FUNCTIONS:
            raise where.error(f"{name} can only be called")
        self.names.add(name)

        def lookup(context: Context) -> Any:
            try:
                return context[name]
            except KeyError:
                raise_at(where, f"unknown name {name!r}")

        return Code(lookup, name=name, where=where)

    def _attribute(self, node: ast.Attribute, depth: int) -> Code:
        attr = node.attr
        where = self.source.node(node, end_name=attr)
        owner = self.compile(node.value, depth)  # first, so the leftmost fault is reported
        if attr.startswith("_"):
            raise where.error(f"attributes starting with '_' are not allowed ({attr!r})")
        if (
            owner.name is not None
            and owner.where is not None
            and owner.attr is None
            and (attr != "secrets")
        ):
            return Code(
                name_attribute(owner.name, owner.where, attr, where),
                name=owner.name,
                where=owner.where,
                attr=(attr, where),
            )
        get = owner.fn

        def attribute(context: Context) -> Any:
            return read(get(context), attr, where)

        return Code(attribute)

    def _subscript(self, node: ast.Subscript, depth: int) -> Code:
        obj = self.compile(node.value, depth)
        key = self.compile(node.slice, depth)
        where = self.source.node(node.slice)
        get_obj, get_key = obj.fn, key.fn

        def subscript(context: Context) -> Any:
            try:
                return item(get_obj(context), get_key(context))
            except Fail as exc:
                raise_at(where, str(exc))

        return self._wrap(node, subscript, (obj, key))

    def _call(self, node: ast.Call, depth: int) -> Code:
        func = node.func
        if isinstance(func, ast.Name) and func.id in FUNCTIONS:
            name, receiver, spec = func.id, None, FUNCTIONS[func.id]
        elif isinstance(func, ast.Attribute) and func.attr in METHODS:
            name, spec = func.attr, METHODS[func.attr]
            receiver = self.compile(func.value, depth)
        else:
            attr = func.attr if isinstance(func, ast.Attribute) else None
            if isinstance(func, ast.Attribute):
                self.compile(func.value, depth)  # first, so the leftmost fault is reported
            where = self.source.node(func, end_name=attr)
            if attr is not None and attr.startswith("_"):
                raise where.error(f"attributes starting with '_' are not allowed ({attr!r})")
            if isinstance(func, ast.Name) and func.id.startswith("_"):
                raise where.error(f"names starting with '_' are not allowed ({func.id!r})")
            raise where.error(
                "only len(), min(), max() and the string methods "
                f"{', '.join(sorted(METHODS))} may be called"
            )
        where = self.source.node(node)
        args, kwargs = self._arguments(node, name, spec, depth)
        children = [*args, *kwargs.values(), *([receiver] if receiver else [])]
        arg_fns = tuple(arg.fn for arg in args)
        kw_fns = tuple((key, code.fn) for key, code in kwargs.items())
        if receiver is None:
            call = function_call(BUILTINS[name], name, arg_fns, kw_fns, where)
        else:
            constants = None
            if not kw_fns and all(arg.const for arg in args):
                constants = tuple(arg.value for arg in args)
            call = method_call(
                STR_METHODS[name], name, receiver.fn, arg_fns, kw_fns, where, constants
            )
        return self._wrap(node, call, children)

    def _arguments(
        self, node: ast.Call, name: str, spec: tuple[int, int | None, frozenset[str]], depth: int
    ) -> tuple[list[Code], dict[str, Code]]:
        least, most, keywords = spec
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.source.node(arg).error("starred arguments are not allowed")
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.source.node(keyword).error("** arguments are not allowed")
            if keyword.arg not in keywords:
                raise self.source.node(keyword).error(
                    f"{name}() takes no keyword argument {keyword.arg!r}"
                )
        count = len(node.args)
        if count < least or (most is not None and count > most):
            expected = (
                f"{least}"
                if least == most
                else f"{least} to {most}"
                if most
                else f"{least} or more"
            )
            raise self.source.node(node).error(
                f"{name}() takes {expected} positional arguments, got {count}"
            )
        args = [self.compile(arg, depth) for arg in node.args]
        kwargs = {str(kw.arg): self.compile(kw.value, depth) for kw in node.keywords}
        return args, kwargs

    def _boolop(self, node: ast.BoolOp, depth: int) -> Code:
        codes = [self.compile(value, depth) for value in node.values]
        fns = tuple(code.fn for code in codes)
        first, rest = fns[0], fns[1:]
        if len(fns) == 2 and codes[0].name is not None and codes[0].attr is None:
            # ``user and ...``: the first operand a bare name, read inline.
            name, where, second = codes[0].name, codes[0].where, fns[1]
            is_and = isinstance(node.op, ast.And)

            def name_first(context: Context) -> Any:
                try:
                    value = context[name]
                except KeyError:
                    raise_at(where or self.source.node(node), f"unknown name {name!r}")
                if is_and:
                    return second(context) if value else value
                return value if value else second(context)

            return Code(name_first)
        if len(fns) == 2:
            second = fns[1]
            if isinstance(node.op, ast.And):

                def both(context: Context) -> Any:
                    value = first(context)
                    return second(context) if value else value

                return self._wrap(node, both, codes)

            def either(context: Context) -> Any:
                value = first(context)
                return value if value else second(context)

            return self._wrap(node, either, codes)
        if isinstance(node.op, ast.And):

            def conjunction(context: Context) -> Any:
                value = first(context)
                for fn in rest:
                    if not value:
                        return value
                    value = fn(context)
                return value

            return self._wrap(node, conjunction, codes)

        def disjunction(context: Context) -> Any:
            value = first(context)
            for fn in rest:
                if value:
                    return value
                value = fn(context)
            return value

        return self._wrap(node, disjunction, codes)

    def _unaryop(self, node: ast.UnaryOp, depth: int) -> Code:
        where = self.source.node(node)
        if type(node.op) in REFUSED_OPERATORS:
            raise where.error(f"operator {REFUSED_OPERATORS[type(node.op)]} is not allowed")
        operand = self.compile(node.operand, depth)
        get = operand.fn
        if isinstance(node.op, ast.Not):
            return self._wrap(node, lambda context: not get(context), [operand])
        negate = isinstance(node.op, ast.USub)
        symbol = "-" if negate else "+"

        def sign(context: Context) -> Any:
            value = get(context)
            if not isinstance(value, NUMBER):
                raise_at(where, f"bad operand type for unary {symbol}: {tname(value)}")
            try:
                return bounded(-value if negate else +value)
            except Fail as exc:
                raise_at(where, str(exc))

        return self._wrap(node, sign, [operand])

    def _binop(self, node: ast.BinOp, depth: int) -> Code:
        where = self.source.node(node)
        if type(node.op) in REFUSED_OPERATORS:
            raise where.error(f"operator {REFUSED_OPERATORS[type(node.op)]} is not allowed")
        symbol, op = BINARY[type(node.op)]
        left, right = self.compile(node.left, depth), self.compile(node.right, depth)
        get_left, get_right = left.fn, right.fn

        def binary(context: Context) -> Any:
            a, b = get_left(context), get_right(context)
            try:
                return op(a, b)
            except Fail as exc:
                raise_at(where, str(exc))
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise_at(where, f"{symbol} failed with {type(exc).__name__}: {exc}")

        return self._wrap(node, binary, [left, right])

    def _compare(self, node: ast.Compare, depth: int) -> Code:
        where = self.source.node(node)
        left = self.compile(node.left, depth)
        rights = [self.compile(comparator, depth) for comparator in node.comparators]
        steps = tuple(
            (*COMPARE[type(op)], right.fn) for op, right in zip(node.ops, rights, strict=True)
        )
        get_left = left.fn
        if len(steps) == 1:
            symbol, op, _ = steps[0]
            compare = compare_one(symbol, op, _operand(left), _operand(rights[0]), where)
        else:
            steps = tuple((symbol, decimal_aware(symbol, op), fn) for symbol, op, fn in steps)

            def compare(context: Context) -> Any:
                a = get_left(context)
                result: Any = True
                for symbol, op, get_right in steps:
                    b = get_right(context)
                    try:
                        result = op(a, b)
                    except TypeError:
                        raise_at(where, f"cannot apply {symbol!r} to {tname(a)} and {tname(b)}")
                    if not result:
                        return result
                    a = b
                return result

        return self._wrap(node, compare, [left, *rights])

    def _ifexp(self, node: ast.IfExp, depth: int) -> Code:
        test, body, orelse = (self.compile(n, depth) for n in (node.test, node.body, node.orelse))
        get_test, get_body, get_orelse = test.fn, body.fn, orelse.fn

        def choose(context: Context) -> Any:
            return get_body(context) if get_test(context) else get_orelse(context)

        return self._wrap(node, choose, [test, body, orelse])

    def _sequence(self, node: ast.Tuple | ast.List | ast.Set, depth: int) -> Code:
        codes = [self.compile(element, depth) for element in node.elts]
        fns = tuple(code.fn for code in codes)
        where = self.source.node(node)
        build: Callable[[Any], Any] = (
            tuple if isinstance(node, ast.Tuple) else list if isinstance(node, ast.List) else set
        )

        def sequence(context: Context) -> Any:
            values = [fn(context) for fn in fns]
            try:
                return build(values)
            except TypeError:
                raise_at(where, "set elements must be hashable")

        return self._wrap(node, sequence, codes)

    def _dict(self, node: ast.Dict, depth: int) -> Code:
        pairs = []
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.source.node(value).error("** unpacking is not allowed")
            pairs.append((self.compile(key, depth), self.compile(value, depth)))
        fns = tuple((key.fn, value.fn) for key, value in pairs)
        where = self.source.node(node)

        def mapping(context: Context) -> Any:
            try:
                return {key(context): value(context) for key, value in fns}
            except TypeError:
                raise_at(where, "dict keys must be hashable")

        return self._wrap(node, mapping, [code for pair in pairs for code in pair])


def _operand(code: Code) -> Operand:
    """How a comparison reads one side: a constant, a name, ``name.attr``, or a call."""
    if code.const:
        return ("const", code.value, None, code.fn)
    if code.name is not None and code.where is not None:
        if code.attr is None:
            return ("name", code.name, code.where, code.fn)
        return ("path", (code.name, code.where, code.attr), None, code.fn)
    return ("fn", None, None, code.fn)
