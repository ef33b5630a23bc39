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
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

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
from jobrelay._models import Capabilities, Execution
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
        self._fallback = parse_fallback(fallback, names)
        self._health_ttl = parse_ttl(health_ttl)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.hooks: Hooks = hooks if hooks is not None else Hooks()
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = dict.fromkeys(names, 0)
        self._slots: dict[tuple[str, str], str] = {}
        self._health: dict[str, tuple[float, str | None]] = {}
        self._limits: dict[str, Capabilities | None] = {}
        self._plain: dict[int | str, RouteDecision] = {}
        # The system clock read without a method call: route() is on every job's path.
        self._now = time.time if type(self._clock) is SystemClock else self._clock.time

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
        return self._in_flight[name]

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
        skipped: _Skips = []
        seen: set[str] = set()
        capacity = others = position = 0
        while (found := self._next(job, names, position, skipped)) is not None:
            name, reason, rule, position = found
            if name in seen:
                continue
            seen.add(name)
            why, full = self._check(name, job)
            if why is None:
                decision = (
                    self._plain.get(name if position == 1 else position) if not skipped else None
                ) or self._decision(name, reason, rule, skipped, position)
                if logger.isEnabledFor(logging.INFO):
                    self._log(job, decision)
                return decision
            skipped.append((name, why))
            capacity, others = capacity + full, others + (not full)
        raise self._nothing(job, skipped, capacity > 0 and others == 0)

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
            why, full = self._reserve(name, job)
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
            self._unreserve(name)
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
            self._unreserve(name)
            raise
        hops.append((name, "launched"))
        key = (execution.executor, execution.execution_id)
        with self._lock:
            if key in self._slots:  # the same job_id again: the backend returned its execution
                self._in_flight[name] -= 1
            else:
                self._slots[key] = name
        return execution

    def release(self, execution: Execution) -> None:
        """Free the capacity slot ``execution`` holds.

        Call it once the execution is terminal or cleaned up. Idempotent, and harmless
        for executions this router did not launch.
        """
        with self._lock:
            name = self._slots.pop((execution.executor, execution.execution_id), None)
            if name is not None:
                self._in_flight[name] -= 1

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
        while position < end:
            position += 1
            try:
                if functions[position - 2](names):
                    rule = self._rules[position - 2]
                    return rule.executor, rule.reason, rule, position
            except Exception as exc:  # noqa: BLE001 - a bad rule must not stop routing
                _, rule, index = self._program[position - 2]
                logger.warning(
                    "rules[%d] (%s) could not be evaluated for job %s: %s",
                    index,
                    rule.condition,
                    job.job_id,
                    exc,
                )
                skipped.append((rule.executor, f"rules[{index}] could not be evaluated: {exc}"))
        if position == end:
            if self._default is not None:
                return self._default, "default", None, end + 1
            position = end + 1
        fallback = position - end - 1
        if fallback < len(self._fallback):
            return self._fallback[fallback], "fallback", None, position + 1
        return None

    # -- availability -----------------------------------------------------------------

    def _check(self, name: str, job: JobSpec | None) -> tuple[str | None, bool]:
        """``(why not, because full)``; ``(None, False)`` when ``name`` can take ``job``."""
        entry = self._entries.get(name)
        if entry is None:
            return "not configured", False
        if not entry.enabled:
            return "disabled", False
        limit = entry.max_concurrent
        if limit is not None and self._in_flight[name] >= limit:
            return f"at capacity ({self._in_flight[name]}/{limit} running)", True
        cached = self._health.get(name)
        now = self._now()
        problem = cached[1] if cached is not None and now < cached[0] else self._probe(name, now)
        if problem is not None:
            return problem, False
        return (None, False) if job is None else (_misfit(self._limits.get(name), job), False)

    def _probe(self, name: str, now: float) -> str | None:
        """Check health (creating the executor if need be); cache the answer."""
        limits: Capabilities | None = None
        try:
            executor = self.executor(name)
        except Exception as exc:  # noqa: BLE001 - a broken backend is unavailable, not fatal
            problem: str | None = f"could not be created: {exc}"
        else:
            try:
                health = executor.health()
            except Exception as exc:  # noqa: BLE001 - the contract says never raise; some do
                problem = f"health check raised {type(exc).__name__}: {exc}"
            else:
                healthy = bool(getattr(health, "healthy", False))
                detail = getattr(health, "detail", "") or "no detail"
                problem = None if healthy else f"unhealthy: {detail}"
            if problem is None:
                try:
                    limits = executor.capabilities()
                except Exception:  # noqa: BLE001 - unknown limits do not block a job
                    logger.warning("capabilities() of %r raised; ignoring its limits", name)
        if problem is not None:
            logger.warning("executor %r is unavailable: %s", name, problem)
        with self._lock:
            self._health[name] = (now + self._health_ttl, problem)
            self._limits[name] = limits
        return problem

    def _reserve(self, name: str, job: JobSpec) -> tuple[str | None, bool]:
        why, full = self._check(name, job)
        if why is not None:
            return why, full
        limit = self._entries[name].max_concurrent
        with self._lock:
            running = self._in_flight[name]
            if limit is not None and running >= limit:
                return f"at capacity ({running}/{limit} running)", True
            self._in_flight[name] = running + 1
        return None, False

    def _unreserve(self, name: str) -> None:
        with self._lock:
            self._in_flight[name] -= 1

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
        with self._lock:
            owned = [entry for entry in self._entries.values() if entry.owned]
            self._health.clear()
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
    resources = job.resources
    context = {
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
    }
    if extra:
        context.update(extra)
    return context


def _misfit(limits: Capabilities | None, job: JobSpec) -> str | None:
    if limits is None:
        return None
    resources = job.resources
    if limits.max_cpu is not None and resources.cpu > limits.max_cpu:
        return f"job asks {resources.cpu:g} CPUs, executor allows {limits.max_cpu:g}"
    if limits.max_memory_mb is not None and resources.memory > limits.max_memory_mb:
        return f"job asks {resources.memory} MiB, executor allows {limits.max_memory_mb}"
    if resources.gpu > limits.max_gpu:
        return f"job asks {resources.gpu} GPUs, executor allows {limits.max_gpu}"
    return None
