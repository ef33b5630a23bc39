"""A spending limit for a Runner: estimates reserved at launch, settled at the end."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import TYPE_CHECKING

from jobrelay._models import Cost
from jobrelay.errors import ConfigError, ExecutorError

if TYPE_CHECKING:
    from jobrelay._handle import JobRecord
    from jobrelay._models import JobResult
    from jobrelay._router import Router
    from jobrelay._spec import JobSpec

__all__ = ["Budget", "Reservations", "parse_budget"]

logger = logging.getLogger("jobrelay.runner")


def parse_budget(value: Cost | str | None) -> Cost | None:
    """Return a budget from a :class:`Cost` or text such as ``"25 EUR"``.

    Raises:
        ConfigError: the text is not an amount followed by a currency code.
    """
    if value is None or isinstance(value, Cost):
        return value
    if isinstance(value, str):
        amount, _, currency = value.strip().partition(" ")
        currency = currency.strip().upper()
        if len(currency) == 3 and currency.isalpha():
            try:
                cost = Cost(amount, currency, Decimal(0), "budget")
            except ValueError:
                pass
            else:
                if cost.amount >= 0:
                    return cost
    raise ConfigError(f"budget: expected an amount and a currency like '25 EUR', got {value!r}")


class Budget:
    """The spend of a Runner's launched jobs against its limit (thread-safe).

    A launch *reserves* its estimate (the job priced at its timeout); when the job
    ends its reservation is replaced by what it really cost. Amounts in another
    currency are never added: such an estimate is a :class:`ConfigError`.
    """

    def __init__(self, limit: Cost) -> None:
        self.limit = limit
        self._spent = Decimal(0)
        self._lock = threading.Lock()

    def spent(self) -> Cost:
        """Return the spend so far (reservations of running jobs included)."""
        with self._lock:
            return Cost(self._spent, self.limit.currency, Decimal(0), "runner")

    def reserve(self, estimate: Cost, *, executor: str, job_id: str) -> None:
        """Reserve ``estimate`` for a launch, or refuse it.

        Raises:
            ConfigError: the estimate is in another currency.
            ExecutorError: the launch would take the spend past the limit.
        """
        if estimate.currency != self.limit.currency:
            raise ConfigError(
                f"budget is in {self.limit.currency} but {executor!r} prices in "
                f"{estimate.currency}; currencies are never added"
            )
        with self._lock:
            if self._spent + estimate.amount > self.limit.amount:
                raise ExecutorError(
                    f"budget exhausted: {self._spent:.4f} of {self.limit.amount} "
                    f"{self.limit.currency} spent, this job is estimated at "
                    f"{estimate.amount:.4f}",
                    executor=executor,
                    job_id=job_id,
                )
            self._spent += estimate.amount

    def settle(self, reserved: Cost, actual: Cost | None) -> None:
        """Replace a reservation by the job's real cost (None: it cost nothing known)."""
        with self._lock:
            self._spent -= reserved.amount
            if actual is not None and actual.currency == self.limit.currency:
                self._spent += actual.amount


class Reservations:
    """A Runner's jobs against its budget: what each launch reserved, held on its record.

    ``reserve`` prices a job where it will be routed, ``reprice`` moves the estimate to
    where it really launched, ``release`` gives back what a launch that did not happen
    held, ``settle`` replaces it by the job's real cost. Without a limit every method
    does nothing (``reserve`` returns None).

    Args:
        limit: the Runner's budget, or None.
        router: routes and prices the jobs.
        expected_duration: seconds a job without ``timeout`` is priced at.
    """

    def __init__(self, limit: Cost | None, router: Router, expected_duration: float) -> None:
        self._budget = Budget(limit) if limit is not None else None
        self._router = router
        self._expected_duration = expected_duration

    def spent(self) -> Cost | None:
        """Return the spend so far, or None without a budget."""
        return self._budget.spent() if self._budget is not None else None

    def reserve(self, record: JobRecord, job: JobSpec) -> str | None:
        """Reserve the job's estimate where it will be routed; return that executor.

        A launch tried again (after waiting, or an unknown outcome) reserves afresh:
        what an earlier try reserved is released first.

        Raises:
            ConfigError: the estimate is in another currency than the budget.
            ExecutorError: the launch would take the spend past the budget.
        """
        if self._budget is None:
            return None
        self.release(record)
        decision = self._router.route(job, record.context)
        duration = job.timeout if job.timeout is not None else self._expected_duration
        estimate = self._router.estimate(decision.executor, job, duration)
        if estimate is not None:
            self._budget.reserve(estimate, executor=decision.executor, job_id=job.job_id)
            record.estimate = estimate
        return decision.executor

    def reprice(self, record: JobRecord, job: JobSpec, executor: str) -> None:
        """The launch went elsewhere than priced (a candidate refused): hold its estimate."""
        assert self._budget is not None  # noqa: S101
        duration = job.timeout if job.timeout is not None else self._expected_duration
        estimate = self._router.estimate(executor, job, duration)
        reserved = record.estimate
        if reserved is not None and (estimate is None or estimate.currency == reserved.currency):
            self._budget.settle(reserved, estimate)  # the job runs: its estimate is spent
            record.estimate = estimate
        spent = self._budget.spent()
        if spent.amount > self._budget.limit.amount:
            logger.warning(
                "job %s was priced on another executor than %r, where it launched: the "
                "estimated spend is now %s, past the budget of %s",
                job.job_id,
                executor,
                spent.amount,
                self._budget.limit,
            )

    def release(self, record: JobRecord) -> None:
        """Give back what a launch that did not happen reserved."""
        if self._budget is not None and record.estimate is not None:
            self._budget.settle(record.estimate, None)
            record.estimate = None

    def settle(self, record: JobRecord, result: JobResult) -> None:
        """Replace a job's reserved estimate by its real cost in the spend so far."""
        if self._budget is not None and record.estimate is not None:
            self._budget.settle(record.estimate, result.cost)
            record.estimate = None
