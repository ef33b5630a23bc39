"""Busy executors make jobs wait; ``overflow = "fallback"`` lets them move on.

Also: ``route()`` and ``launch()`` walk one candidate sequence, so a preview always
names the executor a launch would pick.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobrelay import (
    Capabilities,
    ConfigError,
    Hooks,
    JobSpec,
    JobState,
    ManualClock,
    NoExecutorAvailableError,
    Resources,
    RetryPolicy,
    Router,
    Runner,
)
from jobrelay_mock import MockExecutor

FAST_RETRY = RetryPolicy(attempts=2, initial=0, maximum=0, jitter=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


def mocks(clock: ManualClock, *names: str) -> dict[str, MockExecutor]:
    return {name: MockExecutor(name=name, clock=clock) for name in names}


def router_of(executors: dict[str, Any], clock: ManualClock, **settings: Any) -> Router:
    return Router(
        executors,
        clock=clock,
        retry=FAST_RETRY,
        hooks=Hooks(load_entry_points=False),
        **settings,
    )


def job(name: str = "web", **fields: Any) -> JobSpec:
    return JobSpec("busybox", "true", name=name, **fields)


def test_a_busy_candidate_makes_the_job_wait_not_fall_through(clock: ManualClock) -> None:
    found = mocks(clock, "docker", "mock")
    router = router_of(
        {"docker": {"instance": found["docker"], "max_concurrent": 1}, "mock": found["mock"]},
        clock,
        default="docker",
        fallback=["mock"],
    )
    router.launch(job("a"))
    for attempt in (router.route, router.launch):
        with pytest.raises(NoExecutorAvailableError) as caught:
            attempt(job("b"))
        assert caught.value.capacity_only is True
        assert caught.value.retry_after == 0.0
        assert caught.value.skipped == (("docker", "at capacity (1/1 running)"),)
    assert found["mock"].calls("launch") == []
    assert found["mock"].calls("health") == []  # never even looked at


def test_overflow_fallback_moves_on_to_the_next_candidate(clock: ManualClock) -> None:
    found = mocks(clock, "docker", "mock")
    docker = {"instance": found["docker"], "max_concurrent": 1, "overflow": "fallback"}
    router = router_of(
        {"docker": docker, "mock": found["mock"]}, clock, default="docker", fallback=["mock"]
    )
    assert router.launch(job("a")).executor == "docker"
    second = router.launch(job("b"))
    assert second.executor == "mock"
    assert second.metadata["jobrelay.route"]["reason"] == "fallback"


def test_a_busy_preferred_executor_makes_the_job_wait(clock: ManualClock) -> None:
    found = mocks(clock, "docker", "gpu")
    router = router_of(
        {"docker": found["docker"], "gpu": {"instance": found["gpu"], "max_concurrent": 1}},
        clock,
        default="docker",
    )
    router.launch(job(preferred_executor="gpu"))
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(job(preferred_executor="gpu"))
    assert caught.value.capacity_only is True


def test_overflow_is_checked_at_load(clock: ManualClock) -> None:
    executor = MockExecutor(name="docker", clock=clock)
    with pytest.raises(ConfigError, match=r"executors\['docker'\]\.overflow: must be 'wait' or"):
        Router({"docker": {"instance": executor, "overflow": "spill"}})
    with pytest.raises(ConfigError, match=r"executors\['mock'\]\.overflow"):
        Router.from_config({"executors": {"mock": {"overflow": 1}}})


def test_runner_keeps_busy_jobs_for_their_executor() -> None:
    # docker at max_concurrent=1 with a fallback: every job still runs on docker.
    docker = MockExecutor(name="docker")
    spare = MockExecutor(name="mock")
    router = Router(
        {"docker": {"instance": docker, "max_concurrent": 1}, "mock": spare},
        default="docker",
        fallback=["mock"],
        hooks=Hooks(load_entry_points=False),
    )
    with Runner(router, max_workers=4, poll_interval=0.01) as runner:
        results = runner.run([job(f"j{i}", labels={"mock.duration": "0.05"}) for i in range(5)])
    assert [result.state for result in results] == [JobState.SUCCEEDED] * 5
    assert {result.execution.executor for result in results} == {"docker"}
    assert spare.calls("launch") == []


# -- one candidate path ------------------------------------------------------------

NAMES = ("docker", "cloudrun", "fargate", "mock")
RULES = [
    {"condition": "memory_mb > 8192", "executor": "fargate"},
    {"condition": 'name.startswith("batch-")', "executor": ["cloudrun", "fargate"]},
    {"condition": "gpu > 0", "executor": "mock"},
]


class SmallMock(MockExecutor):
    """A backend that takes only small jobs."""

    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities(), max_memory_mb=4096, max_gpu=0)


STATES = st.sampled_from(["ok", "disabled", "unhealthy", "full", "full-overflow", "small"])


@settings(max_examples=60, deadline=None)
@given(
    states=st.fixed_dictionaries(dict.fromkeys(NAMES, STATES)),
    name=st.sampled_from(["web", "batch-x"]),
    memory=st.sampled_from([512, 16384]),
    gpu=st.sampled_from([0, 1]),
    preferred=st.sampled_from([None, *NAMES, "unknown"]),
)
def test_route_names_what_launch_picks(
    states: dict[str, str], name: str, memory: int, gpu: int, preferred: str | None
) -> None:
    clock = ManualClock(now=1_700_000_000.0)
    executors: dict[str, Any] = {}
    for executor, state in states.items():
        kind = SmallMock if state == "small" else MockExecutor
        mock = kind(name=executor, clock=clock, healthy=state != "unhealthy")
        entry: dict[str, Any] = {"instance": mock, "enabled": state != "disabled"}
        if state.startswith("full"):
            entry["max_concurrent"] = 1
            entry["overflow"] = "fallback" if state == "full-overflow" else "wait"
        executors[executor] = entry
    router = router_of(executors, clock, rules=RULES, default="docker", fallback=["mock"])
    for executor, state in states.items():
        if state.startswith("full"):  # take its only slot with a job only it takes
            router.launch(job("filler", preferred_executor=executor))
    spec = job(name, resources=Resources(memory=memory, gpu=gpu), preferred_executor=preferred)
    routed: NoExecutorAvailableError | None = None
    try:
        decision = router.route(spec)
    except NoExecutorAvailableError as exc:
        routed = exc
    if routed is not None:
        with pytest.raises(NoExecutorAvailableError) as launched:
            router.launch(spec)
        assert launched.value.skipped == routed.skipped
        assert launched.value.capacity_only == routed.capacity_only
        assert launched.value.retry_after == routed.retry_after
        return
    execution = router.launch(spec)
    assert execution.executor == decision.executor
    route = execution.metadata["jobrelay.route"]
    assert (route["reason"], route["skipped"]) == (decision.reason, decision.skipped)
