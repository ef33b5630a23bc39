"""Cost: the shipped dated table, overrides, and estimates computed by hand."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import MakeExecutor
from fake_scaleway import FakeScaleway
from jobrelay import ConfigError, CostEstimator, JobSpec
from jobrelay_scaleway import ScalewayExecutor
from jobrelay_scaleway._plan import size_for
from jobrelay_scaleway._prices import load_prices


def test_one_vcpu_two_gib_ten_minutes(executor: ScalewayExecutor) -> None:
    cost = executor.estimate_cost(JobSpec("busybox", resources={"cpu": 1, "memory": "2Gi"}), 600)
    assert cost is not None
    # 1 vCPU x 0.0000100 + 2 GB x 0.0000010 = 0.0000120 EUR a second.
    assert cost.amount == Decimal("0.0072")
    assert cost.rate_per_hour == Decimal("0.0432")
    assert cost.currency == "EUR"
    assert "2026-12-01" in cost.source
    assert "scaleway.com" in cost.source


def test_rounded_size_and_whole_seconds_are_priced(executor: ScalewayExecutor) -> None:
    cost = executor.estimate_cost(JobSpec("busybox", resources={"cpu": 0.01, "memory": 100}), 61.2)
    assert cost is not None
    # Billed as 70 mvCPU and 128 MiB, for 62 s: (0.07 x 0.00001 + 0.125 x 0.000001) x 62.
    assert cost.amount == (Decimal("0.07") * Decimal("0.00001") + Decimal("0.000000125")) * 62
    assert isinstance(cost.amount, Decimal)


def test_jobs_that_cannot_run_have_no_price(executor: ScalewayExecutor) -> None:
    assert executor.estimate_cost(JobSpec("busybox", resources={"cpu": 8}), 60) is None
    assert executor.estimate_cost(JobSpec("busybox", resources={"gpu": 1}), 60) is None
    assert isinstance(executor, CostEstimator)
    assert executor.capabilities().cost_estimate


def test_prices_override_mapping_and_file(make_executor: MakeExecutor, tmp_path: Path) -> None:
    mapping = {
        "currency": "EUR",
        "granularity_seconds": 60,
        "minimum_seconds": 60,
        "regions": {"nl-ams": {"vcpu_second": "0.001", "gb_second": "0"}},
    }
    executor = make_executor(region="nl-ams", prices=mapping)
    cost = executor.estimate_cost(JobSpec("busybox", resources={"cpu": 2}), 61)
    assert cost is not None
    assert cost.amount == Decimal("0.240")  # 2 vCPU x 0.001 x 120 s (whole minutes)
    assert cost.source == "configured prices"
    path = tmp_path / "prices.toml"
    path.write_text(
        'currency = "USD"\nread_on = "2027-01-01"\n'
        '[regions.pl-waw]\nvcpu_second = "0.5"\ngb_second = "0.25"\n',
        encoding="utf-8",
    )
    from_file = make_executor(region="pl-waw", prices=path)
    cost = from_file.estimate_cost(JobSpec("busybox", resources={"cpu": 1, "memory": 1024}), 2)
    assert cost is not None
    assert (cost.amount, cost.currency) == (Decimal("1.50"), "USD")
    assert str(path) in cost.source


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("currency = [", "not valid TOML"),
        ('currency = "EUR"\n[regions.nl-ams]\nvcpu_second = "1"\ngb_second = "1"\n', "fr-par"),
        ('currency = "EUR"\n[regions.fr-par]\nvcpu_second = 0.1\ngb_second = "1"\n', "float"),
        ('currency = "EUR"\n[regions.fr-par]\nvcpu_second = "-1"\ngb_second = "1"\n', "price"),
        ('currency = "euro"\n[regions.fr-par]\n', "currency"),
    ],
)
def test_bad_price_files(
    make_executor: MakeExecutor, fake: FakeScaleway, tmp_path: Path, content: str, match: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as caught:
        make_executor(prices=path)
    assert str(caught.value).startswith("prices:")
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        make_executor(prices=tmp_path / "missing.toml")
    assert sum(fake.calls.values()) == 0


def test_shipped_table_covers_every_region() -> None:
    for region in ("fr-par", "nl-ams", "pl-waw"):
        table = load_prices(None, region)
        assert table.currency == "EUR"
        assert table.granularity_seconds == 1
        assert table.minimum_seconds == 0


def test_harvest_fills_the_cost_of_the_run(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = executor.launch(JobSpec("busybox", "true", resources={"cpu": 2, "memory": "4Gi"}))
    run = fake.run(execution.execution_id)
    run["started_at"] = "2026-12-01T10:00:00Z"
    fake.finish(execution.execution_id, 0)
    run["terminated_at"] = "2026-12-01T10:01:40Z"
    result = executor.harvest(execution)
    assert result.duration == 100
    assert result.cost is not None
    # (2 x 0.00001 + 4 x 0.000001) x 100 s
    assert result.cost.amount == Decimal("0.0024")


@settings(max_examples=60, deadline=None)
@given(
    cpu=st.floats(0.01, 5.9),
    memory=st.integers(1, 16_000),
    seconds=st.floats(0, 86_400),
    more=st.floats(0, 0.1),
)
def test_cost_is_monotonic(cpu: float, memory: int, seconds: float, more: float) -> None:
    table = load_prices(None, "fr-par")
    small, bigger_cpu, bigger_memory = (
        size_for(cpu, memory),
        size_for(cpu + more, memory),
        size_for(cpu, min(memory + 64, 16_384)),
    )
    assert small is not None
    assert bigger_cpu is not None
    assert bigger_memory is not None
    base = table.estimate(small, seconds).amount
    assert table.estimate(bigger_cpu, seconds).amount >= base
    assert table.estimate(bigger_memory, seconds).amount >= base
    assert table.estimate(small, seconds + 1).amount >= base
