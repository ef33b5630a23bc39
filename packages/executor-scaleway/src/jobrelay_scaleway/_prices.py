"""The Serverless Jobs price table (package data ``prices.toml``) and estimates from it."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from jobrelay import ConfigError, Cost
from jobrelay.backend import billed_seconds, load_price_document, parse_price
from jobrelay_scaleway._plan import Size

__all__ = ["PriceTable", "load_prices"]

_MIB_PER_GB = Decimal(1024)


@attrs.frozen
class PriceTable:
    """Per-second prices of one region.

    Args:
        region: the region priced.
        currency: ISO 4217 code.
        vcpu_second: price of one vCPU for one second.
        gb_second: price of one GB (1024 MiB) of memory for one second.
        granularity_seconds: durations are rounded up to a multiple of this.
        minimum_seconds: shortest duration billed.
        source: where the prices came from and when they were read.
    """

    region: str
    currency: str
    vcpu_second: Decimal
    gb_second: Decimal
    granularity_seconds: int
    minimum_seconds: int
    source: str

    def per_second(self, size: Size) -> Decimal:
        """What one second of a run of ``size`` costs."""
        return size.vcpu * self.vcpu_second + Decimal(size.memory_mb) / _MIB_PER_GB * self.gb_second

    def billed_seconds(self, duration: float) -> Decimal:
        """``duration`` as billed: rounded up to the granularity, at least the minimum."""
        return billed_seconds(
            duration,
            granularity=Decimal(self.granularity_seconds),
            minimum=Decimal(self.minimum_seconds),
        )

    def estimate(self, size: Size, duration: float) -> Cost:
        """The cost of a run of ``size`` lasting ``duration`` seconds."""
        rate = self.per_second(size)
        return Cost(
            amount=rate * self.billed_seconds(duration),
            currency=self.currency,
            rate_per_hour=rate * 3600,
            source=self.source,
        )


def load_prices(prices: Mapping[str, Any] | str | Path | None, region: str) -> PriceTable:
    """Return the prices for ``region``: the shipped table, a mapping, or a TOML file.

    Raises:
        ConfigError: the file cannot be read or parsed, or lacks ``region``.
    """
    data, origin = load_price_document(prices, package="jobrelay_scaleway", resource="prices.toml")
    currency = data.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise ConfigError(f"prices: currency must be an ISO 4217 code, got {currency!r}")
    regions = data.get("regions")
    if not isinstance(regions, Mapping) or not isinstance(regions.get(region), Mapping):
        raise ConfigError(f"prices: no prices for region {region!r} in {origin}")
    row = regions[region]
    granularity = data.get("granularity_seconds", 1)
    minimum = data.get("minimum_seconds", 0)
    if not isinstance(granularity, int) or granularity < 1:
        raise ConfigError(f"prices: granularity_seconds must be an int of 1 or more in {origin}")
    if not isinstance(minimum, int) or minimum < 0:
        raise ConfigError(f"prices: minimum_seconds must be an int of 0 or more in {origin}")
    read_on = data.get("read_on", "")
    source = f"{origin} (read {read_on}; {data.get('source', '')})" if read_on else origin
    return PriceTable(
        region=region,
        currency=currency.upper(),
        vcpu_second=parse_price(row.get("vcpu_second"), f"regions.{region}.vcpu_second"),
        gb_second=parse_price(row.get("gb_second"), f"regions.{region}.gb_second"),
        granularity_seconds=granularity,
        minimum_seconds=minimum,
        source=source,
    )
