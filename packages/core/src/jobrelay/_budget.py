"""A spending limit for a Runner: estimates reserved at launch, settled at the end."""

from __future__ import annotations

import threading
from decimal import Decimal

from jobrelay._models import Cost
from jobrelay.errors import ConfigError, ExecutorError

__all__ = ["Budget", "parse_budget"]


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
