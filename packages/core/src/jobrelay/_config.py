"""Router configuration: routing rules and executor entries, checked before any job runs.

Everything here raises :class:`~jobrelay.errors.ConfigError` naming the offending
field (``executors['gpu-box'].max_concurrent``, ``rules[2].condition``), so a bad
settings file fails when it is loaded, never halfway through routing a job.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from jobrelay._protocol import missing_methods
from jobrelay._registry import available_executors, get_executor, load_executor_class
from jobrelay._rules import Rule, compile_rule
from jobrelay.errors import ConfigError, RuleError

__all__ = ["ExecutorEntry", "RoutingRule", "load_toml", "parse_config", "parse_executors"]

ENTRY_KEYS = frozenset({"type", "enabled", "max_concurrent", "instance"})
RULE_KEYS = frozenset({"condition", "executor", "reason", "priority"})
CONFIG_KEYS = frozenset({"executors", "rules", "default", "fallback", "health_ttl"})


def _condition(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"condition must be a string, got {type(value).__name__}")
    return value


def _executor_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"executor must be a non-empty string, got {value!r}")
    return value


def _reason(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"reason must be a string, got {type(value).__name__}")
    return value


def _default_reason(rule: RoutingRule) -> str:
    return f"rule: {rule.condition}"


def _priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"priority must be an int, got {value!r}")
    return value


@attrs.frozen
class RoutingRule:
    """Send jobs matching ``condition`` to ``executor``.

    Rules are tried by ascending ``priority``; rules of equal priority keep the
    order they were given in. The condition is compiled when the rule is made.

    Example::

        RoutingRule("memory_mb > 8192", "fargate", reason="large memory", priority=10)

    Args:
        condition: a condition in the language of :func:`jobrelay.compile_rule`.
        executor: name of a configured executor.
        reason: why, as the routing decision reports it; default ``"rule: <condition>"``.
        priority: lower runs first; default 0.

    Raises:
        RuleError: the condition does not compile.
        ConfigError: another field has the wrong type.
    """

    condition: str = attrs.field(converter=_condition)
    executor: str = attrs.field(converter=_executor_name)
    reason: str = attrs.field(
        default=attrs.Factory(_default_reason, takes_self=True), converter=_reason
    )
    priority: int = attrs.field(default=0, converter=_priority, kw_only=True)
    rule: Rule = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "rule", compile_rule(self.condition))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "rule") -> RoutingRule:
        """Build a rule from ``{"condition", "executor", "reason", "priority"}``.

        Raises:
            ConfigError: a key is missing or unknown, a value is wrong, or the condition
                does not compile (the message names ``where`` and the column).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: must be a mapping, got {type(data).__name__}")
        unknown = sorted(map(str, set(data) - RULE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(RULE_KEYS)}")
        for key in ("condition", "executor"):
            if key not in data:
                raise ConfigError(f"{where}: missing {key!r}")
        optional = {key: data[key] for key in ("reason", "priority") if data.get(key) is not None}
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
    """

    name: str
    type: str
    enabled: bool = True
    max_concurrent: int | None = None
    kwargs: dict[str, Any] = attrs.Factory(dict)
    instance: Any = None
    owned: bool = True
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def create(self) -> Any:
        """Build the executor through the registry; its ``name`` is the entry's name.

        The entry name is passed as ``name=`` when the executor's class takes a
        ``name`` parameter; otherwise the entry must be named after its type.

        Raises:
            ExecutorNotFoundError, ExecutorLoadError: the registry cannot provide ``type``.
            ConfigError: the executor refused its settings, or cannot take the name.
        """
        kwargs = dict(self.kwargs)
        if _takes_name(load_executor_class(self.type)):
            kwargs["name"] = self.name
        executor = get_executor(self.type, **kwargs)
        actual = getattr(executor, "name", None)
        if actual != self.name:
            _close_quietly(executor)
            raise ConfigError(
                f"executors[{self.name!r}]: the {self.type!r} executor calls itself {actual!r} "
                f"and takes no 'name' parameter; name the entry {actual!r}"
            )
        return executor


def _takes_name(cls: type[Any]) -> bool:
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get("name")
    return parameter is not None and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY


def _close_quietly(executor: Any) -> None:
    close = getattr(executor, "close", None)
    if callable(close):
        # Already failing: the first error is the news, a second one from close() is not.
        with contextlib.suppress(Exception):
            close()


def is_executor(value: object) -> bool:
    """Whether ``value`` looks like an executor instance (has every protocol method)."""
    return not isinstance(value, (type, Mapping)) and not missing_methods(value)


def _entry(name: str, value: object) -> ExecutorEntry:
    where = f"executors[{name!r}]"
    if is_executor(value):
        if getattr(value, "name", None) != name:
            raise ConfigError(
                f"{where}: the executor instance is named {getattr(value, 'name', None)!r}; "
                f"the entry must carry its name"
            )
        return ExecutorEntry(name, type(value).__name__, instance=value, owned=False)
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where}: expected an executor or a mapping of its settings, "
            f"got {type(value).__name__}"
        )
    settings = dict(value)
    enabled = settings.pop("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled: must be true or false, got {enabled!r}")
    limit = settings.pop("max_concurrent", None)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"{where}.max_concurrent: must be an int of 1 or more, got {limit!r}")
    instance = settings.pop("instance", None)
    if instance is not None:
        if settings:
            raise ConfigError(
                f"{where}: an 'instance' entry takes only 'enabled' and 'max_concurrent', "
                f"not {sorted(settings)}"
            )
        entry = _entry(name, instance)
        return attrs.evolve(entry, enabled=enabled, max_concurrent=limit)
    kind = settings.pop("type", name)
    if not isinstance(kind, str) or not kind:
        raise ConfigError(f"{where}.type: must be a non-empty string, got {kind!r}")
    if "name" in settings:
        raise ConfigError(f"{where}.name: the entry's key is the executor's name; drop 'name'")
    known = available_executors()
    if kind not in known:
        raise ConfigError(
            f"{where}.type: no executor type {kind!r} is installed; "
            f"available: {', '.join(known) or 'none'}"
        )
    bad = [key for key in settings if not isinstance(key, str) or not key.isidentifier()]
    if bad:
        raise ConfigError(f"{where}: setting names must be identifiers, got {bad!r}")
    return ExecutorEntry(name, kind, enabled, limit, settings)


def parse_executors(executors: object) -> dict[str, ExecutorEntry]:
    """Normalise the ``executors`` argument of a Router into entries, in order.

    Accepts a mapping of name to executor instance or settings mapping, or a sequence
    of executor instances keyed by their ``name``.
    """
    entries: dict[str, ExecutorEntry] = {}
    if isinstance(executors, Mapping):
        for name, value in executors.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(f"executors: names must be non-empty strings, got {name!r}")
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


def parse_rules(rules: object, names: Sequence[str]) -> tuple[RoutingRule, ...]:
    """Normalise rules (objects or mappings), checking each names a configured executor."""
    if isinstance(rules, (str, bytes, Mapping)) or not isinstance(rules, Sequence):
        raise ConfigError(f"rules: expected a list of rules, got {type(rules).__name__}")
    parsed: list[RoutingRule] = []
    for index, item in enumerate(rules):
        where = f"rules[{index}]"
        rule = (
            item if isinstance(item, RoutingRule) else RoutingRule.from_mapping(item, where=where)
        )
        if rule.executor not in names:
            raise ConfigError(
                f"{where}.executor: {rule.executor!r} is not configured; "
                f"configured: {', '.join(names)}"
            )
        parsed.append(rule)
    return tuple(parsed)


def parse_name(field: str, value: object, names: Sequence[str]) -> str:
    """Check that ``value`` names a configured executor."""
    if not isinstance(value, str) or value not in names:
        raise ConfigError(
            f"{field}: {value!r} is not a configured executor; configured: {', '.join(names)}"
        )
    return value


def parse_fallback(value: object, names: Sequence[str]) -> tuple[str, ...]:
    """Check the fallback list: configured names, in order."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(f"fallback: expected a list of executor names, got {value!r}")
    return tuple(parse_name(f"fallback[{i}]", name, names) for i, name in enumerate(value))


def parse_ttl(value: object) -> float:
    """Check ``health_ttl``: seconds, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigError(f"health_ttl: must be a number of seconds >= 0, got {value!r}")
    return float(value)


def parse_config(data: object) -> dict[str, Any]:
    """Check the top level of a Router configuration; return it as keyword arguments."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"configuration must be a mapping, got {type(data).__name__}")
    unknown = sorted(map(str, set(data) - CONFIG_KEYS))
    if unknown:
        raise ConfigError(f"unknown configuration keys {unknown}; allowed: {sorted(CONFIG_KEYS)}")
    if "executors" not in data:
        raise ConfigError("configuration has no 'executors' table")
    return dict(data)


def load_toml(path: str | Path, table: str | None = None) -> Any:
    """Read a TOML file (optionally one dotted ``table`` of it) as plain data."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from exc
    try:
        data: Any = _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
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
