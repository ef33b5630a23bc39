"""Whether an executor can take a job now: enabled, healthy, under capacity, big enough.

Health answers are cached ``health_ttl`` seconds (a check that raises counts as
unhealthy; so does an executor that cannot be created). Capacity is counted per
executor: a launch reserves a slot first, so threads racing for the last slot cannot
both take it, and the slot stays held until the execution is released.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from jobrelay._clock import Clock, SystemClock
from jobrelay._config import ExecutorEntry
from jobrelay._models import Capabilities, Execution
from jobrelay._spec import JobSpec

__all__ = ["AVAILABLE", "Availability"]

logger = logging.getLogger("jobrelay.router")

Verdict = tuple["str | None", bool]
AVAILABLE: Verdict = (None, False)


class _Health(NamedTuple):
    """A cached health answer: valid until ``expires``; ``limits`` for fit checks."""

    expires: float
    problem: str | None
    limits: tuple[float, float, float] | None  # cpu, memory MiB, gpu (inf: no limit)


class Availability:
    """The health cache and capacity counts of one Router's executors. Thread-safe.

    Args:
        entries: the configured executors.
        create: ``name -> executor``, creating it on first use.
        health_ttl: seconds a health answer is reused.
        clock: where the time comes from.
    """

    def __init__(
        self,
        entries: Mapping[str, ExecutorEntry],
        create: Callable[[str], Any],
        health_ttl: float,
        clock: Clock,
    ) -> None:
        self._entries = entries
        self._create = create
        self._ttl = health_ttl
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = dict.fromkeys(entries, 0)
        self._slots: dict[tuple[str, str], str] = {}
        self._health: dict[str, _Health] = {}
        # The system clock read without a method call: check() is on every job's path.
        self._now = time.time if type(clock) is SystemClock else clock.time

    def in_flight(self, name: str) -> int:
        """Slots of ``name`` held (launched, not released) or being launched."""
        return self._in_flight[name]

    def ready(self, name: str, job: JobSpec) -> bool:
        """Whether ``name`` can take ``job`` on what is known now, calling no executor.

        False also when its health answer is stale: :meth:`check` then refreshes it.
        This is :meth:`check` without the reasons, for the path every job takes.
        """
        entry = self._entries.get(name)
        if entry is None or not entry.enabled:
            return False
        limit = entry.max_concurrent
        if limit is not None and self._in_flight[name] >= limit:
            return False
        state = self._health.get(name)
        if state is None or state.problem is not None or self._now() >= state.expires:
            return False
        limits = state.limits
        if limits is None:
            return True
        resources = job.resources
        return (
            resources.cpu <= limits[0]
            and resources.memory <= limits[1]
            and resources.gpu <= limits[2]
        )

    def check(self, name: str, job: JobSpec | None) -> Verdict:
        """``(why not, because full)``; :data:`AVAILABLE` when ``name`` can take ``job``.

        Refreshes a stale health answer first (which may create the executor).
        """
        entry = self._entries.get(name)
        if entry is None or not entry.enabled:
            return ("not configured" if entry is None else "disabled"), False
        limit = entry.max_concurrent
        if limit is not None and self._in_flight[name] >= limit:
            return f"at capacity ({self._in_flight[name]}/{limit} running)", True
        state = self._health.get(name)
        now = self._now()
        if state is None or now >= state.expires:
            state = self._probe(name, now)
        problem, limits = state.problem, state.limits
        if problem is None:
            if job is None or limits is None:
                return AVAILABLE
            resources = job.resources
            if (
                resources.cpu <= limits[0]
                and resources.memory <= limits[1]
                and resources.gpu <= limits[2]
            ):
                return AVAILABLE
            problem = _misfit(limits, job)
        return problem, False

    def _probe(self, name: str, now: float) -> _Health:
        """Check health (creating the executor if need be); cache the answer."""
        limits: tuple[float, float, float] | None = None
        try:
            executor = self._create(name)
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
                    limits = _limits(executor.capabilities())
                except Exception:  # noqa: BLE001 - unknown limits do not block a job
                    logger.warning("capabilities() of %r raised; ignoring its limits", name)
        if problem is not None:
            logger.warning("executor %r is unavailable: %s", name, problem)
        state = _Health(now + self._ttl, problem, limits)
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
        if verdict[0] is not None:
            return verdict
        limit = self._entries[name].max_concurrent
        with self._lock:
            running = self._in_flight[name]
            if limit is not None and running >= limit:
                return f"at capacity ({running}/{limit} running)", True
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


def _limits(capabilities: Capabilities) -> tuple[float, float, float]:
    def bound(value: float | None) -> float:
        return math.inf if value is None else float(value)

    return (
        bound(capabilities.max_cpu),
        bound(capabilities.max_memory_mb),
        float(capabilities.max_gpu),
    )


def _misfit(limits: tuple[float, float, float], job: JobSpec) -> str:
    resources = job.resources
    max_cpu, max_memory, max_gpu = limits
    if resources.cpu > max_cpu:
        return f"job asks {resources.cpu:g} CPUs, executor allows {max_cpu:g}"
    if resources.memory > max_memory:
        return f"job asks {resources.memory} MiB, executor allows {max_memory:g}"
    return f"job asks {resources.gpu} GPUs, executor allows {max_gpu:g}"
