"""The Router: choose an executor for each job, launch it there, fall back on failure.

Candidates come in a fixed order: the job's ``preferred_executor``, then every rule
whose condition holds (ascending priority, ties in the order given), then ``default``,
then the ``fallback`` list. The first *available* candidate wins: enabled, healthy
(health cached ``health_ttl`` seconds; a check that raises counts as unhealthy), under
``max_concurrent``, and able to give the job what it asks (cpu, memory, gpu limits of
its capabilities). ``launch`` tries the next available candidate when one refuses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any

import attrs

from jobrelay._availability import Availability
from jobrelay._clock import Clock, SystemClock
from jobrelay._config import (
    ExecutorEntry,
    RoutingRule,
    load_toml,
    parse_config,
    parse_executors,
    parse_fallback,
    parse_name,
    parse_rules,
    parse_ttl,
)
from jobrelay._hooks import Hooks
from jobrelay._models import Execution
from jobrelay._retry import RetryPolicy
from jobrelay._rule_ops import Fn
from jobrelay._rules import rule_function
from jobrelay._spec import JobSpec
from jobrelay.errors import (
    ConfigError,
    ExecutorError,
    ExecutorLoadError,
    ExecutorNotFoundError,
    NoExecutorAvailableError,
)

__all__ = ["ROUTE_METADATA_KEY", "RouteDecision", "Router", "RoutingRule"]

logger = logging.getLogger("jobrelay.router")

ROUTE_METADATA_KEY = "jobrelay.route"
"""Key of the routing record that ``Router.launch`` adds to ``Execution.metadata``."""

_Skips = list[tuple[str, str]]
_INFO = logging.INFO
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen
class RouteDecision:
    """Where a job goes and why.

    Attributes:
        executor: name of the chosen executor.
        reason: the matching rule's ``reason``, or ``"preferred executor"``,
            ``"default"`` or ``"fallback"``.
        rule: the matching rule, or None.
        skipped: ``(executor, why)`` for every candidate passed over before this one
            (and every rule that could not be evaluated).
        hops: ``(executor, outcome)`` for each launch attempt, ``launch`` only.
    """

    executor: str
    reason: str
    rule: RoutingRule | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    hops: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings and tuples) for metadata, logs and JSON."""
        return {
            "executor": self.executor,
            "reason": self.reason,
            "rule": self.rule.condition if self.rule is not None else None,
            "skipped": self.skipped,
            "hops": self.hops,
        }

    def explain(self) -> str:
        """One line for people: the choice, the reason, what was passed over."""
        text = f"{self.executor} ({self.reason})"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{name}: {why}" for name, why in self.skipped)
        failed = [(name, outcome) for name, outcome in self.hops if outcome != "launched"]
        if failed:
            text += "; failed " + ", ".join(f"{name}: {outcome}" for name, outcome in failed)
        return text


class Router:
    """Routes jobs to executors by rules, with health, capacity and fallback.

    Example::

        router = Router(
            {"docker": {"max_concurrent": 8}, "fargate": {"region": "eu-west-1"}},
            rules=[RoutingRule("memory_mb > 8192", "fargate", reason="large memory")],
            default="docker",
        )
        with router:
            execution = router.launch(JobSpec("busybox", "echo hi"))

    Args:
        executors: name -> executor instance, or name -> settings mapping with optional
            ``type`` (default: the name), ``enabled`` (default true), ``max_concurrent``
            (default unlimited) and the executor's own keyword arguments, or
            ``instance`` (a ready executor) in place of ``type`` and arguments. Also a
            list of executor instances, keyed by their ``name``. Executors from settings
            are created through the registry on first use, with ``name=<entry name>``
            when their class takes a ``name`` parameter.
        rules: :class:`RoutingRule` objects or mappings of their fields.
        default: executor tried after the rules.
        fallback: executors tried last, in order.
        health_ttl: seconds a health check result is reused.
        clock: time source for the health cache; default the system clock.
        retry: policy for transient launch errors; default ``RetryPolicy()``.
        hooks: hook relay (``job_routed``, ``launch_failed``); default a new ``Hooks()``.

    Raises:
        ConfigError: anything above is malformed, a rule does not compile, or a rule,
            ``default`` or ``fallback`` names an executor that is not configured.

    The Router is thread-safe. Executors it created are closed by :meth:`close`;
    instances handed to it stay the caller's to close.
    """

    def __init__(
        self,
        executors: Mapping[str, Any] | Sequence[Any],
        rules: Sequence[RoutingRule | Mapping[str, Any]] = (),
        default: str | None = None,
        fallback: Sequence[str] = (),
        health_ttl: float = 300,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._entries: dict[str, ExecutorEntry] = parse_executors(executors)
        names = tuple(self._entries)
        self._names = names
        # sorted() is stable: equal priorities keep the order they were given in.
        ordered = sorted(enumerate(parse_rules(rules, names)), key=lambda pair: pair[1].priority)
        self._rules = tuple(rule for _, rule in ordered)
        self._program: tuple[tuple[Fn, RoutingRule, int], ...] = tuple(
            (rule_function(rule.rule), rule, index) for index, rule in ordered
        )
        self._functions = tuple(function for function, _, _ in self._program)
        self._default = None if default is None else parse_name("default", default, names)
        # Where each rule sends a job, then the default: the fast path's lookup table.
        self._targets = (*(rule.executor for rule in self._rules), self._default)
        self._fallback = parse_fallback(fallback, names)
        self._health_ttl = parse_ttl(health_ttl)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.hooks: Hooks = hooks if hooks is not None else Hooks()
        self._plain: dict[int | str, RouteDecision] = {}
        self._available = Availability(self._entries, self.executor, self._health_ttl, self._clock)
        self._check = self._available.check
        self._ready = self._available.ready

    # -- construction from settings ---------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> Router:
        """Build a Router from the Django-settings shape.

        ``{"executors": {...}, "rules": [{"condition", "executor", "reason",
        "priority"}], "default": "docker", "fallback": [...], "health_ttl": 300}``

        Raises:
            ConfigError: see :class:`Router`; unknown top-level keys too.
        """
        data = parse_config(config)
        return cls(
            data["executors"],
            data.get("rules", ()),
            data.get("default"),
            data.get("fallback", ()),
            data.get("health_ttl", 300),
            clock=clock,
            retry=retry,
            hooks=hooks,
        )

    @classmethod
    def from_toml(
        cls,
        path: str | Path,
        *,
        table: str | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> Router:
        """Build a Router from a TOML file in the :meth:`from_config` shape.

        ``table`` selects a dotted sub-table, e.g. ``"tool.jobrelay"``.

        Raises:
            ConfigError: the file cannot be read or parsed, or the settings are wrong.
        """
        return cls.from_config(load_toml(path, table), clock=clock, retry=retry, hooks=hooks)

    # -- what is configured -----------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The time source of the health cache."""
        return self._clock

    @property
    def names(self) -> tuple[str, ...]:
        """Configured executor names, in configuration order."""
        return self._names

    @property
    def rules(self) -> tuple[RoutingRule, ...]:
        """The rules in the order they are tried."""
        return self._rules

    @property
    def default(self) -> str | None:
        """The executor tried after the rules."""
        return self._default

    @property
    def fallback(self) -> tuple[str, ...]:
        """The executors tried last."""
        return self._fallback

    @property
    def health_ttl(self) -> float:
        """Seconds a health check result is reused."""
        return self._health_ttl

    def _entry(self, name: str) -> ExecutorEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ExecutorNotFoundError(name, self._names)
        return entry

    def executor(self, name: str) -> Any:
        """Return the executor configured as ``name``, creating it on first use.

        Raises:
            ExecutorNotFoundError: ``name`` is not configured.
            ExecutorLoadError, ConfigError: the executor could not be created.
        """
        entry = self._entry(name)
        instance = entry.instance
        if instance is not None:
            return instance
        with entry.lock:
            if entry.instance is None:
                entry.instance = entry.create()
                logger.debug("created executor %r (type %r)", name, entry.type)
            return entry.instance

    def in_flight(self, name: str) -> int:
        """Executions launched on ``name`` through this router and not yet released."""
        self._entry(name)
        return self._available.in_flight(name)

    def max_concurrent(self, name: str) -> int | None:
        """The capacity of ``name`` (None: unlimited)."""
        return self._entry(name).max_concurrent

    def is_available(self, name: str) -> tuple[bool, str]:
        """Whether ``name`` can take a job now, and if not, why (checks health if stale)."""
        why, _ = self._check(name, None)
        return (why is None, why or "")

    # -- routing ----------------------------------------------------------------------

    def route(self, job: JobSpec, context: Mapping[str, Any] | None = None) -> RouteDecision:
        """Choose the executor for ``job`` and log the decision; launch nothing.

        A query: it takes no capacity and fires no hook (``job_routed`` fires when
        :meth:`launch` acts on a decision), so previews such as ``jobrelay route``
        never count as routed jobs.

        ``context`` adds names for the conditions (or replaces the standard ones:
        ``job``, ``template``, ``name``, ``image``, ``memory_mb``, ``cpu_cores``,
        ``gpu``, ``timeout_seconds`` (0 when the job has no timeout), ``labels``,
        ``metadata`` and ``user`` (None unless given)).

        Raises:
            NoExecutorAvailableError: no candidate is available; ``skipped`` says why.
        """
        names = _context(job, context)
        if job.preferred_executor is None:
            decision = self._plain_route(job, names)
            if decision is not None:
                return decision
        skipped: _Skips = []
        tried: list[str] = []  # a list: mostly empty, and cheaper than a set to make
        capacity = others = position = 0
        while (found := self._next(job, names, position, skipped)) is not None:
            name, reason, rule, position = found
            if name in tried:
                continue
            why, full = self._check(name, job)
            if why is None:
                decision = self._decision(name, reason, rule, skipped, position)
                if logger.isEnabledFor(logging.INFO):
                    self._log(job, decision)
                return decision
            tried.append(name)
            skipped.append((name, why))
            capacity, others = capacity + full, others + (not full)
        raise self._nothing(job, skipped, capacity > 0 and others == 0)

    def _plain_route(self, job: JobSpec, names: Mapping[str, Any]) -> RouteDecision | None:
        """Route the common case fast: the first matching candidate is available.

        That is the first matching rule's executor, or the default, on the path of
        every job. Anything else (a rule that raises, an unavailable candidate) returns
        None, and the general loop handles it from the start: conditions are pure, so
        evaluating them again changes nothing.
        """
        functions = self._functions
        try:
            for function in functions:
                if function(names):
                    index = functions.index(function)  # the first rule with this condition
                    break
            else:
                index = len(functions)
        except Exception:  # noqa: BLE001 - the general loop reports it
            return None
        name = self._targets[index]
        decision = self._plain.get(index + 2)
        # ready() calls no executor: a stale health answer sends the job down the
        # general loop, which checks health once.
        if decision is None or name is None or not self._ready(name, job):
            return None
        if logger.isEnabledFor(_INFO):
            self._log(job, decision)
        return decision

    def launch(self, job: JobSpec, context: Mapping[str, Any] | None = None) -> Execution:
        """Route ``job`` and launch it, moving on to the next candidate when one fails.

        Transient errors are retried per :attr:`retry` first. The returned execution's
        ``metadata["jobrelay.route"]`` records the decision and every hop. A launched
        execution holds one capacity slot of its executor until :meth:`release`.
        ``job_routed`` fires once for the decision acted on, ``launch_failed`` for each
        failed hop.

        Raises:
            NoExecutorAvailableError: every candidate was unavailable or failed;
                ``capacity_only`` is true when they were merely full.
        """
        names = _context(job, context)
        skipped: _Skips = []
        hops: list[tuple[str, str]] = []
        seen: set[str] = set()
        capacity = others = position = 0
        while (found := self._next(job, names, position, skipped)) is not None:
            name, reason, rule, position = found
            if name in seen:
                continue
            seen.add(name)
            why, full = self._available.reserve(name, job)
            if why is not None:
                skipped.append((name, why))
                capacity, others = capacity + full, others + (not full)
                continue
            execution = self._attempt(name, job, hops)
            if execution is None:
                others += 1
                continue
            decision = RouteDecision(name, reason, rule, tuple(skipped), tuple(hops))
            execution = attrs.evolve(
                execution, metadata={**execution.metadata, ROUTE_METADATA_KEY: decision.to_dict()}
            )
            if logger.isEnabledFor(logging.INFO):
                self._log(job, decision)
            self.hooks.emit("job_routed", job=job, decision=decision)
            return execution
        failed = [(name, f"launch failed: {outcome}") for name, outcome in hops]
        raise self._nothing(job, skipped + failed, capacity > 0 and others == 0)

    def _decision(
        self, name: str, reason: str, rule: RoutingRule | None, skipped: _Skips, position: int
    ) -> RouteDecision:
        if skipped:
            return RouteDecision(name, reason, rule, tuple(skipped))
        # Decisions are immutable: the common ones (nothing skipped) are made once per
        # candidate position (the preferred position by name, as any name can go there).
        key: int | str = name if position == 1 else position
        decision = self._plain.get(key)
        if decision is None:
            decision = self._plain.setdefault(key, RouteDecision(name, reason, rule))
        return decision

    def _attempt(self, name: str, job: JobSpec, hops: list[tuple[str, str]]) -> Execution | None:
        """Launch on ``name`` (slot already reserved); None and a hop when it refuses."""
        try:
            executor = self.executor(name)
            execution: Execution = self.retry.call(executor.launch, job)
        except (ExecutorError, ExecutorLoadError, ConfigError) as exc:
            self._available.unreserve(name)
            hops.append((name, f"{type(exc).__name__}: {exc}"))
            logger.warning(
                "launching job %s on %r failed, trying the next candidate: %s",
                job.job_id,
                name,
                exc,
            )
            if isinstance(exc, ExecutorError):
                self.hooks.emit("launch_failed", job=job, executor=name, error=exc)
            return None
        except BaseException:
            self._available.unreserve(name)
            raise
        hops.append((name, "launched"))
        self._available.hold(name, execution)
        return execution

    def release(self, execution: Execution) -> None:
        """Free the capacity slot ``execution`` holds.

        Call it once the execution is terminal or cleaned up. Idempotent, and harmless
        for executions this router did not launch.
        """
        self._available.release(execution)

    def _next(
        self, job: JobSpec, names: Mapping[str, Any], position: int, skipped: _Skips
    ) -> tuple[str, str, RoutingRule | None, int] | None:
        """The candidate after ``position`` in routing order, with its own position.

        Positions: 0 before the preferred executor, ``i + 1`` before rule ``i`` (in
        priority order), ``n + 1`` before the default, then one per fallback. Rules are
        evaluated lazily, only as far as the caller asks.
        """
        if position == 0:
            if job.preferred_executor is not None:
                return job.preferred_executor, "preferred executor", None, 1
            position = 1
        functions = self._functions
        end = len(functions) + 1
        if position < end:
            for index in range(position - 1, end - 1):
                try:
                    if functions[index](names):
                        rule = self._rules[index]
                        return rule.executor, rule.reason, rule, index + 2
                # A bad rule must not stop routing; try costs nothing until it raises.
                except Exception as exc:  # noqa: BLE001, PERF203
                    self._unevaluable(job, index, exc, skipped)
            position = end
        if position == end:
            if self._default is not None:
                return self._default, "default", None, end + 1
            position = end + 1
        fallback = position - end - 1
        if fallback < len(self._fallback):
            return self._fallback[fallback], "fallback", None, position + 1
        return None

    def _unevaluable(self, job: JobSpec, position: int, exc: Exception, skipped: _Skips) -> None:
        _, rule, index = self._program[position]
        logger.warning(
            "rules[%d] (%s) could not be evaluated for job %s: %s",
            index,
            rule.condition,
            job.job_id,
            exc,
        )
        skipped.append((rule.executor, f"rules[{index}] could not be evaluated: {exc}"))

    # -- reporting --------------------------------------------------------------------

    def _log(self, job: JobSpec, decision: RouteDecision) -> None:
        logger.info("job %s (%s) -> %s", job.job_id, job.name, decision.explain())

    def _nothing(
        self, job: JobSpec, skipped: _Skips, capacity_only: bool
    ) -> NoExecutorAvailableError:
        error = NoExecutorAvailableError(job.job_id, skipped, capacity_only=capacity_only)
        level = logging.INFO if capacity_only else logging.WARNING
        logger.log(level, "job %s (%s): %s", job.job_id, job.name, error)
        return error

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the executors this router created (instances handed in stay open).

        Closed executors are created afresh if the router is used again.
        """
        owned = [entry for entry in self._entries.values() if entry.owned]
        self._available.forget_health()
        for entry in owned:
            with entry.lock:
                instance, entry.instance = entry.instance, None
            if instance is None:
                continue
            try:
                instance.close()
            except Exception:
                logger.exception("closing executor %r failed", entry.name)

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Router(executors={list(self._names)!r}, rules={len(self._rules)}, "
            f"default={self._default!r}, fallback={list(self._fallback)!r})"
        )


def _context(job: JobSpec, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The names conditions see; ``extra`` (the caller's ``context=``) adds or replaces."""
    resources = job.resources
    return {
        "job": job,
        "template": job,
        "name": job.name,
        "image": job.image,
        "memory_mb": resources.memory,
        "cpu_cores": resources.cpu,
        "gpu": resources.gpu,
        "timeout_seconds": job.timeout or 0,
        "labels": job.labels,
        "metadata": job.metadata,
        "user": None,
        **(extra or _NO_EXTRA),
    }
