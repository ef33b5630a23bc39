"""Cost-aware routing: ``prefer="cheapest"``, estimates on candidates, ``cost`` in rules."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrelay import (
    ConfigError,
    Cost,
    Hooks,
    JobSpec,
    ManualClock,
    NoExecutorAvailableError,
    RetryPolicy,
    Router,
    RoutingRule,
)
from jobrelay_mock import MockExecutor

FAST_RETRY = RetryPolicy(attempts=2, initial=0, maximum=0, jitter=0)


class PricedMock(MockExecutor):
    """A mock that prices jobs at a fixed hourly rate (or not at all: ``rate=None``)."""

    def __init__(
        self, name: str, rate: str | None, *, currency: str = "USD", **kwargs: Any
    ) -> None:
        super().__init__(name, **kwargs)
        self.rate = None if rate is None else Decimal(rate)
        self.currency = currency
        self.priced: list[float] = []
        self.broken = False

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost | None:  # type: ignore[override]
        self.priced.append(duration_seconds)
        if self.broken:
            raise RuntimeError("price table unreadable")
        if self.rate is None:
            return None
        hours = Decimal(str(duration_seconds)) / 3600
        return Cost(self.rate * hours, self.currency, self.rate, "test prices")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


@pytest.fixture
def priced(clock: ManualClock) -> dict[str, PricedMock]:
    rates = {"docker": "0", "fargate": "0.09", "cloudrun": "0.04", "scaleway": "0.06"}
    return {name: PricedMock(name, rate, clock=clock) for name, rate in rates.items()}


def make(executors: dict[str, Any], clock: ManualClock, **settings: Any) -> Router:
    return Router(
        executors,
        clock=clock,
        retry=FAST_RETRY,
        hooks=Hooks(load_entry_points=False),
        **settings,
    )


BOTH = [RoutingRule("True", "fargate", "any"), RoutingRule("True", "cloudrun", "any too")]


def job(**fields: Any) -> JobSpec:
    return JobSpec("busybox", "true", name="etl", **fields)


def test_first_keeps_rule_order_cheapest_takes_the_cheapest_matching_rule(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    first = make(dict(priced), clock, rules=BOTH, default="docker")
    assert first.route(job()).executor == "fargate"
    cheapest = make(dict(priced), clock, rules=BOTH, default="docker", prefer="cheapest")
    decision = cheapest.route(job())
    # The default (docker, free) is not among the rules' executors: rules still decide.
    assert (decision.executor, decision.reason) == ("cloudrun", "any too")
    assert [(c.executor, c.available) for c in decision.candidates] == [("cloudrun", True)]
    chosen = decision.candidates[0].cost
    assert chosen is not None
    assert chosen.rate_per_hour == Decimal("0.04")
    assert priced["cloudrun"].priced == [3600]  # priced for one hour
    assert priced["scaleway"].priced == []  # not a candidate: never priced


def test_cheapest_skips_an_unhealthy_or_full_candidate(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    priced["cloudrun"].healthy = False
    router = make(dict(priced), clock, rules=BOTH, prefer="cheapest")
    decision = router.route(job())
    assert decision.executor == "fargate"
    assert decision.skipped == (("cloudrun", "unhealthy: mock set unhealthy"),)
    assert [(c.executor, c.available, c.why) for c in decision.candidates] == [
        ("cloudrun", False, "unhealthy: mock set unhealthy"),
        ("fargate", True, ""),
    ]
    priced["cloudrun"].healthy = True
    full = {"instance": priced["cloudrun"], "max_concurrent": 1, "overflow": "fallback"}
    router = make({**priced, "cloudrun": full}, clock, rules=BOTH, prefer="cheapest")
    assert router.launch(job()).executor == "cloudrun"
    assert router.launch(job()).executor == "fargate"  # cloudrun is full and overflows
    waiting = {"instance": priced["cloudrun"], "max_concurrent": 1}
    router = make({**priced, "cloudrun": waiting}, clock, rules=BOTH, prefer="cheapest")
    router.launch(job())
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(job())  # full without overflow: the job waits for the cheapest
    assert caught.value.capacity_only is True


def test_a_rule_with_a_list_orders_it_by_its_own_prefer(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    listed = {"condition": "True", "executor": ["fargate", "scaleway", "cloudrun"]}
    router = make(dict(priced), clock, rules=[listed])
    assert router.route(job()).executor == "fargate"
    assert priced["fargate"].priced == []  # "first" prices nothing
    router = make(dict(priced), clock, rules=[{**listed, "prefer": "cheapest"}])
    cheapest = router.route(job())
    assert cheapest.executor == "cloudrun"
    assert cheapest.candidates[0].cost == Cost(
        Decimal("0.04"), "USD", Decimal("0.04"), "test prices"
    )
    priced["cloudrun"].healthy = False
    decision = make(dict(priced), clock, rules=[{**listed, "prefer": "cheapest"}]).route(job())
    assert decision.executor == "scaleway"
    assert decision.rule is not None
    assert decision.rule.executors == ("fargate", "scaleway", "cloudrun")


def test_unpriced_candidates_come_last_in_their_order(clock: ManualClock) -> None:
    executors = {
        "free": PricedMock("free", None, clock=clock),
        "plain": PricedMock("plain", None, clock=clock),
        "paid": PricedMock("paid", "1.5", clock=clock),
    }
    rule = RoutingRule("True", ["free", "plain", "paid"], prefer="cheapest")
    router = make(executors, clock, rules=[rule])
    decision = router.route(job(), explain=True)
    assert [(c.executor, c.cost is not None) for c in decision.candidates] == [
        ("paid", True),
        ("free", False),
        ("plain", False),
    ]


def test_the_fallback_list_is_ordered_by_cost_under_cheapest(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    priced["docker"].healthy = False
    settings: dict[str, Any] = {"default": "docker", "fallback": ["fargate", "cloudrun"]}
    assert make(dict(priced), clock, **settings).route(job()).executor == "fargate"
    router = make(dict(priced), clock, prefer="cheapest", **settings)
    assert router.route(job()).executor == "cloudrun"


def test_conditions_read_hourly_rates_by_executor_name(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    rules = [
        {"condition": 'cost["cloudrun"] < 0.05', "executor": "cloudrun", "reason": "cheap"},
        {"condition": "cost.fargate <= cost['scaleway'] * 2", "executor": "fargate"},
    ]
    router = make(dict(priced), clock, rules=rules, default="docker")
    assert router.route(job()).reason == "cheap"
    priced["cloudrun"].rate = Decimal("0.051")
    assert router.route(job()).executor == "fargate"  # 0.09 <= 0.12
    priced["scaleway"].rate = Decimal("0.01")
    assert router.route(job()).executor == "docker"
    assert priced["docker"].priced == [3600]  # the candidate looked at carries its estimate
    assert router.route(job()).candidates[0].cost == Cost(0, "USD", 0, "test prices")


def test_a_rate_nobody_can_give_makes_the_rule_unevaluable(clock: ManualClock) -> None:
    executors = {
        "plain": PricedMock("plain", None, clock=clock),
        "other": PricedMock("other", "1", clock=clock),
    }
    rules = [{"condition": 'cost["plain"] < 1', "executor": "other"}]
    decision = make(executors, clock, rules=rules, default="plain").route(job())
    assert decision.executor == "plain"
    ((name, why),) = decision.skipped
    assert name == "other"
    assert "no key 'plain'" in why


def test_cost_is_read_only_in_conditions(priced: dict[str, PricedMock], clock: ManualClock) -> None:
    rules = [{"condition": "len(cost) == 4 and 'docker' in cost", "executor": "fargate"}]
    router = make(dict(priced), clock, rules=rules, default="docker")
    assert router.route(job()).executor == "fargate"
    with pytest.raises(ConfigError, match="may be called"):
        make(dict(priced), clock, rules=[{"condition": "cost.pop('x')", "executor": "docker"}])


def test_an_estimator_that_raises_is_unpriced_and_logged(
    priced: dict[str, PricedMock], clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    priced["cloudrun"].broken = True
    router = make(dict(priced), clock, rules=BOTH, prefer="cheapest")
    with caplog.at_level(logging.WARNING, logger="jobrelay.router"):
        decision = router.route(job())
    assert decision.executor == "fargate"  # priced beats unpriced
    assert "estimate_cost() of 'cloudrun' raised RuntimeError" in caplog.text


def test_explain_lists_every_candidate_with_its_estimate(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    priced["scaleway"].healthy = False
    router = make(
        dict(priced), clock, rules=BOTH, default="docker", fallback=["scaleway", "cloudrun"]
    )
    plain = router.route(job())
    explained = router.route(job(), explain=True)
    assert plain.executor == explained.executor == "fargate"
    assert [c.executor for c in plain.candidates] == ["fargate"]
    rows = [
        (c.executor, c.available, c.why, c.cost.rate_per_hour if c.cost else None)
        for c in explained.candidates
    ]
    assert rows == [
        ("fargate", True, "", Decimal("0.09")),
        ("cloudrun", True, "", Decimal("0.04")),
        ("docker", True, "", Decimal("0")),
        ("scaleway", False, "unhealthy: mock set unhealthy", Decimal("0.06")),
    ]
    assert explained.to_dict()["candidates"][0] == ("fargate", True, "", "0.09 USD/h")


def test_launch_records_the_estimates_in_the_route(
    priced: dict[str, PricedMock], clock: ManualClock
) -> None:
    router = make(dict(priced), clock, rules=BOTH, prefer="cheapest")
    execution = router.launch(job())
    assert execution.executor == "cloudrun"
    assert execution.metadata["jobrelay.route"]["candidates"] == (
        ("cloudrun", True, "", "0.04 USD/h"),
    )


def test_mixed_currencies_are_compared_with_a_warning(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    executors = {
        "eu": PricedMock("eu", "0.03", currency="EUR", clock=clock),
        "us": PricedMock("us", "0.05", clock=clock),
    }
    router = make(executors, clock, rules=[RoutingRule("True", ["us", "eu"])], prefer="cheapest")
    with caplog.at_level(logging.WARNING, logger="jobrelay.router"):
        assert router.route(job()).executor == "eu"
    assert "EUR, USD as if they were one currency" in caplog.text


def test_prefer_is_checked(priced: dict[str, PricedMock], clock: ManualClock) -> None:
    with pytest.raises(ConfigError, match="prefer must be 'first' or 'cheapest', got 'cheap'"):
        make(dict(priced), clock, prefer="cheap")
    with pytest.raises(ConfigError, match=r"rules\[0\]\.prefer must be 'first' or 'cheapest'"):
        make(dict(priced), clock, rules=[{"condition": "1", "executor": "docker", "prefer": 2}])
    router = Router.from_config(
        {
            "executors": {"mock": {}, "spare": {"type": "mock"}},
            "rules": [{"condition": "True", "executor": ["mock", "spare"], "prefer": "first"}],
            "prefer": "cheapest",
        },
        clock=clock,
    )
    assert router.prefer == "cheapest"
    assert router.rules[0].executors == ("mock", "spare")
    router.close()


@pytest.mark.parametrize(
    ("executor", "message"),
    [
        ([], "executor must be a non-empty string or a list of them"),
        (["fargate", ""], "executor must be a non-empty string or a list of them"),
        (["fargate", "fargate"], "executor names an executor twice"),
        (["fargate", "gpu"], r"rules\[0\]\.executor: 'gpu' is not configured"),
    ],
)
def test_rule_executor_lists_are_checked(
    priced: dict[str, PricedMock], clock: ManualClock, executor: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make(dict(priced), clock, rules=[{"condition": "True", "executor": executor}])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.decimals(0, 5, places=3)),  # hourly rate, or unpriced
            st.booleans(),  # healthy
            st.booleans(),  # enabled
        ),
        min_size=1,
        max_size=5,
    )
)
def test_cheapest_picks_the_cheapest_available_candidate(
    rows: list[tuple[Decimal | None, bool, bool]],
) -> None:
    clock = ManualClock(now=1_700_000_000.0)
    names = [f"e{i}" for i in range(len(rows))]
    executors: dict[str, Any] = {
        name: {
            "instance": PricedMock(
                name, None if rate is None else str(rate), healthy=healthy, clock=clock
            ),
            "enabled": enabled,
        }
        for name, (rate, healthy, enabled) in zip(names, rows, strict=True)
    }
    router = make(executors, clock, rules=[RoutingRule("True", names, prefer="cheapest")])
    available = [
        (rate is None, rate or 0, index)
        for index, (rate, healthy, enabled) in enumerate(rows)
        if healthy and enabled
    ]
    if not available:
        with pytest.raises(NoExecutorAvailableError):
            router.route(job())
        return
    expected = names[min(available)[2]]
    assert router.route(job()).executor == expected
    assert router.launch(job()).executor == expected
