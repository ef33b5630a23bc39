"""Cloud Run job prices: a dated table per region tier, and the estimate of one job.

Jobs are billed per vCPU-second and GiB-second of the size a task is given (after
rounding up to a Cloud Run size), for the time it runs rounded up to the next 100 ms,
with no minimum. The shipped table is ``prices.toml`` (package data); ``prices=``
replaces it with a mapping of the same shape or another TOML file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from jobrelay import ConfigError, Cost
from jobrelay.backend import billed_seconds, load_price_document, parse_price

__all__ = ["GRANULARITY", "PriceRow", "load_prices", "price_for"]

GRANULARITY = Decimal("0.1")  # seconds: Cloud Run rounds billed time up to 100 ms
_MIB_PER_GIB = Decimal(1024)
_HOUR = Decimal(3600)


@attrs.frozen
class PriceRow:
    """The prices of one region tier."""

    tier: str
    vcpu_second: Decimal
    gib_second: Decimal
    currency: str
    read: str
    source: str
    regions: frozenset[str]

    def describe(self, origin: str) -> str:
        """Where the price comes from, for :attr:`jobrelay.Cost.source`."""
        return f"{origin} {self.tier} (read {self.read}, {self.source})"

    def cost(self, cpu: int, memory_mb: int, seconds: float) -> tuple[Decimal, Decimal]:
        """Return (amount, rate per hour) for ``cpu`` vCPU and ``memory_mb`` MiB."""
        per_second = self.vcpu_second * cpu + self.gib_second * Decimal(memory_mb) / _MIB_PER_GIB
        return per_second * billed_seconds(seconds, granularity=GRANULARITY), per_second * _HOUR


def _rows(table: Mapping[str, Any]) -> list[PriceRow]:
    tiers = table.get("tiers")
    if not isinstance(tiers, Mapping) or not tiers:
        raise ConfigError("prices: needs a [tiers.<name>] table")
    rows = []
    for tier, row in tiers.items():
        if not isinstance(row, Mapping):
            raise ConfigError(f"prices: tiers.{tier} must be a table")
        missing = {"vcpu_second", "gib_second", "currency", "regions"} - set(row)
        if missing:
            raise ConfigError(f"prices: tiers.{tier} lacks {', '.join(sorted(missing))}")
        regions = row["regions"]
        if not isinstance(regions, (list, tuple)) or not all(isinstance(r, str) for r in regions):
            raise ConfigError(f"prices: tiers.{tier}.regions must be a list of region names")
        read = row.get("read", "")
        rows.append(
            PriceRow(
                tier=str(tier),
                vcpu_second=parse_price(row["vcpu_second"], f"tiers.{tier}.vcpu_second"),
                gib_second=parse_price(row["gib_second"], f"tiers.{tier}.gib_second"),
                currency=str(row["currency"]),
                read=read.isoformat() if isinstance(read, date) else str(read),
                source=str(row.get("source", "")),
                regions=frozenset(regions),
            )
        )
    return rows


def load_prices(
    prices: Mapping[str, Any] | str | os.PathLike[str] | None,
) -> tuple[list[PriceRow], str]:
    """Return the price rows and where they came from.

    Raises:
        ConfigError: the file cannot be read or parsed, or the table is malformed.
    """
    document, origin = load_price_document(
        prices, package="jobrelay_cloudrun", resource="prices.toml"
    )
    return _rows(document), origin


def price_for(rows: list[PriceRow], region: str) -> PriceRow:
    """Return the row for ``region``.

    Raises:
        ConfigError: no row lists the region.
    """
    for row in rows:
        if region in row.regions:
            return row
    raise ConfigError(f"prices: no Cloud Run price for region {region!r}")


def estimate(row: PriceRow, origin: str, cpu: int, memory_mb: int, seconds: float) -> Cost:
    """Return the :class:`~jobrelay.Cost` of ``seconds`` at ``cpu``/``memory_mb``."""
    amount, rate = row.cost(cpu, memory_mb, seconds)
    return Cost(amount, row.currency, rate, row.describe(origin))
