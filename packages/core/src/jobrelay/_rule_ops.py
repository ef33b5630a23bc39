"""Runtime pieces of routing conditions.

Bounded operations, guarded attribute and item access, the callable whitelist, and
positions for error messages.

Every operation here either returns a value within the bounds below or raises
:class:`Fail` (turned into a ``RuleError`` with a column by its caller).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import types
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, NoReturn

import attrs

from jobrelay._spec import JobSpec
from jobrelay.errors import RuleError

MAX_TEXT: Final = 4096
"""Longest condition text, in UTF-8 bytes."""
MAX_DEPTH: Final = 50
"""Deepest nesting of brackets or sub-expressions."""
MAX_INT: Final = 2**64
"""Largest magnitude of an integer literal or result."""
MAX_STRING: Final = 65536
"""Longest string result, in characters."""
MAX_POWER: Final = 64
"""Largest exponent of ``**``."""

Context = Mapping[str, Any]
Fn = Callable[[Context], Any]
# One side of a comparison: ("const", value, None, fn), ("name", name, where, fn),
# ("path", (name, where, (attr, where)), None, fn) or ("fn", None, None, fn).
Operand = tuple[str, Any, "Where | None", Fn]
_MISSING: Any = object()

EMPTY: Context = types.MappingProxyType({})
NUMBER = (int, float, Decimal)
_SHOWN = 120


class Fail(Exception):  # noqa: N818 - private signal, converted to RuleError with a column
    """An operation refused its operands; the message says why."""


def short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, safe for any input: short, and never raising.

    A huge integer is described by its size (past 4300 digits it cannot even be
    formatted), a nesting too deep to print by its type.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - RecursionError, a failing __repr__, digit limits
        return f"a {type(value).__name__} that cannot be shown"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tname(value: object) -> str:
    return "None" if value is None else type(value).__name__


@attrs.frozen
class Where:
    """A position in the condition text, to make errors that point at it."""

    text: str
    column: int | None
    line: int | None = None

    def error(self, message: str) -> RuleError:
        line = f" on line {self.line}" if self.line is not None else ""
        return RuleError(
            f"{message}{line} in condition {short(self.text)!r}",
            text=short(self.text),
            column=self.column,
        )


# -- runtime operations -------------------------------------------------------------------


def bounded(value: Any) -> Any:
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise Fail("integer result beyond 2**64")
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise Fail(f"string result longer than {MAX_STRING} characters")
    if isinstance(value, complex):
        raise Fail("complex result")
    return value


def _numbers(symbol: str, a: Any, b: Any) -> None:
    if not (isinstance(a, NUMBER) and isinstance(b, NUMBER)):
        raise Fail(f"unsupported operand types for {symbol}: {tname(a)} and {tname(b)}")
    # A huge operand (from the caller's context) would make even one step slow.
    if (isinstance(a, int) and not -MAX_INT <= a <= MAX_INT) or (
        isinstance(b, int) and not -MAX_INT <= b <= MAX_INT
    ):
        raise Fail(f"integer operand of {symbol} beyond 2**64")


def _repeat(text: str, times: int) -> str:
    if times > 0 and len(text) * times > MAX_STRING:
        raise Fail(f"string result longer than {MAX_STRING} characters")
    return text * times


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING:
            raise Fail(f"string result longer than {MAX_STRING} characters")
        return a + b
    _numbers("+", a, b)
    return bounded(a + b)


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, int):
        return _repeat(a, b)
    if isinstance(a, int) and isinstance(b, str):
        return _repeat(b, a)
    _numbers("*", a, b)
    return bounded(a * b)


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        raise Fail("string formatting with % is not allowed")
    _numbers("%", a, b)
    return bounded(a % b)


def _pow(a: Any, b: Any) -> Any:
    _numbers("**", a, b)
    if b > MAX_POWER:
        raise Fail(f"exponent over {MAX_POWER}")
    # Check the size of an integer result before computing it: |a| >= 2**(bits - 1).
    if isinstance(a, int) and isinstance(b, int) and b > 0 and (abs(a).bit_length() - 1) * b > 64:
        raise Fail("integer result beyond 2**64")
    return bounded(a**b)


def _arith(symbol: str, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        _numbers(symbol, a, b)
        return bounded(op(a, b))

    return apply


BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", _add),
    ast.Sub: ("-", _arith("-", operator.sub)),
    ast.Mult: ("*", _mul),
    ast.Div: ("/", _arith("/", operator.truediv)),
    ast.FloorDiv: ("//", _arith("//", operator.floordiv)),
    ast.Mod: ("%", _mod),
    ast.Pow: ("**", _pow),
}
REFUSED_OPERATORS = {
    ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
    ast.MatMult: "@", ast.Invert: "~",
}  # fmt: skip


def _is_in(a: Any, b: Any) -> bool:
    return a in b


def _not_in(a: Any, b: Any) -> bool:
    return a not in b


COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Eq: ("==", operator.eq),
    ast.NotEq: ("!=", operator.ne),
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
    ast.In: ("in", _is_in),
    ast.NotIn: ("not in", _not_in),
    ast.Is: ("is", operator.is_),
    ast.IsNot: ("is not", operator.is_not),
}

# Receivers whose attributes lead to code, globals or the interpreter: never read.
_OPAQUE = (
    type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
    types.FrameType, types.CodeType, types.TracebackType, types.GeneratorType,
    types.CoroutineType, types.AsyncGeneratorType, types.MethodWrapperType,
    types.WrapperDescriptorType, types.MethodDescriptorType, types.ClassMethodDescriptorType,
    types.GetSetDescriptorType, types.MemberDescriptorType, functools.partial, property,
    classmethod, staticmethod,
)  # fmt: skip
_PLAIN, _MAPPING, _CLOSED = 0, 1, 2
_kinds: dict[type, int] = {}


def _kind(cls: type) -> int:
    kind = _kinds.get(cls)
    if kind is None:
        kind = (
            _CLOSED
            if issubclass(cls, _OPAQUE)
            else _MAPPING
            if issubclass(cls, Mapping)
            else _PLAIN
        )
        if len(_kinds) < 4096:
            _kinds[cls] = kind
    return kind


def _attribute(obj: Any, name: str) -> Any:
    kind = _kind(type(obj))
    if kind == _PLAIN:
        try:
            return getattr(obj, name)
        except AttributeError:
            raise Fail(f"{tname(obj)} has no attribute {name!r}") from None
    if kind == _MAPPING:
        try:
            return obj[name]
        except KeyError:
            raise Fail(f"no key {name!r} in the {tname(obj)}") from None
    raise Fail(f"attributes of a {tname(obj)} are not readable")


def read(obj: Any, attr: str, where: Where) -> Any:
    if attr == "secrets" and isinstance(obj, JobSpec):
        raise_at(where, "a job's secrets are not readable from conditions")
    try:
        return _attribute(obj, attr)
    except Fail as exc:
        raise_at(where, str(exc))


def name_attribute(name: str, name_where: Where, attr: str, where: Where) -> Fn:
    """``name.attr`` in one closure: the commonest shape of a condition, made fast."""
    plain: type | None = None  # the last receiver type seen to be plain data

    def name_dot_attr(context: Context) -> Any:
        nonlocal plain
        try:
            obj = context[name]
        except KeyError:
            raise_at(name_where, f"unknown name {name!r}")
        cls = type(obj)
        if cls is not plain and _kind(cls) == _PLAIN:
            plain = cls
        if cls is plain:
            value = getattr(obj, attr, _MISSING)
            if value is not _MISSING:
                return value
        return read(obj, attr, where)

    return name_dot_attr


def item(obj: Any, key: Any) -> Any:
    if not isinstance(obj, (str, tuple, list, Mapping, Sequence)):
        raise Fail(f"a {tname(obj)} cannot be indexed")
    try:
        return obj[key]
    except (KeyError, IndexError) as exc:
        what = "key" if isinstance(exc, KeyError) else "index"
        raise Fail(f"no {what} {shown(key)} in the {tname(obj)}") from None
    except TypeError:
        raise Fail(f"a {tname(obj)} cannot be indexed with a {tname(key)}") from None


# name -> (least positional arguments, most (None: any), keywords allowed)
FUNCTIONS: dict[str, tuple[int, int | None, frozenset[str]]] = {
    "len": (1, 1, frozenset()),
    "min": (1, None, frozenset({"default"})),
    "max": (1, None, frozenset({"default"})),
}
BUILTINS: dict[str, Callable[..., Any]] = {"len": len, "min": min, "max": max}
METHODS: dict[str, tuple[int, int | None, frozenset[str]]] = {
    "startswith": (1, 3, frozenset()),
    "endswith": (1, 3, frozenset()),
    "lower": (0, 0, frozenset()),
    "upper": (0, 0, frozenset()),
    "strip": (0, 1, frozenset()),
    "split": (0, 2, frozenset({"sep", "maxsplit"})),
}
STR_METHODS: dict[str, Callable[..., Any]] = {name: getattr(str, name) for name in METHODS}


def constant(value: Any) -> Fn:
    return lambda _context: value


def raise_at(where: Where, message: str, exc: BaseException | None = None) -> NoReturn:
    raise where.error(message) from exc


def function_call(
    function: Callable[..., Any],
    name: str,
    arg_fns: tuple[Fn, ...],
    kw_fns: tuple[tuple[str, Fn], ...],
    where: Where,
) -> Fn:
    def call(context: Context) -> Any:
        args = [fn(context) for fn in arg_fns]
        kwargs = {key: fn(context) for key, fn in kw_fns}
        try:
            return function(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise_at(where, f"{name}() failed with {type(exc).__name__}: {exc}")

    return call


def method_call(
    method: Callable[..., Any],
    name: str,
    receiver: Fn,
    arg_fns: tuple[Fn, ...],
    kw_fns: tuple[tuple[str, Fn], ...],
    where: Where,
    constants: tuple[Any, ...] | None = None,
) -> Fn:
    """Build ``receiver.name(*args, **kwargs)`` for a whitelisted string method.

    ``constants``, when given, are the arguments already computed (all constant).
    """
    # Only case changes can grow a string (German sharp s upper-cases to two letters).
    grows = name in {"lower", "upper"}
    if constants is not None:
        if len(constants) == 1 and not grows:
            (argument,) = constants

            def call_one(context: Context) -> Any:
                obj = receiver(context)
                if not isinstance(obj, str):
                    raise_at(where, f"{name}() is a string method; got {tname(obj)}")
                try:
                    return method(obj, argument)
                except (TypeError, ValueError) as exc:
                    raise_at(where, f"{name}() failed with {type(exc).__name__}: {exc}")

            return call_one

        def call_constants(context: Context) -> Any:
            obj = receiver(context)
            if not isinstance(obj, str):
                raise_at(where, f"{name}() is a string method; got {tname(obj)}")
            try:
                result = method(obj, *constants)
                return bounded(result) if grows else result
            except Fail as exc:
                raise_at(where, str(exc))
            except (TypeError, ValueError) as exc:
                raise_at(where, f"{name}() failed with {type(exc).__name__}: {exc}")

        return call_constants

    def call(context: Context) -> Any:
        obj = receiver(context)
        if not isinstance(obj, str):
            raise_at(where, f"{name}() is a string method; got {tname(obj)}")
        args = [fn(context) for fn in arg_fns]
        kwargs = {key: fn(context) for key, fn in kw_fns}
        try:
            result = method(obj, *args, **kwargs)
            return bounded(result) if grows else result
        except Fail as exc:
            raise_at(where, str(exc))
        except (TypeError, ValueError) as exc:
            raise_at(where, f"{name}() failed with {type(exc).__name__}: {exc}")

    return call


_ORDERING = frozenset({"==", "!=", "<", "<=", ">", ">="})


def _as_decimal(value: float) -> Decimal | float:
    return Decimal(repr(value)) if math.isfinite(value) else value


def decimal_aware(symbol: str, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """``op`` comparing a ``Decimal`` with a ``float`` as written: ``0.04`` is 4/100.

    Python compares them exactly, and the float nearest 0.04 is a little above it, so
    ``Decimal("0.04") <= 0.04`` would be false: a surprise in ``cost["x"] <= 0.04``.
    """
    if symbol not in _ORDERING:
        return op

    def compare(a: Any, b: Any) -> Any:
        if type(a) is Decimal and type(b) is float:
            return op(a, _as_decimal(b))
        if type(a) is float and type(b) is Decimal:
            return op(_as_decimal(a), b)
        return op(a, b)

    return compare


def compare_one(
    symbol: str, op: Callable[[Any, Any], Any], left: Operand, right: Operand, where: Where
) -> Fn:
    """Build a single comparison of two operands (constants fold to a getter each)."""

    def failed(a: Any, b: Any) -> NoReturn:
        raise_at(where, f"cannot apply {symbol!r} to {tname(a)} and {tname(b)}")

    left_kind, left_value, _, get_left = left
    right_kind, right_value, _, get_right = right
    if (left_kind != "const" or type(left_value) is float) and (
        right_kind != "const" or type(right_value) is float
    ):
        op = decimal_aware(symbol, op)  # a side may be a Decimal facing a float

    def any_any(context: Context) -> Any:
        a, b = get_left(context), get_right(context)
        try:
            return op(a, b)
        except TypeError:
            failed(a, b)

    return any_any


Failed = Callable[[Any, Any], NoReturn]
