"""What every backend's price table needs: reading it, its amounts, billed durations.

Each backend ships a dated table as package data and lets ``prices=`` replace it with a
mapping of the same shape or a TOML file; the shape of the rows (regions, tiers,
capacity providers) is the backend's own. These helpers do the rest once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from importlib import resources
from typing import Any

from jobrelay.errors import ConfigError

__all__ = ["billed_seconds", "load_price_document", "parse_price"]


def parse_price(value: object, where: str) -> Decimal:
    """Return ``value`` (a string or int from a price table) as a ``Decimal`` amount.

    Raises:
        ConfigError: a float (prices are exact), not a number, negative or infinite;
            the message names ``where`` (e.g. ``"regions.fr-par.vcpu_second"``).
    """
    if isinstance(value, float):
        raise ConfigError(f"prices: {where} must be a string or an int, never a float")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ConfigError(f"prices: {where} is not a price: {value!r}")
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ConfigError(f"prices: {where} is not a price: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"prices: {where} is not a price: {value!r}")
    return amount


def load_price_document(
    prices: Mapping[str, Any] | str | os.PathLike[str] | None, *, package: str, resource: str
) -> tuple[Mapping[str, Any], str]:
    """Return the price table to use and where it came from.

    Args:
        prices: None for the shipped table, a mapping, or the path of a TOML file.
        package: the backend's import package, which ships the table.
        resource: the table's path inside ``package`` (``"data/prices.toml"``).

    Raises:
        ConfigError: the file cannot be read or parsed, or ``prices`` is of another type.
    """
    if prices is None:
        from jobrelay._config import _toml_loads  # noqa: PLC0415 - only when pricing

        text = resources.files(package).joinpath(resource).read_text("utf-8")
        return _toml_loads(text), f"{package}/{resource}"
    if isinstance(prices, Mapping):
        return prices, "configured prices"
    if isinstance(prices, (str, os.PathLike)):
        from jobrelay._config import load_toml  # noqa: PLC0415 - only when pricing

        try:
            document = load_toml(prices)
        except ConfigError as exc:
            raise ConfigError(f"prices: {exc}") from None
        if not isinstance(document, Mapping):
            raise ConfigError(f"prices: {os.fspath(prices)} is not a table")
        return document, os.fspath(prices)
    raise ConfigError(f"prices: a mapping or a TOML file path, got {type(prices).__name__}")


def billed_seconds(
    duration: float, *, granularity: Decimal = Decimal(1), minimum: Decimal = Decimal(0)
) -> Decimal:
    """Return ``duration`` as a backend bills it.

    Rounded up to a multiple of ``granularity``, and at least ``minimum``; a negative
    or NaN duration bills as zero (then the minimum).
    """
    seconds = float(duration)
    if math.isnan(seconds) or seconds < 0:
        seconds = 0.0
    if math.isinf(seconds):
        raise ValueError("an endless duration cannot be priced")
    steps = (Decimal(repr(seconds)) / granularity).to_integral_value(rounding=ROUND_CEILING)
    return max(steps * granularity, minimum)
