"""The Router: choose an executor for each job, launch it there, fall back on failure.

Candidates come in a fixed order: the job's ``preferred_executor``, then the executors
of every rule whose condition holds (ascending priority, ties in the order given),
then ``default``, then the ``fallback`` list. :meth:`Router.route` and
:meth:`Router.launch` walk that one sequence; the first *available* candidate wins:
enabled, healthy, under ``max_concurrent``, and able to give the job what it asks
(cpu, memory and gpu within its ``Capabilities`` limits, and ``cancel`` for a job with
a ``timeout``, which could not be enforced otherwise). The other capability flags
describe an executor without gating routing: every executor passes a job's secrets
(``secrets=False`` means as plain environment, not through a secret store).

Waiting rather than falling through: a candidate at capacity makes the job wait for a
slot (``NoExecutorAvailableError.capacity_only``) unless its entry says
``overflow = "fallback"``; the fallback list is for executors that failed or are
unavailable, not for busy ones. When every candidate is unhealthy, and their failures
are recent (``unhealthy_wait``), the error carries ``retry_after``: the job may wait
for the next health check rather than fail.

Cost: with ``prefer="cheapest"`` the executors of the matching rules are ordered by
estimated hourly cost (cheapest first, unpriced last), and so is the fallback list;
a rule with a list of executors and ``prefer = "cheapest"`` orders its own list so.
Conditions can read ``cost["fargate"]``, the hourly rate of an executor that can price
the job (``jobrelay.CostEstimator``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from jobrelay._availability import FULL, Availability
from jobrelay._base import Closing
from jobrelay._clock import Clock, SystemClock
from jobrelay._config import (
    ExecutorEntry,
    Prefer,
    RoutingRule,
    load_toml,
    parse_config,
    parse_context_names,
    parse_executors,
    parse_fallback,
    parse_name,
    parse_prefer,
    parse_rules,
    parse_seconds,
    parse_ttl,
)
from jobrelay._hooks import Hooks
from jobrelay._models import ROUTE_METADATA_KEY, Cost, Execution
from jobrelay._protocol import CostEstimator, Executor
from jobrelay._retry import RetryPolicy
from jobrelay._routing import (
    Candidate,
    HourlyCosts,
    RouteCandidate,
    RouteDecision,
    Walk,
    by_cost,
    masking,
)
from jobrelay._rule_ops import Fn
from jobrelay._rules import rule_function
from jobrelay._spec import JobSpec
from jobrelay.errors import (
    ConfigError,
    ExecutorError,
    ExecutorLoadError,
    ExecutorNotFoundError,
    NoExecutorAvailableError,
    TransientExecutorError,
)

__all__ = ["ROUTE_METADATA_KEY", "RouteCandidate", "RouteDecision", "Router", "RoutingRule"]

_PINNED = "pinned: an earlier launch of the job there may have taken effect"

logger = logging.getLogger("jobrelay.router")

PRICED_SECONDS = 3600
"""Candidates are priced for one hour of the job: ``estimate_cost(job, 3600)``."""

_Skips = list[tuple[str, str]]
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


class Router(Closing):
    """Routes jobs to executors by rules, with health, capacity, cost and fallback.

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
            (default unlimited), ``overflow`` (``"wait"``, the default: a job waits
            for a slot of a busy executor; ``"fallback"``: it moves on to the next
            candidate) and the executor's own keyword arguments, or ``instance`` (a
            ready executor) in place of ``type`` and arguments. Also a list of executor
            instances, keyed by their ``name``. Options are bound against the
            executor class's signature now; executors are created through the
            registry on first use, with ``name=<entry name>`` when their class takes a
            ``name`` parameter.
        rules: :class:`RoutingRule` objects or mappings of their fields.
        default: executor tried after the rules.
        fallback: executors tried last, for when the others failed or are unavailable.
        health_ttl: seconds a healthy answer is reused (a failed one is probed again
            after 1, 2, 4 ... seconds, at most 30).
        unhealthy_wait: seconds an executor may keep failing health checks while jobs
            wait for it (``retry_after``); past that, jobs that have only it fail.
        prefer: ``"first"`` (routing order) or ``"cheapest"``: the executors of the
            matching rules, and the fallback list, by estimated hourly cost.
        context_names: names conditions may read that callers pass to ``route`` and
            ``launch`` as ``context``, beyond the standard ones.
        clock: time source for the health cache; default the system clock.
        retry: policy for transient launch errors; default ``RetryPolicy()``.
        hooks: hook relay (``job_routed``, ``launch_failed``); default a new ``Hooks()``.

    Raises:
        ConfigError: anything above is malformed, a rule does not compile or reads an
            unknown name, an executor's options do not fit its class, or a rule,
            ``default`` or ``fallback`` names an executor that is not configured.

    The Router is thread-safe. Executors it created are closed by :meth:`close`;
    instances handed to it stay the caller's to close.
    """

    def __init__(
        self,
        executors: Mapping[str, object] | Sequence[Executor],
        *,
        rules: Sequence[RoutingRule | Mapping[str, Any]] = (),
        default: str | None = None,
        fallback: Sequence[str] = (),
        health_ttl: float = 300,
        unhealthy_wait: float = 120,
        prefer: Prefer = "first",
        context_names: Sequence[str] = (),
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._entries: dict[str, ExecutorEntry] = parse_executors(executors)
        names = tuple(self._entries)
        self._names = names
        self._context_names = parse_context_names("context_names", context_names)
        parsed = parse_rules(rules, names, self._context_names)
        # sorted() is stable: equal priorities keep the order they were given in.
        ordered = sorted(enumerate(parsed), key=lambda pair: pair[1].priority)
        self._rules = tuple(rule for _, rule in ordered)
        self._prefer: Prefer = parse_prefer("prefer", prefer)
        self._cheapest = self._prefer == "cheapest"
        # Per rule: its condition, itself, its index as given, and its executor when
        # the rule names just one and nothing reorders it (the common case).
        self._program: tuple[tuple[Fn, RoutingRule, int, str | None], ...] = tuple(
            (
                rule_function(rule.rule),
                rule,
                index,
                rule.executor if isinstance(rule.executor, str) and not self._cheapest else None,
            )
            for index, rule in ordered
        )
        # Price the candidates when something reads the prices.
        self._priced = self._cheapest or any(
            "cost" in rule.rule.names or rule.prefer == "cheapest" for rule in self._rules
        )
        self._default = None if default is None else parse_name("default", default, names)
        self._fallback = parse_fallback(fallback, names)
        self._last: tuple[Candidate, ...] = (
            *(((self._default, "default", None),) if self._default is not None else ()),
            *((name, "fallback", None) for name in self._fallback),
        )
        self._health_ttl = parse_ttl(health_ttl)
        self._unhealthy_wait = parse_seconds("unhealthy_wait", unhealthy_wait)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.retry: RetryPolicy = retry if retry is not None else RetryPolicy()
        self.hooks: Hooks = hooks if hooks is not None else Hooks()
        self._plain: dict[tuple[str, str, int], RouteDecision] = {}
        self._available = Availability(
            self._entries, self.executor, self._health_ttl, self._unhealthy_wait, self._clock
        )

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
        "priority", "prefer", "context"}], "default": "docker", "fallback": [...],
        "health_ttl": 300, "unhealthy_wait": 120, "prefer": "first",
        "context_names": [...]}``

        Raises:
            ConfigError: see :class:`Router`; unknown top-level keys too.
        """
        data = parse_config(config)
        executors = data.pop("executors")
        return cls(executors, **data, clock=clock, retry=retry, hooks=hooks)

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
        """Seconds a healthy answer is reused."""
        return self._health_ttl

    @property
    def prefer(self) -> Prefer:
        """How candidates are ordered: ``"first"`` or ``"cheapest"``."""
        return self._prefer

    def _entry(self, name: str) -> ExecutorEntry:
        entry = self._entries.get(name)
        if entry is None:
            raise ExecutorNotFoundError(name, self._names)
        return entry

    def executor(self, name: str) -> Executor:
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
                entry.instance = entry.create(self._clock)
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
        why = self._available.check(name, None).why
        return (why is None, why or "")

    def estimate(self, name: str, job: JobSpec, seconds: float = PRICED_SECONDS) -> Cost | None:
        """What ``job`` would cost on ``name`` for ``seconds`` (default one hour).

        None when the executor cannot price it (no ``estimate_cost``, no answer, or the
        executor cannot be created); an estimator that raises is logged, not fatal.
        """
        try:
            executor = self.executor(name)
        except Exception:  # noqa: BLE001 - an executor that cannot be made has no price
            return None
        if not isinstance(executor, CostEstimator):
            return None
        try:
            cost = executor.estimate_cost(job, seconds)
        except Exception as exc:  # noqa: BLE001 - a broken price table must not stop routing
            logger.warning("estimate_cost() of %r raised %s: %s", name, type(exc).__name__, exc)
            return None
        return cost if isinstance(cost, Cost) else None

    def context_for(self, job: JobSpec, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The names the conditions see when routing ``job`` (see :meth:`route`).

        For people debugging a rule, and for tools that evaluate conditions themselves.
        """
        return self._context(job, context, priced=False)[0]

    def _prices(self, job: JobSpec, known: HourlyCosts | None) -> HourlyCosts:
        """``known``, or a new price cache for ``job`` (each executor priced on demand)."""
        if known is not None:
            return known
        return HourlyCosts(self._names, lambda name: self.estimate(name, job))

    # -- routing ----------------------------------------------------------------------

    def route(
        self, job: JobSpec, context: Mapping[str, Any] | None = None, *, explain: bool = False
    ) -> RouteDecision:
        """Choose the executor for ``job`` and log the decision; launch nothing.

        A query: it takes no capacity and fires no hook (``job_routed`` fires when
        :meth:`launch` acts on a decision), so previews such as ``jobrelay route``
        never count as routed jobs. It walks the same candidates as :meth:`launch`.

        ``context`` adds names for the conditions (or replaces the standard ones:
        ``job``, ``template``, ``name``, ``image``, ``memory_mb``, ``cpu_cores``,
        ``gpu``, ``timeout_seconds`` (0 when the job has no timeout), ``labels``,
        ``metadata``, ``user`` (None unless given) and ``cost`` (hourly rates by
        executor name, for executors that can price the job)).

        With ``explain=True`` every candidate is looked at and priced, so that
        ``candidates`` lists them all; the choice is the same.

        Raises:
            NoExecutorAvailableError: no candidate is available; ``skipped`` says why;
                ``capacity_only`` when the job should wait for a slot, ``retry_after``
                when it may wait for an unhealthy executor to recover.
        """
        names, costs = self._context(job, context, priced=explain)
        walk = Walk()
        chosen: RouteDecision | None = None
        for name, reason, rule in self._candidates(job, names, costs, walk.skipped):
            if name in walk.seen:
                continue
            walk.seen.append(name)
            cost = costs.estimate(name) if costs is not None else None
            verdict = self._available.check(name, job)
            if chosen is not None or walk.wait:  # explaining: the rest, for the record
                walk.candidates.append(
                    RouteCandidate(name, verdict.why is None, verdict.why or "", cost)
                )
                continue
            if verdict.why is None:
                chosen = self._decision(name, reason, rule, walk, cost)
                if not explain:
                    break
                continue
            walk.refuse(name, verdict, cost)
            if verdict.kind == FULL and self._entries[name].overflow == "wait":
                walk.wait = True
                if not explain:
                    break
        if chosen is None:
            raise self._nothing(job, walk)
        if explain:
            chosen = attrs.evolve(chosen, candidates=tuple(walk.candidates))
        if logger.isEnabledFor(logging.INFO):
            self._log(job, chosen)
        return chosen

    def launch(
        self, job: JobSpec, context: Mapping[str, Any] | None = None, *, only: str | None = None
    ) -> Execution:
        """Route ``job`` and launch it, moving on to the next candidate when one refuses.

        Transient errors are retried per :attr:`retry` first; one that outlasts the
        retries is raised (the launch may have taken effect there, so trying another
        executor could run the job twice). The returned execution's
        ``metadata["jobrelay.route"]`` records the decision and every hop. A launched
        execution holds one capacity slot of its executor until :meth:`release`.
        ``job_routed`` fires once for the decision acted on, ``launch_failed`` for each
        failed hop.

        ``only`` names the one executor to launch on, whatever the rules say: for a
        job whose earlier launch there has an unknown outcome, where asking again
        (idempotent by job id) is safe and any other executor could run it twice.
        While it is unhealthy, the error's ``retry_after`` says when to ask again,
        however long it has been failing.

        Raises:
            ExecutorNotFoundError: ``only`` is not configured.
            NoExecutorAvailableError: every candidate was unavailable or refused;
                ``capacity_only`` when the job should wait for a slot, ``retry_after``
                when it may wait for an unhealthy executor to recover.
            TransientExecutorError: the launch on ``error.executor`` has an unknown
                outcome after the retries.
        """
        names, costs = self._context(job, context, priced=False)
        walk = Walk(pinned=only is not None)
        hops: list[tuple[str, str]] = []
        if only is not None:
            self._entry(only)
            candidates: Iterable[Candidate] = ((only, _PINNED, None),)
        else:
            candidates = self._candidates(job, names, costs, walk.skipped)
        for name, reason, rule in candidates:
            if name in walk.seen:
                continue
            walk.seen.append(name)
            cost = costs.estimate(name) if costs is not None else None
            verdict = self._available.reserve(name, job)
            if verdict.why is not None:
                walk.refuse(name, verdict, cost)
                if verdict.kind == FULL and self._entries[name].overflow == "wait":
                    walk.wait = True
                    break
                continue
            execution = self._attempt(name, job, hops)
            if execution is None:
                walk.other += 1
                walk.candidates.append(
                    RouteCandidate(name, available=False, why=hops[-1][1], cost=cost)
                )
                continue
            walk.candidates.append(RouteCandidate(name, available=True, cost=cost))
            decision = RouteDecision(
                name, reason, rule, tuple(walk.skipped), tuple(hops), tuple(walk.candidates)
            )
            execution = attrs.evolve(
                execution, metadata={**execution.metadata, ROUTE_METADATA_KEY: decision.to_dict()}
            )
            if logger.isEnabledFor(logging.INFO):
                self._log(job, decision)
            self.hooks.emit("job_routed", job=job, decision=decision)
            return execution
        walk.skipped.extend((name, f"launch failed: {outcome}") for name, outcome in hops)
        raise self._nothing(job, walk)

    def _decision(
        self, name: str, reason: str, rule: RoutingRule | None, walk: Walk, cost: Cost | None
    ) -> RouteDecision:
        if not walk.candidates and not walk.skipped and cost is None:
            # Decisions are immutable: the plain ones (nothing skipped, nothing priced)
            # are made once per executor, reason and rule, and shared.
            key = (name, reason, id(rule))
            decision = self._plain.get(key)
            if decision is None:
                candidate = RouteCandidate(name, available=True)
                decision = RouteDecision(name, reason, rule, candidates=(candidate,))
                decision = self._plain.setdefault(key, decision)
            walk.candidates.append(decision.candidates[0])
            return decision
        walk.candidates.append(RouteCandidate(name, available=True, cost=cost))
        return RouteDecision(name, reason, rule, tuple(walk.skipped), (), tuple(walk.candidates))

    def _attempt(self, name: str, job: JobSpec, hops: list[tuple[str, str]]) -> Execution | None:
        """Launch on ``name`` (slot already reserved); None and a hop when it refuses.

        Whatever the backend said is masked of the job's secrets (in every form a
        backend may echo them) before it reaches a retry, a log line, a hop, a hook or
        an error.
        """
        unknown: TransientExecutorError | None = None
        try:
            executor = self.executor(name)
            launch = executor.launch if not job.secrets else masking(executor.launch)
            execution: Execution = self.retry.call(launch, job)
        except TransientExecutorError as exc:
            self._available.unreserve(name)
            unknown = exc
            if unknown.executor is None:
                unknown.executor = name
            if unknown.job_id is None:
                unknown.job_id = job.job_id
            logger.warning("launching job %s on %r: outcome unknown: %s", job.job_id, name, unknown)
            self.hooks.emit("launch_failed", job=job, executor=name, error=unknown)
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
        if unknown is not None:
            raise unknown
        hops.append((name, "launched"))
        self._available.hold(name, execution)
        return execution

    def release(self, execution: Execution) -> None:
        """Free the capacity slot ``execution`` holds.

        Call it once the execution is terminal or cleaned up. Idempotent, and harmless
        for executions this router did not launch.
        """
        self._available.release(execution)

    def _candidates(
        self,
        job: JobSpec,
        names: Mapping[str, Any],
        costs: HourlyCosts | None,
        skipped: _Skips,
    ) -> Iterator[Candidate]:
        """Every candidate for ``job`` in routing order: ``(name, reason, rule)``.

        The preferred executor, the executors of the matching rules, the default, the
        fallback list. Conditions are evaluated lazily, only as far as the caller
        walks (``prefer="cheapest"`` evaluates them all, to order their executors).
        A candidate may come more than once (the caller skips repeats).
        """
        preferred = job.preferred_executor
        first = ((preferred, "preferred executor", None),) if preferred is not None else ()
        last = self._last if not self._cheapest else self._last_by_cost(job, costs)
        return itertools.chain(first, self._matching(job, names, costs, skipped), last)

    def _matching(
        self,
        job: JobSpec,
        names: Mapping[str, Any],
        costs: HourlyCosts | None,
        skipped: _Skips,
    ) -> Iterator[Candidate]:
        """The executors of the rules whose condition holds, by priority (or by cost)."""
        pooled: list[Candidate] = []
        for function, rule, index, single in self._program:
            try:
                matched = function(names)
            # A bad rule must not stop routing; try costs nothing until it raises.
            except Exception as exc:  # noqa: BLE001
                self._unevaluable(job, rule, index, exc, skipped)
                continue
            if not matched:
                continue
            if single is not None:
                yield single, rule.reason, rule
                continue
            listed: list[Candidate] = [(name, rule.reason, rule) for name in rule.executors]
            if self._cheapest:
                pooled.extend(listed)
            elif rule.prefer == "cheapest":
                yield from by_cost(listed, self._prices(job, costs))
            else:
                yield from listed
        if pooled:
            yield from by_cost(pooled, self._prices(job, costs))

    def _last_by_cost(self, job: JobSpec, costs: HourlyCosts | None) -> Iterator[Candidate]:
        """The default, then the fallback list cheapest first (priced only if reached)."""
        yield from self._last[:1] if self._default is not None else ()
        fallback: list[Candidate] = [(name, "fallback", None) for name in self._fallback]
        yield from by_cost(fallback, self._prices(job, costs))

    def _unevaluable(
        self, job: JobSpec, rule: RoutingRule, index: int, exc: Exception, skipped: _Skips
    ) -> None:
        logger.warning(
            "rules[%d] (%s) could not be evaluated for job %s: %s",
            index,
            rule.condition,
            job.job_id,
            exc,
        )
        for executor in rule.executors:
            skipped.append((executor, f"rules[{index}] could not be evaluated: {exc}"))

    def _context(
        self, job: JobSpec, extra: Mapping[str, Any] | None, *, priced: bool
    ) -> tuple[dict[str, Any], HourlyCosts | None]:
        """The names conditions see, and the price cache when anything will read it.

        ``extra`` (the caller's ``context=``) adds names or replaces standard ones.
        """
        resources = job.resources
        costs = self._prices(job, None) if priced or self._priced else None
        names = {
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
            "cost": costs if costs is not None else _NO_EXTRA,
            **(extra or _NO_EXTRA),
        }
        return names, costs

    # -- reporting --------------------------------------------------------------------

    def _log(self, job: JobSpec, decision: RouteDecision) -> None:
        logger.info("job %s (%s) -> %s", job.job_id, job.name, decision.explain())

    def _nothing(self, job: JobSpec, walk: Walk) -> NoExecutorAvailableError:
        capacity_only = walk.wait or (walk.full > 0 and walk.down == 0 and walk.other == 0)
        retry_after: float | None = None
        if capacity_only:
            retry_after = 0.0
        elif walk.down and not walk.other:
            retry_after = walk.retry_after
        error = NoExecutorAvailableError(
            job.job_id, walk.skipped, capacity_only=capacity_only, retry_after=retry_after
        )
        level = logging.INFO if retry_after is not None else logging.WARNING
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

    def __repr__(self) -> str:
        return (
            f"Router(executors={list(self._names)!r}, rules={len(self._rules)}, "
            f"default={self._default!r}, fallback={list(self._fallback)!r})"
        )
