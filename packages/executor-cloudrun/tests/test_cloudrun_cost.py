"""Prices: the shipped table, estimates against hand-computed figures, overrides, errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import ConfigError, CostEstimator, JobSpec, Resources
from jobrelay.backend import duration_of
from jobrelay_cloudrun import CloudRunExecutor, fit
from jobrelay_cloudrun._prices import estimate, load_prices, price_for


def _job(cpu: float = 1, memory: str | int = "2Gi", gpu: int = 0) -> JobSpec:
    return JobSpec("busybox", "true", resources=Resources(cpu=cpu, memory=memory, gpu=gpu))


def test_the_reference_job_in_a_tier_1_region(executor: CloudRunExecutor) -> None:
    assert isinstance(executor, CostEstimator)
    cost = executor.estimate_cost(_job(1, "2Gi"), 600)
    assert cost is not None
    # (1 vCPU x $0.000018 + 2 GiB x $0.000002) per second x 600 s
    assert cost.amount == Decimal("0.0132")
    assert cost.rate_per_hour == Decimal("0.0792")
    assert cost.currency == "USD"
    assert "tier1" in cost.source
    assert "read 2026-12-01" in cost.source
    assert "https://cloud.google.com/run/pricing" in cost.source


def test_tier_2_region(make_executor: MakeExecutor) -> None:
    cost = make_executor(region="europe-west2").estimate_cost(_job(2, "4Gi"), 3600)
    assert cost is not None
    # (2 x $0.0000252 + 4 x $0.0000028) x 3600 s
    assert cost.amount == Decimal("0.22176")


def test_priced_at_the_rounded_size(executor: CloudRunExecutor) -> None:
    cost = executor.estimate_cost(_job(0.5, "600Mi"), 10)
    assert cost is not None
    # billed as 1 vCPU, 600 MiB: $0.000018 + 600/1024 x $0.000002 per second
    assert cost.amount == Decimal("0.000018") * 10 + Decimal("0.000002") * 600 / 1024 * 10
    bigger = executor.estimate_cost(_job(3, "1Gi"), 10)  # billed as 4 vCPU, 2 GiB
    assert bigger is not None
    assert bigger.amount == (4 * Decimal("0.000018") + 2 * Decimal("0.000002")) * 10


def test_billed_in_100_ms_steps_without_minimum(executor: CloudRunExecutor) -> None:
    per_tenth = (Decimal("0.000018") + 2 * Decimal("0.000002")) / 10
    for seconds, tenths in [(0, 0), (0.05, 1), (10, 100), (10.01, 101), (10.1, 101)]:
        cost = executor.estimate_cost(_job(1, "2Gi"), seconds)
        assert cost is not None
        assert cost.amount == per_tenth * tenths, seconds


def test_unpriceable_jobs(make_executor: MakeExecutor) -> None:
    executor = make_executor(gpu_type="nvidia-l4")
    assert executor.estimate_cost(_job(1, "1Gi", gpu=1), 60) is None  # no GPU prices
    assert executor.estimate_cost(_job(16, "1Gi"), 60) is None  # cannot run at all


def test_prices_override_by_mapping(make_executor: MakeExecutor) -> None:
    table = {
        "tiers": {
            "eu": {
                "vcpu_second": "0.00002",
                "gib_second": "0.000003",
                "currency": "EUR",
                "regions": ["europe-west1"],
                "read": "2026-11-30",
                "source": "contract",
            }
        }
    }
    cost = make_executor(prices=table).estimate_cost(_job(1, "1Gi"), 100)
    assert cost is not None
    assert (cost.amount, cost.currency) == (Decimal("0.0023"), "EUR")
    assert cost.source == "configured prices eu (read 2026-11-30, contract)"


def test_prices_override_by_file(make_executor: MakeExecutor, tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[tiers.mine]\nvcpu_second = "0.001"\ngib_second = "0"\ncurrency = "USD"\n'
        'regions = ["europe-west1"]\nread = 2026-12-01\nsource = "test"\n'
    )
    cost = make_executor(prices=str(path)).estimate_cost(_job(2, "1Gi"), 1)
    assert cost is not None
    assert cost.amount == Decimal("0.002")
    assert cost.source.startswith(str(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml at all [", "prices: {path}: not valid TOML"),
        ('[tiers.x]\nvcpu_second = "1"\n', "prices: tiers.x lacks currency, gib_second, regions"),
        (
            '[tiers.x]\nvcpu_second = 0.1\ngib_second = "0"\ncurrency = "USD"\nregions = []\n',
            "prices: tiers.x.vcpu_second must be a string or an int, never a float",
        ),
        (
            (
                '[tiers.x]\nvcpu_second = "1"\ngib_second = "0"\ncurrency = "USD"\n'
                'regions = ["us-central1"]\n'
            ),
            "prices: no Cloud Run price for region 'europe-west1'",
        ),
    ],
)
def test_bad_price_files_are_config_errors(
    make_executor: MakeExecutor, fake: FakeGCP, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        make_executor(prices=path)
    assert str(caught.value).startswith(message.format(path=path))
    assert fake.count() == 0


def test_missing_price_file_is_a_config_error(make_executor: MakeExecutor, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"prices: .*nope\.toml: cannot read"):
        make_executor(prices=tmp_path / "nope.toml")


def test_a_region_newer_than_the_shipped_table_runs_unpriced(make_executor: MakeExecutor) -> None:
    executor = make_executor(region="mars-north1")
    assert executor.estimate_cost(_job(), 60) is None
    assert not executor.capabilities().cost_estimate


def test_harvest_prices_the_run(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = executor.launch(JobSpec("busybox", "true", resources={"cpu": 2, "memory": "3Gi"}))
    fake.finish(execution.execution_id, 0)
    result = executor.harvest(execution)
    assert result.cost is not None
    seconds = duration_of(result.status)
    assert seconds is not None
    expected = executor.estimate_cost(
        JobSpec("busybox", "true", resources={"cpu": 2, "memory": "3Gi"}), seconds
    )
    assert result.cost == expected


_sizes = st.tuples(
    st.floats(min_value=0.1, max_value=8.0), st.integers(min_value=128, max_value=32768)
)


@settings(max_examples=60, deadline=None)
@given(a=_sizes, b=_sizes, seconds=st.floats(min_value=0, max_value=7 * 24 * 3600))
def test_cost_is_monotonic_in_cpu_memory_and_duration(
    a: tuple[float, int], b: tuple[float, int], seconds: float
) -> None:
    rows, origin = load_prices(None)
    row = price_for(rows, "europe-west1")
    small = (min(a[0], b[0]), min(a[1], b[1]))
    large = (max(a[0], b[0]), max(a[1], b[1]))
    try:
        big = fit(Resources(cpu=large[0], memory=large[1]))
    except ValueError:
        return
    little = fit(Resources(cpu=small[0], memory=small[1]))
    cheap = estimate(row, origin, little.cpu, little.memory_mb, seconds)
    dear = estimate(row, origin, big.cpu, big.memory_mb, seconds)
    longer = estimate(row, origin, big.cpu, big.memory_mb, seconds + 1)
    assert cheap.amount <= dear.amount <= longer.amount
    assert cheap.rate_per_hour <= dear.rate_per_hour
