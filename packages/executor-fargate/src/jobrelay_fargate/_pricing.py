"""Pricing a Fargate task: the dated price table and what one run of a size costs.

Fargate bills the task size it gave (the rounded-up cpu/memory pair, not what the
job asked), per second rounded up, with a one-minute minimum. The table ships as
package data (``data/prices.toml``: one row per region, capacity provider and CPU
architecture, each with its unit, currency, the date it was read and its source);
``prices=`` replaces it with a mapping of the same shape or a TOML file of it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from decimal import Decimal

import attrs

from jobrelay import ConfigError, Cost, JobSpec
from jobrelay.backend import billed_seconds as core_billed_seconds
from jobrelay.backend import load_price_document, parse_price
from jobrelay_fargate._sizing import FargateSize, fargate_size

__all__ = [
    "MAX_PRICED_SECONDS",
    "MINIMUM_SECONDS",
    "Price",
    "PriceTable",
    "Pricer",
    "billed_seconds",
]

MINIMUM_SECONDS = 60
MAX_PRICED_SECONDS = 10**10  # beyond it an estimate means nothing (and outgrows Decimal)
_PLACES = Decimal("1e-10")
_SECONDS_PER_HOUR = Decimal(3600)
_MIB_PER_GB = Decimal(1024)
_CPU_UNITS_PER_VCPU = Decimal(1024)
_CAPACITY = ("FARGATE", "FARGATE_SPOT")
_ARCHITECTURES = ("X86_64", "ARM64")


def billed_seconds(duration_seconds: float) -> Decimal:
    """Return the seconds Fargate bills for a run: rounded up, at least one minute."""
    return core_billed_seconds(duration_seconds, minimum=Decimal(MINIMUM_SECONDS))


def _money(row: int, field: str, value: object) -> Decimal:
    return parse_price(value, f"row {row}: {field}")


def _choice(row: int, field: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"prices: row {row}: {field} must be one of {', '.join(allowed)}")
    return str(value)


def _text(row: int, field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"prices: row {row}: {field} must be a non-empty string")
    return value


@attrs.frozen
class Price:
    """One row of the table: what an hour of one vCPU and one GB costs somewhere."""

    region: str
    capacity_provider: str
    cpu_architecture: str
    vcpu_hour: Decimal
    gb_hour: Decimal
    currency: str
    read: str
    source: str

    @classmethod
    def parse(cls, row: int, data: object) -> Price:
        """Check one row of a price table.

        Raises:
            ConfigError: a field is missing or malformed (names the row and field).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"prices: row {row} must be a table, got {type(data).__name__}")
        read = data.get("read", "")
        return cls(
            region=_text(row, "region", data.get("region")),
            capacity_provider=_choice(
                row, "capacity_provider", data.get("capacity_provider", "FARGATE"), _CAPACITY
            ),
            cpu_architecture=_choice(
                row, "cpu_architecture", data.get("cpu_architecture", "X86_64"), _ARCHITECTURES
            ),
            vcpu_hour=_money(row, "vcpu_hour", data.get("vcpu_hour")),
            gb_hour=_money(row, "gb_hour", data.get("gb_hour")),
            currency=_text(row, "currency", data.get("currency", "USD")),
            read=read.isoformat() if isinstance(read, dt.date) else str(read),
            source=str(data.get("source", "")),
        )

    def rate_per_hour(self, size: FargateSize) -> Decimal:
        """Return what an hour of a task of ``size`` costs."""
        vcpus = Decimal(size.cpu_units) / _CPU_UNITS_PER_VCPU
        gbs = Decimal(size.memory_mb) / _MIB_PER_GB
        return vcpus * self.vcpu_hour + gbs * self.gb_hour

    def cost(self, size: FargateSize, duration_seconds: float, *, origin: str) -> Cost:
        """Return the cost of running a task of ``size`` for ``duration_seconds``."""
        rate = self.rate_per_hour(size)
        amount = rate * billed_seconds(duration_seconds) / _SECONDS_PER_HOUR
        where = f"{origin}, read {self.read}" if self.read else origin
        return Cost(
            amount=amount.quantize(_PLACES),
            currency=self.currency,
            rate_per_hour=rate,
            source=f"fargate {self.region} {self.capacity_provider} {self.cpu_architecture} "
            f"({where})",
        )


@attrs.frozen
class PriceTable:
    """A parsed price table, looked up by region, capacity provider and architecture."""

    rows: tuple[Price, ...]
    origin: str

    @classmethod
    def parse(cls, document: object, *, origin: str) -> PriceTable:
        """Check a whole table (``{"price": [row, ...]}``).

        Raises:
            ConfigError: the document or a row is malformed.
        """
        if not isinstance(document, Mapping) or not isinstance(document.get("price"), list):
            raise ConfigError("prices: must hold a list of rows under 'price'")
        rows = tuple(Price.parse(i, row) for i, row in enumerate(document["price"]))
        return cls(rows, origin)

    @classmethod
    def load(cls, prices: object) -> PriceTable:
        """Return the table ``prices=`` names: None (built in), a mapping, or a TOML file.

        Raises:
            ConfigError: the file cannot be read or parsed, or a row is malformed.
        """
        if prices is not None and not isinstance(prices, (Mapping, str, os.PathLike)):
            raise ConfigError(
                f"prices: must be a mapping or a path to a TOML file, got {type(prices).__name__}"
            )
        document, origin = load_price_document(
            prices, package="jobrelay_fargate", resource="data/prices.toml"
        )
        return cls.parse(document, origin=origin)

    def find(self, region: str, capacity_provider: str, cpu_architecture: str) -> Price | None:
        """Return the row for that place and kind of capacity, None if the table has none."""
        for row in self.rows:
            if (row.region, row.capacity_provider, row.cpu_architecture) == (
                region,
                capacity_provider,
                cpu_architecture,
            ):
                return row
        return None


@attrs.frozen
class Pricer:
    """Prices jobs and runs for one executor: its table, region, capacity, architecture."""

    table: PriceTable
    region: str
    capacity_provider: str
    cpu_architecture: str

    def row(self, capacity: object = None, architecture: object = None) -> Price | None:
        """Return the price row in use (another capacity or architecture if given)."""
        return self.table.find(
            self.region,
            capacity if isinstance(capacity, str) else self.capacity_provider,
            architecture if isinstance(architecture, str) else self.cpu_architecture,
        )

    def for_job(self, job: JobSpec, duration_seconds: float) -> Cost | None:
        """Return the cost of ``job`` for ``duration_seconds`` (None: cannot be priced)."""
        if job.resources.gpu or not 0 <= duration_seconds <= MAX_PRICED_SECONDS:
            return None
        size = fargate_size(job.resources.cpu, job.resources.memory)
        row = self.row()
        if size is None or row is None:
            return None
        return row.cost(size, duration_seconds, origin=self.table.origin)

    def for_run(self, metadata: Mapping[str, object], duration: float) -> Cost | None:
        """Return the cost of a task that ran ``duration`` seconds.

        The size and kind come from its execution's ``cpu_units``, ``memory_mb``,
        ``capacity_provider`` and ``cpu_architecture``.
        """
        cpu, memory = metadata.get("cpu_units"), metadata.get("memory_mb")
        if not isinstance(cpu, int) or not isinstance(memory, int):
            return None
        row = self.row(metadata.get("capacity_provider"), metadata.get("cpu_architecture"))
        if row is None or not 0 <= duration <= MAX_PRICED_SECONDS:
            return None
        return row.cost(FargateSize(cpu, memory), duration, origin=self.table.origin)
