"""The pieces of one routing: its records, the prices it reads, what it has found.

:class:`RouteDecision` and :class:`RouteCandidate` are what :class:`~jobrelay.Router`
reports; :class:`HourlyCosts` is ``cost`` in conditions; :class:`Walk` collects what
a walk through the candidates passed over; :func:`masking` keeps a job's secrets out
of every launch error the Router passes on.
"""

from __future__ import annotations

import copy
import logging
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from jobrelay._availability import DOWN, FULL, Verdict
from jobrelay._config import RoutingRule
from jobrelay._models import Cost, Execution
from jobrelay._scrub import Scrubber
from jobrelay._spec import JobSpec
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError

__all__ = [
    "Candidate",
    "HourlyCosts",
    "RouteCandidate",
    "RouteDecision",
    "Walk",
    "by_cost",
    "masked",
    "masking",
    "rate_text",
]

logger = logging.getLogger("jobrelay.router")

_Skips = list[tuple[str, str]]


@attrs.frozen
class RouteCandidate:
    """One executor routing looked at, with what it found.

    Attributes:
        executor: the executor's name.
        available: whether it could take the job.
        why: why not, when unavailable ("" otherwise).
        cost: its estimate for one hour of the job, when it was priced (always
            under ``prefer="cheapest"``; on demand with ``route(..., explain=True)``).
    """

    executor: str
    available: bool
    why: str = ""
    cost: Cost | None = None


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
        candidates: every executor looked at, in routing order, the chosen one
            included, each with its cost estimate when priced.
    """

    executor: str
    reason: str
    rule: RoutingRule | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    hops: tuple[tuple[str, str], ...] = ()
    candidates: tuple[RouteCandidate, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data (strings and tuples) for metadata, logs and JSON."""
        return {
            "executor": self.executor,
            "reason": self.reason,
            "rule": self.rule.condition if self.rule is not None else None,
            "skipped": self.skipped,
            "hops": self.hops,
            "candidates": tuple(
                (c.executor, c.available, c.why, rate_text(c.cost)) for c in self.candidates
            ),
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


def rate_text(cost: Cost | None) -> str | None:
    return None if cost is None else f"{cost.rate_per_hour} {cost.currency}/h"


class HourlyCosts(Mapping[str, Decimal]):
    """``cost`` in conditions: hourly rates by executor name, priced on first read.

    Read-only; an executor that cannot price the job has no key. Each executor is
    priced at most once per routing.
    """

    def __init__(self, names: Sequence[str], price: Callable[[str], Cost | None]) -> None:
        self._names = names
        self._price = price
        self.estimates: dict[str, Cost | None] = {}

    def estimate(self, name: str) -> Cost | None:
        """The estimate for ``name`` (None: it cannot price the job), asked once."""
        if name not in self.estimates:
            self.estimates[name] = self._price(name)
        return self.estimates[name]

    def __getitem__(self, name: str) -> Decimal:
        cost = self.estimate(name) if name in self._names else None
        if cost is None:
            raise KeyError(name)
        return cost.rate_per_hour

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._names if self.estimate(name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"<costs of {len(self.estimates)} executors priced so far>"


class Walk:
    """What one routing found so far: candidates, skips, and whether to wait."""

    __slots__ = (
        "candidates",
        "down",
        "full",
        "other",
        "pinned",
        "retry_after",
        "seen",
        "skipped",
        "wait",
    )

    def __init__(self, *, pinned: bool = False) -> None:
        # Pinned (a launch to one executor only): an unhealthy one is worth waiting
        # for however long it has failed, until its next health probe each time.
        self.pinned = pinned
        self.skipped: _Skips = []
        self.candidates: list[RouteCandidate] = []
        self.seen: list[str] = []  # a list: mostly one name, cheaper than a set
        self.full = self.down = self.other = 0
        self.wait = False
        self.retry_after: float | None = None

    def refuse(self, name: str, verdict: Verdict, cost: Cost | None) -> None:
        """Record a candidate passed over, and what kind of reason it was."""
        why = verdict.why or ""
        self.skipped.append((name, why))
        self.candidates.append(RouteCandidate(name, available=False, why=why, cost=cost))
        if verdict.kind == FULL:
            self.full += 1
        elif verdict.retry_after is not None and (verdict.kind == DOWN or self.pinned):
            self.down += 1
            if self.retry_after is None or verdict.retry_after < self.retry_after:
                self.retry_after = verdict.retry_after
        else:
            self.other += 1


Candidate = tuple[str, str, RoutingRule | None]
"""``(executor, reason, rule)``: one step of the routing order."""


def by_cost(candidates: Sequence[Candidate], prices: HourlyCosts) -> list[Candidate]:
    """``candidates`` cheapest first (stable; unpriced ones last, in their order).

    Rates in different currencies are compared as they are, with a warning: the
    Router converts no money.
    """
    estimates = [prices.estimate(name) for name, _, _ in candidates]
    currencies = {cost.currency for cost in estimates if cost is not None}
    if len(currencies) > 1:
        logger.warning(
            "comparing hourly rates in %s as if they were one currency; "
            "configure prices in one currency to order candidates by cost",
            ", ".join(sorted(currencies)),
        )
    order = sorted(
        range(len(candidates)),
        key=lambda i: (1, Decimal(0)) if estimates[i] is None else (0, _rate(estimates[i])),
    )
    return [candidates[i] for i in order]


_E = TypeVar("_E", bound=ExecutorError)


def masking(launch: Callable[[JobSpec], Execution]) -> Callable[[JobSpec], Execution]:
    """``launch`` whose errors never carry the job's secrets, not even as context."""

    def masked_launch(job: JobSpec) -> Execution:
        try:
            return launch(job)
        except ExecutorError as exc:
            clean = masked(exc, job)
            if clean is exc:
                raise
        # Raised here, not in the handler, so the original is not its context.
        raise clean

    return masked_launch


def masked(error: _E, job: JobSpec) -> _E:
    """``error``, or a copy of it without the job's secrets when its text holds one."""
    if not job.secrets:
        return error
    text = str(error)
    clean = Scrubber(job.secrets.values())(text)
    if clean == text:
        return error
    masked: ExecutorError
    try:
        masked = copy.copy(error)
        masked.args = (clean,)
    except Exception:  # noqa: BLE001 - an exception class that cannot be copied
        kind: type[ExecutorError] = ExecutorError
        if isinstance(error, (TransientExecutorError, LaunchError)):
            kind = (
                TransientExecutorError if isinstance(error, TransientExecutorError) else LaunchError
            )
        masked = kind(clean, executor=error.executor, job_id=error.job_id)
    masked.__cause__ = masked.__context__ = None
    masked.__traceback__ = None
    return typing.cast("_E", masked)


def _rate(cost: Cost | None) -> Decimal:
    return Decimal(0) if cost is None else cost.rate_per_hour
