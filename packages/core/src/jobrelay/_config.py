"""Router configuration: routing rules and executor entries, checked before any job runs.

Everything here raises :class:`~jobrelay.errors.ConfigError` naming the offending
field (``executors['gpu-box'].max_concurrent``, ``rules[2].condition``), so a bad
settings file fails when it is loaded, never halfway through routing a job. That
includes each executor's own options: they are bound against the executor class's
signature at load (an unknown key, a missing argument, or a plain value of the wrong
type such as ``timeout = "abc"`` for a ``float`` parameter), and every name a rule's
condition reads must be a standard context name or declared as caller-supplied.
Messages never echo a value whole: huge integers, deep nestings and long texts are
described, not printed.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import re
import sys
import threading
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from jobrelay._clock import Clock
from jobrelay._protocol import Executor, missing_methods
from jobrelay._registry import (
    available_executors,
    bind_config,
    get_executor,
    load_executor_class,
)
from jobrelay._rule_ops import shown
from jobrelay._rules import Rule, compile_rule
from jobrelay.errors import ConfigError, ExecutorLoadError, ExecutorNotFoundError, RuleError

__all__ = [
    "STANDARD_NAMES",
    "ExecutorEntry",
    "RoutingRule",
    "load_toml",
    "parse_config",
    "parse_executors",
    "shown",
]

ENTRY_KEYS = frozenset({"type", "enabled", "max_concurrent", "overflow", "instance"})
RULE_KEYS = frozenset({"condition", "executor", "reason", "priority", "prefer", "context"})
CONFIG_KEYS = frozenset(
    {
        "executors",
        "rules",
        "default",
        "fallback",
        "health_ttl",
        "unhealthy_wait",
        "prefer",
        "context_names",
    }
)
STANDARD_NAMES = frozenset(
    {
        "job",
        "template",
        "name",
        "image",
        "memory_mb",
        "cpu_cores",
        "gpu",
        "timeout_seconds",
        "labels",
        "metadata",
        "user",
        "cost",
    }
)
"""The names every condition may read (see ``Router.route``)."""
PREFER = ("first", "cheapest")
OVERFLOW = ("wait", "fallback")
Prefer = Literal["first", "cheapest"]
MAX_CONCURRENT = 1_000_000
MAX_PRIORITY = 2**63
_SHOWN = 80  # longest key shown as it is


def _keys(keys: Iterable[object]) -> list[str]:
    """Mapping keys for a message: short strings as they are, anything else shown."""
    return sorted(
        key if isinstance(key, str) and len(key) <= _SHOWN else shown(key) for key in keys
    )


def _condition(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"condition must be a string, got {type(value).__name__}")
    return value


def _executor_names(value: object) -> str | tuple[str, ...]:
    if isinstance(value, str):
        if not value:
            raise ConfigError("executor must be a non-empty string, got ''")
        return value
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        names = tuple(value)
        if names and all(isinstance(name, str) and name for name in names):
            if len(set(names)) != len(names):
                raise ConfigError(f"executor names an executor twice: {shown(list(names))}")
            return names if len(names) > 1 else names[0]
    raise ConfigError(f"executor must be a non-empty string or a list of them, got {shown(value)}")


def _reason(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"reason must be a string, got {type(value).__name__}")
    return value


def _default_reason(rule: RoutingRule) -> str:
    return f"rule: {rule.condition}"


def _priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"priority must be an int, got {shown(value)}")
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise ConfigError(f"priority must be within +-2**63, got {shown(value)}")
    return value


def _prefer(value: object) -> Prefer | None:
    if value is None:
        return None
    return parse_prefer("prefer", value)


def _context(value: object) -> tuple[str, ...]:
    return parse_context_names("context", value)


def parse_prefer(field: str, value: object) -> Prefer:
    """Check a ``prefer`` setting: ``"first"`` or ``"cheapest"``."""
    if value == "first":
        return "first"
    if value == "cheapest":
        return "cheapest"
    raise ConfigError(f"{field} must be 'first' or 'cheapest', got {shown(value)}")


def parse_context_names(field: str, value: object) -> tuple[str, ...]:
    """Check a list of caller-supplied context names (identifiers)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(f"{field} must be a list of names, got {shown(value)}")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ConfigError(f"{field}: not a context name: {shown(name)}")
    return names


@attrs.frozen
class RoutingRule:
    """Send jobs matching ``condition`` to ``executor``.

    Rules are tried by ascending ``priority``; rules of equal priority keep the
    order they were given in. The condition is compiled when the rule is made.

    Example::

        RoutingRule("memory_mb > 8192", "fargate", reason="large memory", priority=10)
        RoutingRule("gpu > 0", ["cloudrun", "fargate"], prefer="cheapest")
        RoutingRule('"premium" in account.plans', "fargate", context=["account"])

    Args:
        condition: a condition in the language of :func:`jobrelay.compile_rule`.
        executor: name of a configured executor, or a list of names tried in turn.
        reason: why, as the routing decision reports it; default ``"rule: <condition>"``.
        priority: lower runs first; default 0.
        prefer: how a list of executors is ordered: ``"first"`` (as listed) or
            ``"cheapest"`` (by estimated hourly cost); default the Router's ``prefer``.
        context: names the condition reads that the caller supplies through
            ``route(job, context=...)``, beyond the standard ones. A Router refuses a
            rule that reads a name that is neither.

    Raises:
        RuleError: the condition does not compile.
        ConfigError: another field has the wrong type.
    """

    condition: str = attrs.field(converter=_condition)
    executor: str | tuple[str, ...] = attrs.field(converter=_executor_names)
    reason: str = attrs.field(
        default=attrs.Factory(_default_reason, takes_self=True), converter=_reason
    )
    priority: int = attrs.field(default=0, converter=_priority, kw_only=True)
    prefer: Prefer | None = attrs.field(default=None, converter=_prefer, kw_only=True)
    context: tuple[str, ...] = attrs.field(default=(), converter=_context, kw_only=True)
    rule: Rule = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "rule", compile_rule(self.condition))

    @property
    def executors(self) -> tuple[str, ...]:
        """The executor names this rule sends a job to, in the order listed."""
        return (self.executor,) if isinstance(self.executor, str) else self.executor

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "rule") -> RoutingRule:
        """Build a rule from ``{"condition", "executor", "reason", "priority", ...}``.

        Raises:
            ConfigError: a key is missing or unknown, a value is wrong, or the condition
                does not compile (the message names ``where`` and the column).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a mapping, got {type(data).__name__}")
        unknown = _keys(set(data) - RULE_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(RULE_KEYS)}")
        for key in ("condition", "executor"):
            if key not in data:
                raise ConfigError(f"{where}: missing {key!r}")
        optional = {
            key: data[key]
            for key in ("reason", "priority", "prefer", "context")
            if data.get(key) is not None
        }
        try:
            return cls(data["condition"], data["executor"], **optional)
        except RuleError as exc:
            raise ConfigError(f"{where}.condition: {exc}") from exc
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from exc


@attrs.define
class ExecutorEntry:
    """One configured executor: how to build it, whether to use it, how much at once.

    ``instance`` is set for executors handed over ready-made (``owned`` False: the
    router never closes them) and filled in on first use for the others.
    ``overflow`` says what a job does when the executor is at ``max_concurrent``:
    ``"wait"`` for a slot (the default), or ``"fallback"`` to the next candidate.
    """

    name: str
    type: str
    enabled: bool = True
    max_concurrent: int | None = None
    kwargs: dict[str, Any] = attrs.Factory(dict)
    instance: Executor | None = None
    owned: bool = True
    overflow: Literal["wait", "fallback"] = "wait"
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def create(self, clock: Clock | None = None) -> Executor:
        """Build the executor through the registry; its ``name`` is the entry's name.

        The entry name is passed as ``name=`` when the executor's class takes a
        ``name`` parameter; otherwise the entry must be named after its type. The
        Router's ``clock`` is passed as ``clock=`` when the class takes one and the
        settings do not name their own, so a Router on simulated time runs its
        executors (the mock) on the same time.

        Raises:
            ExecutorNotFoundError, ExecutorLoadError: the registry cannot provide ``type``.
            ConfigError: the executor refused its settings, or cannot take the name.
        """
        kwargs = dict(self.kwargs)
        cls = load_executor_class(self.type)
        if _takes(cls, "name"):
            kwargs["name"] = self.name
        if clock is not None and "clock" not in kwargs and _takes(cls, "clock"):
            kwargs["clock"] = clock
        executor = get_executor(self.type, **kwargs)
        actual = getattr(executor, "name", None)
        if actual != self.name:
            _close_quietly(executor)
            raise ConfigError(
                f"executors[{self.name!r}]: the {self.type!r} executor calls itself "
                f"{shown(actual)} and takes no 'name' parameter; name the entry {shown(actual)}"
            )
        return executor


def _takes(cls: type[object], argument: str) -> bool:
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get(argument)
    return parameter is not None and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY


def _close_quietly(executor: object) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        # Already failing: the first error is the news, a second one from close() is not.
        with contextlib.suppress(Exception):
            close()


def is_executor(value: object) -> bool:
    """Whether ``value`` looks like an executor instance (has every protocol method)."""
    return not isinstance(value, (type, Mapping)) and not missing_methods(value)


def _check_options(where: str, name: str, kind: str, settings: Mapping[str, Any]) -> None:
    """Bind an entry's options against its executor class now, not at the first job.

    A class that cannot be loaded is not checked here: routing reports that executor
    as unavailable, and the other executors keep working.
    """
    try:
        cls = load_executor_class(kind)
    except (ExecutorLoadError, ExecutorNotFoundError):
        return
    options = dict(settings)
    if _takes(cls, "name"):
        options["name"] = name
    try:
        bind_config(cls, options, executor=name)
    except ConfigError as exc:
        message = str(exc).removeprefix(f"executor {name!r}: ")
        raise ConfigError(f"{where}: {message}") from None
    _check_values(where, cls, settings)


_PLAIN_TYPES = (bool, int, float, str, type(None))
_PLAIN_NAMES: dict[str, type] = {t.__name__: t for t in _PLAIN_TYPES} | {"None": type(None)}


def _check_values(where: str, cls: type[object], settings: Mapping[str, Any]) -> None:
    """Refuse option values that plainly contradict a simple annotation of ``cls``.

    Only annotations made of ``bool``, ``int``, ``float``, ``str`` and ``None`` are
    checked (an ``int`` passes for a ``float``), written as types or as the strings
    postponed annotations leave; anything richer is the constructor's to check.
    """
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    for key, value in settings.items():
        parameter = parameters.get(key)
        allowed = None if parameter is None else _plain_types(parameter.annotation)
        if allowed is None or _fits(value, allowed):
            continue
        expected = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
        raise ConfigError(f"{where}.{key}: expected {expected}, got {shown(value)}")


def _plain_types(hint: object) -> tuple[type, ...] | None:
    """The plain types an annotation allows, or None when it is anything richer."""
    if isinstance(hint, str):
        names = [part.strip() for part in hint.split("|")]
        if all(name in _PLAIN_NAMES for name in names):
            return tuple(_PLAIN_NAMES[name] for name in names)
        return None
    if hint in _PLAIN_TYPES:
        return (typing.cast("type", hint),)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if all(arg in _PLAIN_TYPES for arg in args):
            return tuple(typing.cast("type", arg) for arg in args)
    return None


def _fits(value: object, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int) and float in allowed:
        return True
    return any(t is not bool and isinstance(value, t) for t in allowed)


def _entry(name: str, value: object) -> ExecutorEntry:
    where = f"executors[{name!r}]"
    if is_executor(value):
        actual = getattr(value, "name", None)
        if actual != name:
            raise ConfigError(
                f"{where}: the executor instance is named {shown(actual)}; "
                f"the entry must carry its name"
            )
        instance = typing.cast("Executor", value)
        return ExecutorEntry(name, type(value).__name__, instance=instance, owned=False)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: expected an executor or a mapping of its settings, "
            f"got {type(value).__name__}"
        )
    settings = dict(value)
    enabled = settings.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: must be true or false, got {shown(enabled)}")
    limit = settings.pop("max_concurrent", None)
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENT
    ):
        raise ConfigError(
            f"{where}.max_concurrent: must be an int from 1 to {MAX_CONCURRENT}, got {shown(limit)}"
        )
    overflow = settings.pop("overflow", "wait")
    if overflow not in OVERFLOW:
        raise ConfigError(f"{where}.overflow: must be 'wait' or 'fallback', got {shown(overflow)}")
    instance = settings.pop("instance", None)
    if instance is not None:
        if settings:
            raise ConfigError(
                f"{where}: an 'instance' entry takes only 'enabled', 'max_concurrent' and "
                f"'overflow', not {_keys(set(settings))}"
            )
        entry = _entry(name, instance)
        return attrs.evolve(entry, enabled=enabled, max_concurrent=limit, overflow=overflow)
    kind = settings.pop("type", name)
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"{where}.type: must be a non-empty string, got {shown(kind)}")
    if "name" in settings:
        raise ConfigError(f"{where}.name: the entry's key is the executor's name; drop 'name'")
    known = available_executors()
    if kind not in known:
        raise ConfigError(
            f"{where}.type: no executor type {shown(kind)} is installed; "
            f"available: {', '.join(known) or 'none'}"
        )
    bad = [shown(key) for key in settings if not isinstance(key, str) or not key.isidentifier()]
    if bad:
        raise ConfigError(f"{where}: setting names must be identifiers, got {bad}")
    _check_options(where, name, kind, settings)
    return ExecutorEntry(name, kind, enabled, limit, settings, overflow=overflow)


def parse_executors(executors: object) -> dict[str, ExecutorEntry]:
    """Normalise the ``executors`` argument of a Router into entries, in order.

    Accepts a mapping of name to executor instance or settings mapping, or a sequence
    of executor instances keyed by their ``name``.
    """
    entries: dict[str, ExecutorEntry] = {}
    if isinstance(executors, Mapping):
        for name, value in executors.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"executors: names must be non-empty strings, got {shown(name)}")
            entries[name] = _entry(name, value)
    elif isinstance(executors, Sequence) and not isinstance(executors, (str, bytes)):
        for index, value in enumerate(executors):
            name = getattr(value, "name", None)
            if not is_executor(value) or not isinstance(name, str) or not name:
                raise ConfigError(
                    f"executors[{index}]: expected an executor instance with a name, "
                    f"got {type(value).__name__}"
                )
            if name in entries:
                raise ConfigError(f"executors[{index}]: a second executor named {name!r}")
            entries[name] = _entry(name, value)
    else:
        raise ConfigError(
            "executors: expected a mapping of name to executor or settings, or a list of "
            f"executors, got {type(executors).__name__}"
        )
    if not entries:
        raise ConfigError("executors: at least one executor must be configured")
    return entries


def parse_rules(
    rules: object, names: Sequence[str], context_names: Sequence[str] = ()
) -> tuple[RoutingRule, ...]:
    """Normalise rules (objects or mappings), checking what each names.

    Each rule's executors must be configured, and each name its condition reads must
    be standard, in ``context_names`` (the Router's), or in the rule's own ``context``.
    """
    if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Sequence):
        raise ConfigError(f"rules: expected a list of rules, got {type(rules).__name__}")
    parsed: list[RoutingRule] = []
    extra = frozenset(context_names)
    for index, item in enumerate(rules):
        where = f"rules[{index}]"
        rule = (
            item if isinstance(item, RoutingRule) else RoutingRule.from_mapping(item, where=where)
        )
        for executor in rule.executors:
            if executor not in names:
                raise ConfigError(
                    f"{where}.executor: {executor!r} is not configured; "
                    f"configured: {', '.join(names)}"
                )
        unknown = sorted(rule.rule.names - STANDARD_NAMES - extra - set(rule.context))
        if unknown:
            raise ConfigError(
                f"{where}.condition: unknown name {unknown[0]!r} in {shown(rule.condition)}; "
                f"the standard names are {', '.join(sorted(STANDARD_NAMES))}; declare a name "
                f"the caller supplies with context = [{unknown[0]!r}] on the rule, or "
                f"context_names on the Router"
            )
        parsed.append(rule)
    return tuple(parsed)


def parse_name(field: str, value: object, names: Sequence[str]) -> str:
    """Check that ``value`` names a configured executor."""
    if not isinstance(value, str) or value not in names:
        raise ConfigError(
            f"{field}: {shown(value)} is not a configured executor; configured: {', '.join(names)}"
        )
    return value


def parse_fallback(value: object, names: Sequence[str]) -> tuple[str, ...]:
    """Check the fallback list: configured names, in order."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(f"fallback: expected a list of executor names, got {shown(value)}")
    return tuple(parse_name(f"fallback[{i}]", name, names) for i, name in enumerate(value))


def parse_seconds(field: str, value: object) -> float:
    """Check a duration setting: a finite number of seconds, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{field}: must be a number of seconds >= 0, got {shown(value)}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not seconds >= 0:
        raise ConfigError(f"{field}: must be a number of seconds >= 0, got {shown(value)}")
    if not math.isfinite(seconds):
        raise ConfigError(f"{field}: must be a finite number of seconds, got {shown(value)}")
    return seconds


def parse_ttl(value: object) -> float:
    """Check ``health_ttl``: seconds, 0 or more."""
    return parse_seconds("health_ttl", value)


def parse_config(data: object) -> dict[str, Any]:
    """Check the top level of a Router configuration; return it as keyword arguments."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"configuration must be a mapping, got {type(data).__name__}")
    unknown = _keys(set(data) - CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"unknown configuration keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
    if "executors" not in data:
        raise ConfigError("configuration has no 'executors' table")
    return dict(data)


_HUGE_INT = re.compile(r"^\s*([^=\s]+)\s*=\s*[+-]?[0-9_]{4000,}", re.MULTILINE)


def load_toml(path: str | os.PathLike[str], table: str | None = None) -> Any:
    """Read a TOML file (optionally one dotted ``table`` of it) as plain data."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    try:
        data: Any = _toml_loads(text)
    except RecursionError:
        raise ConfigError(f"{file}: not valid TOML: nested too deeply") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        huge = _HUGE_INT.search(text)
        if huge is not None and "integer string conversion" in str(exc):
            line = text.count("\n", 0, huge.start(1)) + 1
            raise ConfigError(
                f"{file}: line {line}: {huge.group(1)}: integer too large (over 4000 digits)"
            ) from None
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    for key in table.split(".") if table else ():
        if not isinstance(data, Mapping) or key not in data:
            raise ConfigError(f"{file}: no table [{table}]")
        data = data[key]
    return data


def _toml_loads(text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415 - stdlib from 3.11; tomli before

        return tomllib.loads(text)
    import tomli  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415

    return tomli.loads(text)
