"""Cost: the shipped price table, estimates against hand-computed figures, overrides."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fargate_fakes import MakeExecutor, MotoFargate
from jobrelay import ConfigError, Cost, CostEstimator, JobSpec
from jobrelay_fargate import FargateExecutor
from jobrelay_fargate._pricing import PriceTable, billed_seconds


def _job(cpu: float, memory: int | str, **fields: Any) -> JobSpec:
    return JobSpec("busybox:1.36", ["true"], resources={"cpu": cpu, "memory": memory}, **fields)


def _make(**options: Any) -> FargateExecutor:
    options.setdefault("region", "us-east-1")
    return FargateExecutor("jobs", ["subnet-1"], [], **options)


@pytest.fixture(scope="module")
def fargate() -> Iterator[FargateExecutor]:
    with _make() as executor:
        yield executor


def _amount(cost: Cost | None) -> Decimal:
    assert cost is not None, "expected a price, got None"
    return cost.amount


# -- the table ------------------------------------------------------------------------


def test_the_shipped_table_is_dated_sourced_and_in_usd() -> None:
    table = PriceTable.load(None)
    assert table.rows, "the table is empty"
    for row in table.rows:
        assert row.currency == "USD"
        assert row.read == "2026-12-01"
        assert row.source.startswith("https://aws.amazon.com/fargate/pricing/")
        assert row.vcpu_hour > row.gb_hour > 0
    kinds = {(r.region, r.capacity_provider, r.cpu_architecture) for r in table.rows}
    assert {
        ("us-east-1", "FARGATE", "X86_64"),
        ("us-east-1", "FARGATE", "ARM64"),
        ("us-east-1", "FARGATE_SPOT", "X86_64"),
        ("us-east-1", "FARGATE_SPOT", "ARM64"),
        ("eu-west-1", "FARGATE", "X86_64"),
    } <= kinds


def test_capabilities_announce_cost_and_no_platform_retries(fargate: FargateExecutor) -> None:
    capabilities = fargate.capabilities()
    assert capabilities.cost_estimate
    assert not capabilities.platform_retries
    assert isinstance(fargate, CostEstimator)


# -- hand-computed estimates -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "seconds", "expected", "rate"),
    [
        # 1 vCPU x 0.04048 + 2 GB x 0.004445 = 0.04937 an hour; 600 s of it
        (1, "2Gi", 600, "0.0082283333", "0.04937"),
        # 0.3 vCPU / 1500 MiB rounds up to 0.5 vCPU / 2 GB: 0.02024 + 0.00889
        (0.3, 1500, 3600, "0.02913", "0.02913"),
        # 0.25 vCPU / 512 MiB for 1 s bills the one-minute minimum: 0.0123425 / 60
        (0.25, 512, 1, "0.0002057083", "0.0123425"),
        (0.25, 512, 0, "0.0002057083", "0.0123425"),
        # 61.2 s bills 62 s: 0.04937 x 62 / 3600
        (1, 2048, 61.2, "0.0008502611", "0.04937"),
        # 4 vCPU, 9000 MiB rounds memory up to 9 GB: 0.16192 + 0.040005
        (4, 9000, 7200, "0.40385", "0.201925"),
    ],
)
def test_on_demand_x86_in_us_east_1(
    fargate: FargateExecutor,
    cpu: float,
    memory: int | str,
    seconds: float,
    expected: str,
    rate: str,
) -> None:
    cost = fargate.estimate_cost(_job(cpu, memory), seconds)
    assert cost is not None
    assert cost.amount == Decimal(expected)
    assert cost.rate_per_hour == Decimal(rate)
    assert cost.currency == "USD"
    assert "us-east-1 FARGATE X86_64" in cost.source
    assert "2026-12-01" in cost.source


def test_arm_and_spot_use_their_rows() -> None:
    job = _job(2, "4Gi")
    with _make(cpu_architecture="ARM64") as arm:
        # 2 x 0.03238 + 4 x 0.00356 = 0.079 an hour; half an hour
        assert _amount(arm.estimate_cost(job, 1800)) == Decimal("0.0395")
    with _make(capacity_provider="FARGATE_SPOT") as spot:
        # 2 x 0.012144 + 4 x 0.0013335 = 0.029622
        assert _amount(spot.estimate_cost(job, 3600)) == Decimal("0.029622")
    with _make(capacity_provider="FARGATE_SPOT", cpu_architecture="ARM64") as both:
        # 2 x 0.009714 + 4 x 0.001068 = 0.0237
        assert _amount(both.estimate_cost(job, 3600)) == Decimal("0.0237")


def test_another_region_has_its_own_row() -> None:
    with _make(region="eu-west-1") as ireland:
        cost = ireland.estimate_cost(_job(1, "2Gi"), 3600)
    assert cost is not None
    assert cost.amount == Decimal("0.04937")
    assert "eu-west-1" in cost.source


def test_what_cannot_be_priced_is_none(fargate: FargateExecutor) -> None:
    assert fargate.estimate_cost(_job(32, "256Gi"), 60) is None  # larger than Fargate
    gpu = JobSpec("busybox", resources={"cpu": 1, "memory": 2048, "gpu": 1})
    assert fargate.estimate_cost(gpu, 60) is None  # Fargate has no GPUs
    assert fargate.estimate_cost(_job(1, 2048), math.nan) is None
    assert fargate.estimate_cost(_job(1, 2048), math.inf) is None
    assert fargate.estimate_cost(_job(1, 2048), 1e300) is None
    assert fargate.estimate_cost(_job(1, 2048), -1) is None
    with _make(region="ap-south-1") as elsewhere:  # the shipped table has no row
        assert elsewhere.estimate_cost(_job(1, 2048), 60) is None


def test_billed_seconds() -> None:
    assert [billed_seconds(s) for s in (-5, 0, 59.9, 60, 60.01, 3600)] == [
        60,
        60,
        60,
        60,
        61,
        3600,
    ]


# -- prices= ----------------------------------------------------------------------------

_OWN = {
    "price": [
        {
            "region": "us-east-1",
            "capacity_provider": "FARGATE",
            "cpu_architecture": "X86_64",
            "vcpu_hour": "1",
            "gb_hour": "0.5",
            "currency": "EUR",
            "read": "2026-11-30",
            "source": "our contract",
        }
    ]
}


def test_prices_mapping_overrides_the_table() -> None:
    with _make(prices=_OWN) as executor:
        cost = executor.estimate_cost(_job(1, "2Gi"), 3600)
    assert cost is not None
    assert (cost.amount, cost.currency, cost.rate_per_hour) == (Decimal(2), "EUR", Decimal(2))
    assert "configured prices" in cost.source


def test_prices_file_overrides_the_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[price]]\nregion = "us-east-1"\nvcpu_hour = "0.1"\ngb_hour = "0.01"\n'
        'currency = "USD"\nread = 2026-11-30\nsource = "file"\n'
    )
    with _make(prices=str(path)) as executor:
        # 0.5 vCPU x 0.1 + 1 GB x 0.01 = 0.06 an hour; 10 minutes
        assert _amount(executor.estimate_cost(_job(0.5, "1Gi"), 600)) == Decimal("0.01")


@pytest.mark.parametrize(
    ("prices", "match"),
    [
        ("/nonexistent/prices.toml", "cannot read"),
        ({"price": "x"}, "list of rows"),
        ({"price": [{"region": "us-east-1", "vcpu_hour": 0.04, "gb_hour": "1"}]}, "vcpu_hour"),
        ({"price": [{"region": "us-east-1", "vcpu_hour": "-1", "gb_hour": "1"}]}, "not a price"),
        ({"price": [{"region": "us-east-1", "vcpu_hour": "x", "gb_hour": "1"}]}, "not a price"),
        ({"price": [{"vcpu_hour": "1", "gb_hour": "1"}]}, "region"),
        ({"price": [{**_OWN["price"][0], "capacity_provider": "EC2"}]}, "capacity_provider"),
        ({"price": [{**_OWN["price"][0], "region": "eu-west-3"}]}, "no row for region"),
        (42, "mapping or a path"),
    ],
)
def test_bad_prices_are_config_errors(prices: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=rf"^prices: .*{match}"):
        _make(prices=prices)


def test_prices_file_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text("[[price]\nregion = ")
    with pytest.raises(ConfigError, match=r"^prices: .*not valid TOML"):
        _make(prices=path)


# -- monotonic ------------------------------------------------------------------------------

_cpu = st.floats(min_value=0.05, max_value=16, allow_nan=False)
_memory = st.integers(min_value=1, max_value=122_880)
_seconds = st.floats(min_value=0, max_value=30 * 24 * 3600, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    cpu=st.tuples(_cpu, _cpu),
    memory=st.tuples(_memory, _memory),
    seconds=st.tuples(_seconds, _seconds),
)
def test_cost_is_monotonic_in_cpu_memory_and_duration(
    fargate: FargateExecutor,
    cpu: tuple[float, float],
    memory: tuple[int, int],
    seconds: tuple[float, float],
) -> None:
    low = fargate.estimate_cost(_job(min(cpu), min(memory)), min(seconds))
    high = fargate.estimate_cost(_job(max(cpu), max(memory)), max(seconds))
    if high is None:  # the larger job does not fit Fargate
        return
    assert low is not None
    assert low.amount <= high.amount
    assert low.rate_per_hour <= high.rate_per_hour
    # each dimension on its own, the others fixed
    base = _job(min(cpu), min(memory))
    assert _amount(fargate.estimate_cost(base, min(seconds))) <= _amount(
        fargate.estimate_cost(base, max(seconds))
    )
    more_cpu = fargate.estimate_cost(_job(max(cpu), min(memory)), min(seconds))
    more_memory = fargate.estimate_cost(_job(min(cpu), max(memory)), min(seconds))
    assert more_cpu is not None
    assert more_memory is not None
    assert low.amount <= more_cpu.amount
    assert low.amount <= more_memory.amount


# -- harvest ----------------------------------------------------------------------------------


def test_harvest_prices_the_run(make_executor: MakeExecutor, moto: MotoFargate) -> None:
    executor = make_executor()
    job = _job(1, "2Gi")
    execution = executor.launch(job)
    moto.set_status(execution.execution_id, "RUNNING")
    moto.finish(execution.execution_id, 0)
    result = executor.harvest(execution)
    assert result.duration is not None
    assert result.duration < 60
    assert result.cost == executor.estimate_cost(job, result.duration)
    # under a minute: the minimum, 0.04937 / 60
    assert _amount(result.cost) == Decimal("0.0008228333")


def test_a_reconciled_task_is_priced_from_its_description(
    make_executor: MakeExecutor, moto: MotoFargate
) -> None:
    executor = make_executor()
    execution = executor.launch(_job(1, "2Gi"))
    moto.finish(execution.execution_id, 0)
    (found,) = executor.list_managed()
    result = executor.harvest(found)
    assert (found.metadata["cpu_units"], found.metadata["memory_mb"]) == (1024, 2048)
    assert _amount(result.cost) == Decimal("0.0008228333")
