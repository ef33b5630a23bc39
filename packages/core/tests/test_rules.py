"""The routing-condition language: what it accepts, what it refuses, and its bounds."""

from __future__ import annotations

import ast
import builtins
import contextlib
import math
import threading
import warnings
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import jobrelay
from jobrelay import JobSpec, Resources, Rule, RuleError, compile_rule
from rule_strategies import OPERATIONS, Expr, contexts, expressions, token_soup

ORACLE_BUILTINS = {"__builtins__": {"len": len, "min": min, "max": max}}


def job_context(job: JobSpec, **extra: Any) -> dict[str, Any]:
    context = {
        "job": job,
        "template": job,
        "name": job.name,
        "memory_mb": job.resources.memory,
        "cpu_cores": job.resources.cpu,
        "timeout_seconds": job.timeout or 0,
        "labels": job.labels,
        "user": None,
    }
    context.update(extra)
    return context


# -- what the language accepts -------------------------------------------------------

JOB = JobSpec(
    "busybox",
    "true",
    name="ml-train",
    resources=Resources(cpu=2, memory="16Gi"),
    labels={"team": "vision", "tier": "gold"},
    secrets={"TOKEN": "s3cr3t-value"},
)
PREMIUM = SimpleNamespace(groups=["premium", "eu"], name="ana")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("memory_mb > 8192", True),
        ("cpu_cores > 4.0", False),
        ("timeout_seconds > 3600", False),
        ('template.name.startswith("ml-")', True),
        ('template.name.startswith("batch-")', False),
        ('user and "premium" in user.groups', True),
        ('name.startswith("test-")', False),
        ("job.resources.memory_mb == memory_mb", True),
        ('labels.team == "vision"', True),
        ('labels["tier"] in ("gold", "silver")', True),
        ('"team" in labels and "owner" not in labels', True),
        ("1 < cpu_cores <= 2 < memory_mb", True),
        ("-2**2 == -4 and 2**-1 == 0.5 and 7 // 2 == 3 and -7 % 3 == 2", True),
        ("len(labels) == 2 and min(1, cpu_cores) == 1 and max([3, 9, 4]) == 9", True),
        ("max([], default=0) == 0 and min('ba') == 'a'", True),
        ('name.upper().lower().strip() == "ml-train"', True),
        ('name.split("-")[0] == "ml" and name.split("-", maxsplit=1)[-1] == "train"', True),
        ('"a" * 3 + "b" == "aaab"', True),
        ('{"x": 1, "y": 2}["y"] == 2 and {1, 2} == {2, 1} and [1, 2][1] == 2', True),
        ('"gpu" if memory_mb > 8192 else "cpu"', "gpu"),
        ("user.name if user else None", "ana"),
        ("user is not None and user.name is not None", True),
        ("not (memory_mb < 1024 or cpu_cores > 8)", True),
        ("  memory_mb > 8192  # a comment", True),
        ("(\n  memory_mb > 8192\n  and cpu_cores < 4\n)", True),
        ("True and None", None),
        ("0 or '' or 'x'", "x"),
        ("2**64", 2**64),
        ("-(2**64)", -(2**64)),
    ],
)
def test_accepted_conditions(text: str, expected: object) -> None:
    rule = compile_rule(text)
    assert rule.value(job_context(JOB, user=PREMIUM)) == expected
    assert rule.evaluate(job_context(JOB, user=PREMIUM)) is bool(expected)


def test_none_names_are_none_not_errors() -> None:
    rule = compile_rule('user and "premium" in user.groups')
    assert rule.value({"user": None}) is None
    assert rule.evaluate({"user": None}) is False
    assert rule.evaluate({"user": SimpleNamespace(groups=["basic"])}) is False


def test_rule_records_the_names_it_reads_and_compares_by_text() -> None:
    rule = compile_rule('user and "premium" in user.groups or memory_mb > len(labels)')
    assert rule.names == frozenset({"user", "memory_mb", "labels"})
    assert rule == Rule(rule.text, rule.names, fn=lambda _context: None)
    assert hash(rule) == hash(compile_rule(rule.text))
    assert "memory_mb" in repr(rule)
    assert compile_rule(rule.text) is rule  # compiled once, shared


def test_rules_are_exported() -> None:
    assert jobrelay.compile_rule is compile_rule
    assert jobrelay.Rule is Rule


# -- what it refuses at compile time, with the column ---------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("_secret", "names starting with '_'", 1),
        ("job._private", "attributes starting with '_'", 5),
        ("job.name.__class__", "attributes starting with '_'", 10),
        ("().__class__.__bases__[0].__subclasses__()", "'_'", 4),
        ("__import__('os').system('true')", "names starting with '_'", 1),
        ("open('/etc/passwd')", "may be called", 1),
        ("name.format(1)", "may be called", 6),
        ("job.environment()", "may be called", 5),
        ("len(name) + eval('1')", "may be called", 13),
        ("[c for c in name]", "comprehensions", 1),
        ("{c for c in name}", "comprehensions", 1),
        ("{c: 1 for c in name}", "comprehensions", 1),
        ("any(c for c in name)", "may be called", 1),
        ("min(c for c in name)", "comprehensions", 4),
        ("lambda: 1", "lambda", 1),
        ("name[1:]", "slices", 6),
        ("name[::2]", "slices", 6),
        ("labels[0, 1:2]", "slices", 11),
        ("f'{name}'", "f-strings", 1),
        ("(x := 1)", "assignment expressions", 2),
        ("[*labels]", "starred", 2),
        ("len(*labels)", "starred", 5),
        ("max(**labels)", "** arguments", 5),
        ("{**labels}", "** unpacking", 4),
        ("1 << 2", "operator <<", 1),
        ("memory_mb & 1", "operator &", 1),
        ("~memory_mb", "operator ~", 1),
        ("b'bytes'", "bytes literals", 1),
        ("1j", "complex literals", 1),
        ("...", "... literals", 1),
        ("len", "can only be called", 1),
        ("len(name, name)", "takes 1 positional", 1),
        ("name.startswith()", "takes 1 to 3 positional", 1),
        ("name.lower('x')", "takes 0 positional", 1),
        ("name.split(',', 1, 2)", "takes 0 to 2", 1),
        ("name.strip(chars='a')", "no keyword argument 'chars'", 12),
        ("min(1, key=len)", "no keyword argument 'key'", 8),
        ("2**65", "exponent over 64", 1),
        ("9**9**9**9", "exponent over 64", 4),
        ("2**64 + 1", "integer result beyond 2**64", 1),
        ("18446744073709551617", "integer literal beyond 2**64", 1),
        ("'a' * 10**9", "string result longer than 65536", 1),
        ("1 / 0", "ZeroDivisionError", 1),
        ("'%s' % 1", "string formatting", 1),
        ("memory_mb >", "unexpected end of condition", 12),
        ("memory_mb > > 1", "invalid syntax", 13),
        ("(memory_mb > 1", "never closed", 1),
        ("é + $", "invalid syntax", 5),
        ("if x", "invalid syntax", 1),
        ("", "empty condition", None),
        ("   ", "empty condition", None),
    ],
)
def test_refused_at_compile_time_with_column(text: str, message: str, column: int | None) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(text)
    assert message in str(caught.value)
    assert caught.value.column == column
    if column is not None:
        assert f"(column {column})" in str(caught.value)


def test_position_in_a_multi_line_condition() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule("(\n  memory_mb > 1\n  and job.__class__\n)")
    assert caught.value.column == 11
    assert "on line 3" in str(caught.value)


def test_non_string_condition() -> None:
    with pytest.raises(RuleError, match="must be a string, got list"):
        compile_rule(["memory_mb > 1"])  # type: ignore[arg-type]


# -- bounds ----------------------------------------------------------------------------


def test_text_longer_than_4_kib_is_refused() -> None:
    compile_rule("x == '" + "a" * 4089 + "'")  # 4096 bytes: the largest accepted
    with pytest.raises(RuleError, match="longer than 4096 bytes"):
        compile_rule("x == '" + "a" * 4090 + "'")
    with pytest.raises(RuleError, match="longer than 4096 bytes"):
        compile_rule(f"name == '{'é' * 2047}'")  # under 4096 characters, over in bytes


def test_nesting_limit_is_fifty() -> None:
    compile_rule("(" * 50 + "x" + ")" * 50)
    with pytest.raises(RuleError, match="brackets nested deeper than 50") as caught:
        compile_rule("(" * 51 + "x" + ")" * 51)
    assert caught.value.column == 51
    compile_rule("[" * 25 + "{" * 25 + "x" + "}" * 25 + "]" * 25)
    compile_rule("not " * 50 + "x")
    with pytest.raises(RuleError, match="nested deeper than 50"):
        compile_rule("not " * 51 + "x")
    with pytest.raises(RuleError, match="nested"):
        compile_rule("-" * 4000 + "1")


def test_brackets_inside_strings_and_comments_do_not_count() -> None:
    rule = compile_rule("name == '" + "(" * 60 + "' # " + "[" * 60)
    assert rule.evaluate({"name": "(" * 60})


@pytest.mark.parametrize(
    ("text", "context", "message"),
    [
        ("x * x", {"x": 2**40}, "integer result beyond 2**64"),
        ("x + 1", {"x": 2**64}, "integer result beyond 2**64"),
        ("-x", {"x": -(2**64) - 1}, "integer result beyond 2**64"),
        ("x ** y", {"x": 2, "y": 65}, "exponent over 64"),
        ("x ** 64", {"x": 1e10}, "OverflowError"),
        ("x ** 0.5", {"x": -8}, "complex result"),
        ("s * n", {"s": "ab", "n": 40_000}, "string result longer than 65536"),
        ("s + s", {"s": "a" * 40_000}, "string result longer than 65536"),
        ("s.upper()", {"s": "ß" * 40_000}, "string result longer than 65536"),
        ("x / y", {"x": 1, "y": 0}, "ZeroDivisionError"),
        ("items + items", {"items": [1]}, "unsupported operand types for +: list and list"),
        ("items * 2", {"items": [1]}, "unsupported operand types for *: list and int"),
        ("x < s", {"x": 1, "s": "a"}, "cannot apply '<' to int and str"),
        ("x in y", {"x": 1, "y": 2}, "cannot apply 'in' to int and int"),
        ("-s", {"s": "a"}, "bad operand type for unary -: str"),
        ("s.startswith(1)", {"s": "a"}, "startswith() failed with TypeError"),
        ("x.startswith('a')", {"x": 1}, "startswith() is a string method; got int"),
        ("max(x)", {"x": []}, "max() failed with ValueError"),
        ("items[5]", {"items": [1]}, "no index 5 in the list"),
        ("m['k']", {"m": {}}, "no key 'k' in the dict"),
        ("m.k", {"m": {}}, "no key 'k' in the dict"),
        ("x[0]", {"x": 3}, "a int cannot be indexed"),
        ("o.missing", {"o": SimpleNamespace()}, "SimpleNamespace has no attribute 'missing'"),
        ("{x: 1}", {"x": []}, "dict keys must be hashable"),
        ("{x}", {"x": []}, "set elements must be hashable"),
        ("unknown > 1", {}, "unknown name 'unknown'"),
    ],
)
def test_refused_at_evaluation(text: str, context: dict[str, Any], message: str) -> None:
    rule = compile_rule(text)
    with pytest.raises(RuleError) as caught:
        rule.value(context)
    assert message in str(caught.value)


def test_evaluation_errors_carry_the_column() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule("memory_mb > 1 and usr.name == 'x'").evaluate({"memory_mb": 2})
    assert caught.value.column == 19
    assert "unknown name 'usr'" in str(caught.value)


def test_failures_inside_context_objects_become_rule_errors() -> None:
    class Flaky:
        @property
        def level(self) -> int:
            raise ValueError("backend down")

        def __eq__(self, other: object) -> bool:
            raise KeyError("broken eq")

        __hash__ = object.__hash__

    with pytest.raises(RuleError, match="ValueError: backend down") as caught:
        compile_rule("flaky.level > 1").evaluate({"flaky": Flaky()})
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(RuleError, match="evaluation failed with KeyError"):
        compile_rule("flaky == 1").evaluate({"flaky": Flaky()})


# -- what a condition can reach ------------------------------------------------------


def test_secrets_are_not_readable_and_never_shown() -> None:
    for text in ("job.secrets", "template.secrets.TOKEN == 's3cr3t-value'"):
        with pytest.raises(RuleError, match="secrets are not readable") as caught:
            compile_rule(text).evaluate(job_context(JOB))
        assert "s3cr3t-value" not in str(caught.value).replace("'s3cr3t-value'", "")
    # A mapping that merely has a "secrets" key is plain data.
    assert compile_rule("cfg.secrets == 1").evaluate({"cfg": {"secrets": 1}})


@pytest.mark.parametrize(
    "value",
    [
        SimpleNamespace(mod=math),
        SimpleNamespace(mod=math.sqrt),
        SimpleNamespace(mod=SimpleNamespace),
        SimpleNamespace(mod=test_secrets_are_not_readable_and_never_shown),
        SimpleNamespace(mod="text".upper),
        SimpleNamespace(mod=iter(())),
        SimpleNamespace(mod=(i for i in range(1))),
        SimpleNamespace(mod=property(lambda _self: 1)),
    ],
)
def test_modules_classes_functions_and_frames_expose_nothing(value: object) -> None:
    rule = compile_rule("obj.mod.anything")
    with pytest.raises(RuleError, match=r"has no attribute|are not readable"):
        rule.evaluate({"obj": value})


def test_generator_frames_are_not_reachable() -> None:
    gen: Any = (i for i in range(3))
    with pytest.raises(RuleError, match="attributes of a generator are not readable"):
        compile_rule("g.gi_frame.f_globals").evaluate({"g": gen})
    with pytest.raises(RuleError, match="are not readable"):
        compile_rule("f.f_globals").evaluate({"f": gen.gi_frame})


def test_evaluation_reads_the_context_and_never_changes_it() -> None:
    names = {"items": ["a", "b"], "m": {"k": 1}}
    frozen = MappingProxyType(names)
    rule = compile_rule("len(items) + m.k")
    assert rule.value(frozen) == 3
    assert names == {"items": ["a", "b"], "m": {"k": 1}}
    built = compile_rule("[1, 2]")
    first = built.value()
    first.append(3)
    assert built.value() == [1, 2]  # mutable literals are built afresh


def test_rules_are_safe_to_share_between_threads() -> None:
    rule = compile_rule("x * 2 + len(s)")
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        wrong = [
            i
            for i in range(2000)
            if rule.value({"x": i + offset, "s": "ab"}) != (i + offset) * 2 + 2
        ]
        errors.extend(AssertionError(i) for i in wrong)

    threads = [threading.Thread(target=work, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# -- the hostile corpus --------------------------------------------------------------


class Probe:
    """A context value that records every touch."""

    def __init__(self) -> None:
        object.__setattr__(self, "touched", [])

    def __getattribute__(self, name: str) -> Any:
        if name != "touched":
            object.__getattribute__(self, "touched").append(name)
        return object.__getattribute__(self, name)


HOSTILE = [
    "probe.__class__",
    "probe.__class__.__mro__[-1].__subclasses__()",
    "().__class__.__bases__[0].__subclasses__()",
    "probe.__init__.__globals__['os'].system('touch {marker}')",
    "probe.__reduce_ex__(2)",
    "__import__('os').system('touch {marker}')",
    "__builtins__",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "(lambda: __import__('os').system('touch {marker}'))()",
    "getattr(probe, '__class__')",
    "probe.__dict__",
    'exec(\'open("{marker}", "w")\')',
    "eval('1')",
    "open('{marker}', 'w')",
    "9**9**9**9",
    "'a'*10**9",
    "(1).__class__",
    "probe.touched.__class__",
    "f'{{probe.__class__}}'",
    "(" * 10_000 + "1" + ")" * 10_000,
    "x" * (1 << 20),
    "not " * 1000 + "x",
    "-" * 4000 + "1",
]


@pytest.mark.parametrize("template", HOSTILE, ids=lambda t: t[:40])
def test_hostile_corpus_is_refused_and_nothing_runs(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    text = template.format(marker=marker) if "{" in template and len(template) < 200 else template
    probe = Probe()
    real_compile = builtins.compile

    calls: list[str] = []

    def parse_only(
        source: Any, filename: Any, mode: str, flags: int = 0, *args: Any, **kw: Any
    ) -> Any:
        calls.append("compile" if flags & ast.PyCF_ONLY_AST else "COMPILE TO CODE")
        return real_compile(source, filename, mode, flags, *args, **kw)

    def forbidden(*_args: Any, **_kwargs: Any) -> Any:
        calls.append("EVAL OR EXEC")
        raise AssertionError("eval/exec must never run")

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "eval", forbidden)
        patch.setattr(builtins, "exec", forbidden)
        patch.setattr(builtins, "compile", parse_only)
        with pytest.raises(RuleError):
            compile_rule(text).value({"probe": probe, "x": 1})
    assert set(calls) <= {"compile"}, calls  # ast.parse only: never code, never eval/exec
    assert probe.touched == []
    assert not marker.exists()


# -- property tests ------------------------------------------------------------------


def _same(ours: object, python: object) -> bool:
    if type(ours) is not type(python):
        return False
    if isinstance(ours, float) and isinstance(python, float):
        return ours == python or (math.isnan(ours) and math.isnan(python))
    if isinstance(ours, (list, tuple)) and isinstance(python, (list, tuple)):
        return len(ours) == len(python) and all(map(_same, ours, python))
    return ours == python


def _out_of_bounds(value: object) -> bool:
    return (
        (isinstance(value, int) and abs(value) > 2**64)
        or (isinstance(value, str) and len(value) > 65536)
        or isinstance(value, complex)
    )


def _python(text: str, context: dict[str, Any]) -> tuple[bool, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "is" with a literal: chatter, not an answer
            return True, eval(text, dict(ORACLE_BUILTINS), dict(context))  # noqa: S307 - oracle
    except Exception as exc:  # noqa: BLE001 - any failure is the oracle's answer
        return False, exc


def _some_part_fails_or_breaks_a_bound(expr: Expr, context: dict[str, Any]) -> bool:
    for part in expr.walk():
        ok, value = _python(part.text, context)
        if not ok or _out_of_bounds(value):
            return True
    return False


def _check_against_python(expr: Expr, context: dict[str, Any]) -> None:
    ok, expected = _python(expr.text, context)
    try:
        actual = compile_rule(expr.text).value(context)
    except RuleError:
        event("both fail" if not ok else "bound or folded failure")
        # Ours may refuse only where Python fails too, or where a part breaks a bound
        # (or is a constant part that fails, computed once at compile time).
        assert not ok or _some_part_fails_or_breaks_a_bound(expr, context), expr.text
        return
    event("evaluated")
    assert ok, f"Python failed with {expected!r} but ours gave {actual!r}: {expr.text}"
    assert _same(actual, expected), f"{expr.text}: ours {actual!r}, Python {expected!r}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions(), context=contexts())
def test_matches_python_on_plain_data(expr: Expr, context: dict[str, Any]) -> None:
    _check_against_python(expr, context)


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_each_operation_matches_python(operation: str, data: st.DataObject) -> None:
    expr = data.draw(OPERATIONS[operation], label="expr")
    _check_against_python(expr, data.draw(contexts(), label="context"))


def _only_rule_errors(text: str) -> None:
    try:
        rule = compile_rule(text)
    except RuleError:
        return
    with contextlib.suppress(RuleError):
        rule.value({"a": 1, "b": 2, "s": "x", "x": 1.5, "obj": SimpleNamespace(a=1), "m": {}})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_raises_only_rule_errors(text: str) -> None:
    _only_rule_errors(text)


@settings(max_examples=500, deadline=None)
@given(token_soup)
def test_token_soup_raises_only_rule_errors(text: str) -> None:
    _only_rule_errors(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from("(["), min_size=0, max_size=120))
def test_any_bracket_nesting_is_handled(opening: list[str]) -> None:
    closing = {"(": ")", "[": "]"}
    text = "".join(opening) + "1" + "".join(closing[c] for c in reversed(opening))
    if len(opening) <= 50:
        assert compile_rule(text) is not None
    else:
        with pytest.raises(RuleError, match="nested deeper than 50"):
            compile_rule(text)


def test_invalid_escape_is_not_a_warning_turned_error() -> None:
    # pytest runs with warnings as errors; the parser's SyntaxWarning must not leak.
    assert compile_rule(r"name == '\d'").evaluate({"name": "\\d"})
