"""Whether an executor can take a job now: enabled, under capacity, healthy, big enough.

One question, one answer: :meth:`Availability.check` returns a :class:`Verdict`, the
same for routing previews and for launches (:meth:`Availability.reserve` is ``check``
plus taking a slot under the lock, so threads racing for the last slot cannot both
take it; the slot stays held until the execution is released).

Health answers are cached: a healthy one for ``health_ttl`` seconds, a failed one only
briefly, probed again after 1, 2, 4 ... seconds (at most 30, and never longer than
``health_ttl``), so one transient failure does not take an executor out for minutes.
Threads that find the same answer stale at once share one probe. A job whose
candidates are unhealthy may wait for them (see :attr:`Verdict.retry_after`) while
their failures are younger than ``unhealthy_wait`` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import NamedTuple

from jobrelay._clock import Clock
from jobrelay._config import ExecutorEntry
from jobrelay._models import Capabilities, Execution
from jobrelay._protocol import Executor
from jobrelay._spec import JobSpec

__all__ = ["AVAILABLE", "DOWN", "FULL", "OK", "OTHER", "Availability", "Verdict"]

logger = logging.getLogger("jobrelay.router")

OK, FULL, DOWN, OTHER = 0, 1, 2, 3
"""Verdict kinds: available; at capacity; unhealthy for now; unavailable otherwise."""

RETRY_FIRST = 1.0
"""Seconds a first failed health answer is kept before probing again (then doubled)."""
RETRY_MAX = 30.0
"""Longest wait between probes of a failing executor."""


class Verdict(NamedTuple):
    """Whether an executor can take a job, and if not, why and for how long.

    Attributes:
        why: None when available, else a reason for people.
        kind: :data:`OK`, :data:`FULL`, :data:`DOWN` or :data:`OTHER`.
        retry_after: seconds until the next health probe of an unhealthy executor
            that may recover: for ``DOWN`` (its failures are recent, waiting makes
            sense), and for an ``OTHER`` one failing longer (only a launch pinned to
            it waits); None otherwise.
    """

    why: str | None
    kind: int
    retry_after: float | None = None


AVAILABLE = Verdict(None, OK)


class _Limits(NamedTuple):
    """What one job may ask of an executor (inf: no limit)."""

    cpu: float
    memory: float
    gpu: float
    cancel: bool


class _Health(NamedTuple):
    """A cached health answer: valid until ``expires``; ``limits`` for fit checks."""

    expires: float
    problem: str | None
    limits: _Limits | None
    failures: int = 0  # consecutive failed probes
    failing_since: float = 0.0
    lasting: bool = False  # the executor cannot be created: waiting will not help


class Availability:
    """The health cache and capacity counts of one Router's executors. Thread-safe.

    Args:
        entries: the configured executors.
        create: ``name -> executor``, creating it on first use.
        health_ttl: seconds a healthy answer is reused.
        unhealthy_wait: seconds of failing health checks after which jobs stop
            waiting for an executor.
        clock: where the time comes from.
    """

    def __init__(
        self,
        entries: Mapping[str, ExecutorEntry],
        create: Callable[[str], Executor],
        health_ttl: float,
        unhealthy_wait: float,
        clock: Clock,
    ) -> None:
        self._entries = entries
        self._create = create
        self._ttl = health_ttl
        self._wait = unhealthy_wait
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = dict.fromkeys(entries, 0)
        self._slots: dict[tuple[str, str], str] = {}
        self._health: dict[str, _Health] = {}
        self._probing = {name: threading.Lock() for name in entries}
        self._now = clock.time

    def in_flight(self, name: str) -> int:
        """Slots of ``name`` held (launched, not released) or being launched."""
        return self._in_flight[name]

    def check(self, name: str, job: JobSpec | None) -> Verdict:
        """Whether ``name`` can take ``job`` (None: any job) now; :data:`AVAILABLE` if so.

        Refreshes a stale health answer first (which may create the executor).
        """
        entry = self._entries.get(name)
        if entry is None or not entry.enabled:
            return Verdict("not configured" if entry is None else "disabled", OTHER)
        limit = entry.max_concurrent
        if limit is not None and self._in_flight[name] >= limit:
            return Verdict(f"at capacity ({self._in_flight[name]}/{limit} running)", FULL)
        now = self._now()
        state = self._health.get(name)
        if state is None or now >= state.expires:
            state = self._refresh(name, state)
        if state.problem is not None:
            if state.lasting:
                return Verdict(state.problem, OTHER)
            next_probe = max(state.expires - now, 0.0)
            if now - state.failing_since >= self._wait:
                # Not worth waiting for in general; a launch pinned here may still wait.
                return Verdict(state.problem, OTHER, next_probe)
            return Verdict(state.problem, DOWN, next_probe)
        misfit = None if job is None or state.limits is None else _misfit(state.limits, job)
        return AVAILABLE if misfit is None else Verdict(misfit, OTHER)

    def _refresh(self, name: str, seen: _Health | None) -> _Health:
        """Probe ``name`` once however many threads found ``seen`` stale together."""
        with self._probing[name]:
            state = self._health.get(name)
            if state is not seen and state is not None:
                return state  # another thread probed while this one waited
            return self._probe(name, seen)

    def _probe(self, name: str, previous: _Health | None) -> _Health:
        """Check health (creating the executor if need be); cache the answer."""
        limits: _Limits | None = None
        lasting = False
        try:
            executor = self._create(name)
        except Exception as exc:  # noqa: BLE001 - a broken backend is unavailable, not fatal
            problem: str | None = f"could not be created: {exc}"
            lasting = True
        else:
            try:
                health = executor.health()
                healthy, detail = bool(health.healthy), str(health.detail or "no detail")
            except Exception as exc:  # noqa: BLE001 - the contract says never raise; some do
                problem = f"health check raised {type(exc).__name__}: {exc}"
            else:
                problem = None if healthy else f"unhealthy: {detail}"
            if problem is None:
                try:
                    limits = _limits(executor.capabilities())
                except Exception:  # noqa: BLE001 - unknown limits do not block a job
                    logger.warning("capabilities() of %r raised; ignoring its limits", name)
        now = self._now()
        if problem is None:
            state = _Health(now + self._ttl, None, limits)
        else:
            failing = previous is not None and previous.problem is not None
            failures = previous.failures + 1 if failing and previous is not None else 1
            since = previous.failing_since if failing and previous is not None else now
            delay = min(RETRY_FIRST * 2.0 ** min(failures - 1, 16), RETRY_MAX, self._ttl)
            state = _Health(now + delay, problem, None, failures, since, lasting)
            logger.warning(
                "executor %r is unavailable (failure %d, next check in %gs): %s",
                name,
                failures,
                delay,
                problem,
            )
        with self._lock:
            self._health[name] = state
        return state

    def forget_health(self) -> None:
        """Drop every cached health answer (the executors were closed)."""
        with self._lock:
            self._health.clear()

    def reserve(self, name: str, job: JobSpec) -> Verdict:
        """Check ``name`` and take one of its slots; :data:`AVAILABLE` when taken."""
        verdict = self.check(name, job)
        if verdict.why is not None:
            return verdict
        limit = self._entries[name].max_concurrent
        with self._lock:
            running = self._in_flight[name]
            if limit is not None and running >= limit:
                return Verdict(f"at capacity ({running}/{limit} running)", FULL)
            self._in_flight[name] = running + 1
        return AVAILABLE

    def unreserve(self, name: str) -> None:
        """Give back a slot whose launch did not happen."""
        with self._lock:
            self._in_flight[name] -= 1

    def hold(self, name: str, execution: Execution) -> None:
        """Tie the reserved slot of ``name`` to ``execution`` until :meth:`release`."""
        key = (execution.executor, execution.execution_id)
        with self._lock:
            if key in self._slots:  # the same job_id again: the backend returned its execution
                self._in_flight[name] -= 1
            else:
                self._slots[key] = name

    def release(self, execution: Execution) -> None:
        """Free the slot ``execution`` holds; idempotent; unknown executions are ignored."""
        with self._lock:
            name = self._slots.pop((execution.executor, execution.execution_id), None)
            if name is not None:
                self._in_flight[name] -= 1


def _limits(capabilities: Capabilities) -> _Limits:
    def bound(value: float | None) -> float:
        return math.inf if value is None else float(value)

    return _Limits(
        bound(capabilities.max_cpu),
        bound(capabilities.max_memory_mb),
        float(capabilities.max_gpu),
        bool(capabilities.cancel),
    )


def _misfit(limits: _Limits, job: JobSpec) -> str | None:
    """Why ``job`` cannot run within ``limits``, or None when it fits.

    Besides cpu, memory and gpu, a job with a ``timeout`` needs an executor that can
    ``cancel``: otherwise nobody could stop it when the time is up.
    """
    resources = job.resources
    if resources.cpu > limits.cpu:
        return f"job asks {resources.cpu:g} CPUs, executor allows {limits.cpu:g}"
    if resources.memory > limits.memory:
        return f"job asks {resources.memory} MiB, executor allows {limits.memory:g}"
    if resources.gpu > limits.gpu:
        return f"job asks {resources.gpu} GPUs, executor allows {limits.gpu:g}"
    if job.timeout is not None and not limits.cancel:
        return "job has a timeout, and the executor cannot cancel a job to enforce it"
    return None
