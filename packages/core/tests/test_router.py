"""The Router: the Django rule table, availability, capacity, fallback, config, logging."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

import jobrelay
from jobrelay import (
    Capabilities,
    ConfigError,
    Execution,
    ExecutorNotFoundError,
    Health,
    Hooks,
    JobSpec,
    LaunchError,
    ManualClock,
    NoExecutorAvailableError,
    Resources,
    RetryPolicy,
    RouteDecision,
    Router,
    RoutingRule,
    RuleError,
    TransientExecutorError,
    hookimpl,
    register_executor,
)
from jobrelay_mock import MockExecutor, MockOutcome

NAMES = ("docker", "cloudrun", "fargate", "mock")
DJANGO_RULES = [
    {"condition": "memory_mb > 8192", "executor": "fargate", "reason": "large memory"},
    {"condition": "cpu_cores > 4.0", "executor": "fargate", "reason": "many cores"},
    {"condition": "timeout_seconds > 3600", "executor": "cloudrun", "reason": "long job"},
    {"condition": 'template.name.startswith("ml-")', "executor": "fargate", "reason": "ml"},
    {"condition": 'template.name.startswith("batch-")', "executor": "cloudrun", "reason": "batch"},
    {"condition": 'user and "premium" in user.groups', "executor": "cloudrun", "reason": "premium"},
    {"condition": 'name.startswith("test-")', "executor": "mock", "reason": "tests"},
]
FAST_RETRY = RetryPolicy(attempts=3, initial=0, maximum=0, jitter=0)


class Recorder:
    """Hook implementation that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def job_routed(self, job: JobSpec, decision: RouteDecision) -> None:
        self.calls.append(("job_routed", {"job": job, "decision": decision}))

    @hookimpl
    def launch_failed(self, job: JobSpec, executor: str, error: Exception) -> None:
        self.calls.append(("launch_failed", {"job": job, "executor": executor, "error": error}))

    def named(self, hook: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == hook]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


@pytest.fixture
def mocks(clock: ManualClock) -> dict[str, MockExecutor]:
    return {name: MockExecutor(name=name, clock=clock) for name in NAMES}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_router(
    mocks: dict[str, MockExecutor], clock: ManualClock, recorder: Recorder
) -> Callable[..., Router]:
    def make(**overrides: Any) -> Router:
        hooks = Hooks(load_entry_points=False)
        hooks.register(recorder)
        settings: dict[str, Any] = {
            "executors": dict(mocks),
            "rules": DJANGO_RULES,
            "default": "docker",
            "clock": clock,
            "retry": FAST_RETRY,
            "hooks": hooks,
        }
        settings.update(overrides)
        return Router(**settings)

    return make


@pytest.fixture
def router(make_router: Callable[..., Router]) -> Router:
    return make_router()


def job(name: str = "web-app", **fields: Any) -> JobSpec:
    return JobSpec("busybox", "true", name=name, **fields)


# -- the Django manager's default rule table ---------------------------------------

PREMIUM = SimpleNamespace(groups=["premium"])
BASIC = SimpleNamespace(groups=["staff"])


@pytest.mark.parametrize(
    ("spec", "context", "executor", "reason"),
    [
        (job(resources=Resources(memory="16Gi")), None, "fargate", "large memory"),
        (job(resources=Resources(memory=8193)), None, "fargate", "large memory"),
        (job(resources=Resources(memory=8192)), None, "docker", "default"),
        (job(resources=Resources(cpu=4.5)), None, "fargate", "many cores"),
        (job(resources=Resources(cpu=4.0)), None, "docker", "default"),
        (job(timeout=7200), None, "cloudrun", "long job"),
        (job(timeout=3600), None, "docker", "default"),
        (job("ml-train"), None, "fargate", "ml"),
        (job("batch-nightly"), None, "cloudrun", "batch"),
        (job("report"), {"user": PREMIUM}, "cloudrun", "premium"),
        (job("report"), {"user": BASIC}, "docker", "default"),
        (job("report"), {"user": None}, "docker", "default"),
        (job("test-smoke"), None, "mock", "tests"),
        (job("web-app"), None, "docker", "default"),
        (job("ml-train", resources=Resources(memory="16Gi"), timeout=9000), None, "fargate", "large memory"),
        (job("test-batch", timeout=7200), {"user": PREMIUM}, "cloudrun", "long job"),
    ],
)  # fmt: skip
def test_django_default_rule_table(
    router: Router, spec: JobSpec, context: dict[str, Any] | None, executor: str, reason: str
) -> None:
    decision = router.route(spec, context)
    assert (decision.executor, decision.reason) == (executor, reason)
    assert decision.skipped == ()
    assert (decision.rule is None) == (reason == "default")


@pytest.mark.usefixtures("registry_state")
def test_django_table_from_config_with_backends_registered_by_name(clock: ManualClock) -> None:
    for name in ("docker", "cloudrun", "fargate"):
        register_executor(name, MockExecutor, replace=True)
    router = Router.from_config(
        {
            # "type" defaults to the entry's name: each entry is its own backend here.
            "executors": {name: {"enabled": True} for name in NAMES},
            "rules": DJANGO_RULES,
            "default": "docker",
        },
        clock=clock,
    )
    with router:
        assert router.route(job("batch-x")).executor == "cloudrun"
        assert router.route(job("x", resources=Resources(memory="9Gi"))).executor == "fargate"
        assert router.route(job("test-1")).executor == "mock"
        assert router.route(job("plain")).executor == "docker"
        assert isinstance(router.executor("cloudrun"), MockExecutor)
        assert router.executor("cloudrun").name == "cloudrun"


# -- preferred executor and availability --------------------------------------------


def test_preferred_executor_wins_when_available(router: Router) -> None:
    decision = router.route(job("ml-train", preferred_executor="mock"))
    assert (decision.executor, decision.reason, decision.rule) == (
        "mock",
        "preferred executor",
        None,
    )


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ("disabled", "disabled"),
        ("unhealthy", "unhealthy: mock set unhealthy"),
        ("raising", "health check raised RuntimeError: daemon gone"),
        ("unknown", "not configured"),
    ],
)
def test_preferred_falls_through_when_unavailable(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor], setup: str, why: str
) -> None:
    executors: dict[str, Any] = dict(mocks)
    preferred = "mock"
    if setup == "disabled":
        executors["mock"] = {"instance": mocks["mock"], "enabled": False}
    elif setup == "unhealthy":
        mocks["mock"].healthy = False
    elif setup == "raising":
        mocks["mock"].health = _raise(RuntimeError("daemon gone"))  # type: ignore[method-assign]
    else:
        preferred = "gpu-box"
    router = make_router(executors=executors)
    decision = router.route(job("ml-train", preferred_executor=preferred))
    assert (decision.executor, decision.reason) == ("fargate", "ml")
    assert decision.skipped == ((preferred, why),)
    assert router.is_available(preferred) == (False, why)


def _raise(error: Exception) -> Callable[[], Health]:
    def health() -> Health:
        raise error

    return health


def test_disabled_and_unhealthy_rule_targets_are_skipped_with_reasons(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    mocks["fargate"].healthy = False
    router = make_router(
        executors={**mocks, "cloudrun": {"instance": mocks["cloudrun"], "enabled": False}},
        fallback=["mock"],
    )
    decision = router.route(job("ml-batch", resources=Resources(memory="16Gi"), timeout=7200))
    assert decision.executor == "docker"
    assert decision.reason == "default"
    assert decision.skipped == (
        ("fargate", "unhealthy: mock set unhealthy"),
        ("cloudrun", "disabled"),
    )
    assert "skipped fargate: unhealthy" in decision.explain()


def test_a_healthy_answer_is_cached_for_the_ttl(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor], clock: ManualClock
) -> None:
    router = make_router(health_ttl=60)
    docker = mocks["docker"]
    for _ in range(5):
        assert router.route(job()).executor == "docker"
    assert len(docker.calls("health")) == 1
    docker.healthy = False
    clock.advance(59)
    assert router.route(job()).executor == "docker"  # still the cached answer
    assert len(docker.calls("health")) == 1
    clock.advance(2)
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.route(job())
    assert caught.value.skipped == (("docker", "unhealthy: mock set unhealthy"),)
    assert caught.value.capacity_only is False
    assert len(docker.calls("health")) == 2


def test_health_ttl_zero_checks_every_time(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    router = make_router(health_ttl=0)
    for _ in range(3):
        router.route(job())
    assert len(mocks["docker"].calls("health")) == 3


class SmallMock(MockExecutor):
    """A backend with tight per-job limits."""

    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities(), max_cpu=2, max_memory_mb=4096, max_gpu=0)


@pytest.mark.parametrize(
    ("resources", "why"),
    [
        (Resources(gpu=1), "job asks 1 GPUs, executor allows 0"),
        (Resources(cpu=3), "job asks 3 CPUs, executor allows 2"),
        (Resources(memory="5Gi"), "job asks 5120 MiB, executor allows 4096"),
    ],
)
def test_a_job_that_does_not_fit_goes_elsewhere(
    make_router: Callable[..., Router],
    mocks: dict[str, MockExecutor],
    clock: ManualClock,
    resources: Resources,
    why: str,
) -> None:
    router = make_router(
        executors={**mocks, "docker": SmallMock(name="docker", clock=clock)}, fallback=["mock"]
    )
    decision = router.route(job(resources=resources))
    assert (decision.executor, decision.reason) == ("mock", "fallback")
    assert decision.skipped == (("docker", why),)
    assert router.route(job()).executor == "docker"  # a small job still fits
    assert router.route(job(resources=resources)).executor == "mock"  # and a big one never
    with pytest.raises(NoExecutorAvailableError, match="job asks 16 GPUs, executor allows 8"):
        router.route(job(resources=Resources(gpu=16)))


def test_no_candidate_lists_every_reason(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    mocks["docker"].healthy = False
    router = make_router(
        executors={**mocks, "mock": {"instance": mocks["mock"], "enabled": False}},
        fallback=["mock"],
    )
    spec = job("plain")
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.route(spec)
    error = caught.value
    assert error.job_id == spec.job_id
    assert error.skipped == (("docker", "unhealthy: mock set unhealthy"), ("mock", "disabled"))
    assert "docker: unhealthy" in str(error)
    assert "mock: disabled" in str(error)
    assert error.capacity_only is False


def test_no_rule_no_default_means_no_candidates(make_router: Callable[..., Router]) -> None:
    router = make_router(default=None)
    with pytest.raises(NoExecutorAvailableError, match="no candidates") as caught:
        router.route(job("plain"))
    assert caught.value.skipped == ()
    assert caught.value.capacity_only is False


def test_rules_by_ascending_priority_ties_in_order(make_router: Callable[..., Router]) -> None:
    router = make_router(
        rules=[
            RoutingRule("True", "docker", "first of priority 5", priority=5),
            {"condition": "True", "executor": "cloudrun", "reason": "second of 5", "priority": 5},
            RoutingRule("True", "fargate", "priority 1", priority=1),
            RoutingRule("True", "mock", "default priority 0"),
        ]
    )
    assert [rule.reason for rule in router.rules] == [
        "default priority 0",
        "priority 1",
        "first of priority 5",
        "second of 5",
    ]
    assert router.route(job()).executor == "mock"


def test_a_rule_that_fails_at_evaluation_is_skipped_and_logged(
    make_router: Callable[..., Router], caplog: pytest.LogCaptureFixture
) -> None:
    router = make_router(
        rules=[
            {"condition": "team == 'vision'", "executor": "fargate", "context": ["team"]},
            {"condition": "labels.team == 'vision'", "executor": "cloudrun"},
        ]
    )
    with caplog.at_level(logging.WARNING, logger="jobrelay.router"):
        decision = router.route(job(labels={"team": "vision"}))
    assert decision.executor == "cloudrun"
    assert decision.reason == "rule: labels.team == 'vision'"
    why = "rules[0] could not be evaluated: unknown name 'team' in condition \"team == 'vision'\""
    assert decision.skipped == (("fargate", f"{why} (column 1)"),)
    assert "rules[0] (team == 'vision') could not be evaluated" in caplog.text
    # the context argument supplies the missing name
    assert router.route(job(), {"team": "vision"}).executor == "fargate"


def test_context_names_available_to_conditions(make_router: Callable[..., Router]) -> None:
    spec = job(
        "etl",
        resources=Resources(cpu=2, memory="3Gi", gpu=1),
        timeout=90,
        labels={"team": "data"},
        metadata={"tenant": "acme"},
    )
    condition = (
        "job is template and name == 'etl' and image == 'busybox' and memory_mb == 3072 "
        "and cpu_cores == 2.0 and gpu == 1 and timeout_seconds == 90 "
        "and labels.team == 'data' and metadata['tenant'] == 'acme' and user is None"
    )
    router = make_router(rules=[{"condition": condition, "executor": "mock"}])
    assert router.route(spec).executor == "mock"
    assert router.route(job("etl")).executor == "docker"


# -- launching, fallback and hops ------------------------------------------------------


def test_launch_returns_the_execution_with_its_route(router: Router, recorder: Recorder) -> None:
    execution = router.launch(job("batch-nightly"))
    assert execution.executor == "cloudrun"
    route = execution.metadata["jobrelay.route"]
    assert route == {
        "executor": "cloudrun",
        "reason": "batch",
        "rule": 'template.name.startswith("batch-")',
        "skipped": (),
        "hops": (("cloudrun", "launched"),),
        "candidates": (("cloudrun", True, "", None),),
    }
    routed = recorder.named("job_routed")
    assert len(routed) == 1
    assert routed[0]["decision"].hops == (("cloudrun", "launched"),)
    assert recorder.named("launch_failed") == []


def test_route_alone_fires_no_hook_and_takes_no_capacity(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor], recorder: Recorder
) -> None:
    router = make_router(
        executors={**mocks, "docker": {"instance": mocks["docker"], "max_concurrent": 1}}
    )
    for _ in range(3):
        assert router.route(job()).executor == "docker"
    assert recorder.calls == []
    assert router.in_flight("docker") == 0
    assert mocks["docker"].calls("launch") == []


def test_fallback_after_a_launch_failure(
    make_router: Callable[..., Router],
    mocks: dict[str, MockExecutor],
    clock: ManualClock,
    recorder: Recorder,
) -> None:
    broken = MockExecutor(
        name="fargate",
        clock=clock,
        behavior=lambda _job: MockOutcome(launch_error="quota exceeded"),
    )
    router = make_router(executors={**mocks, "fargate": broken}, fallback=["mock"])
    spec = job("ml-train")
    execution = router.launch(spec)
    assert execution.executor == "docker"  # fargate refused; the default took it
    hops = execution.metadata["jobrelay.route"]["hops"]
    assert hops == (("fargate", "LaunchError: quota exceeded"), ("docker", "launched"))
    failed = recorder.named("launch_failed")
    assert [(call["executor"], str(call["error"])) for call in failed] == [
        ("fargate", "quota exceeded")
    ]
    assert isinstance(failed[0]["error"], LaunchError)
    decision = recorder.named("job_routed")[0]["decision"]
    assert (decision.executor, decision.reason) == ("docker", "default")
    assert "failed fargate: LaunchError: quota exceeded" in decision.explain()
    assert router.in_flight("fargate") == 0
    assert router.in_flight("docker") == 1


def test_fallback_list_is_tried_last(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor], clock: ManualClock
) -> None:
    refuse = MockOutcome(launch_error="no")
    executors = {
        **mocks,
        "fargate": MockExecutor(name="fargate", clock=clock, behavior=lambda _j: refuse),
        "docker": MockExecutor(name="docker", clock=clock, behavior=lambda _j: refuse),
    }
    router = make_router(executors=executors, fallback=["fargate", "mock"])
    execution = router.launch(job("ml-x"))
    assert execution.executor == "mock"
    route = execution.metadata["jobrelay.route"]
    assert route["reason"] == "fallback"
    assert [name for name, _ in route["hops"]] == ["fargate", "docker", "mock"]  # fargate once


def test_transient_errors_are_retried_before_moving_on(
    router: Router, mocks: dict[str, MockExecutor]
) -> None:
    execution = router.launch(job("plain", labels={"mock.transient-failures": "2"}))
    assert execution.executor == "docker"
    assert [event.detail for event in mocks["docker"].calls("launch")] == [
        "transient",
        "transient",
        "",
    ]
    assert execution.metadata["jobrelay.route"]["hops"] == (("docker", "launched"),)


def test_transient_errors_past_the_retries_are_raised_not_moved_on(
    make_router: Callable[..., Router],
    mocks: dict[str, MockExecutor],
    clock: ManualClock,
    recorder: Recorder,
) -> None:
    # The launch may have taken effect: another executor could run the job twice.
    flaky = MockExecutor(
        name="docker", clock=clock, behavior=lambda _job: MockOutcome(transient_failures=5)
    )
    router = make_router(executors={**mocks, "docker": flaky}, fallback=["mock"])
    spec = job("plain")
    with pytest.raises(TransientExecutorError, match="mock transient failure 3/5") as caught:
        router.launch(spec)
    assert (caught.value.executor, caught.value.job_id) == ("docker", spec.job_id)
    assert len(flaky.calls("launch")) == FAST_RETRY.attempts
    assert mocks["mock"].calls("launch") == []
    assert [call["executor"] for call in recorder.named("launch_failed")] == ["docker"]
    assert recorder.named("job_routed") == []
    assert router.in_flight("docker") == 0


def test_every_candidate_failing_raises_with_each_reason(
    make_router: Callable[..., Router], recorder: Recorder
) -> None:
    router = make_router(fallback=["mock"])
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(job("plain", labels={"mock.fail-launch": "image not found"}))
    assert caught.value.skipped == (
        ("docker", "launch failed: LaunchError: image not found"),
        ("mock", "launch failed: LaunchError: image not found"),
    )
    assert caught.value.capacity_only is False
    assert len(recorder.named("launch_failed")) == 2
    assert recorder.named("job_routed") == []
    assert router.in_flight("docker") == router.in_flight("mock") == 0


def test_a_bad_job_is_not_passed_around(router: Router) -> None:
    # A SpecError from the backend is about the job, not the executor: it propagates.
    with pytest.raises(jobrelay.SpecError, match="bad mock"):
        router.launch(job(labels={"mock.exit-code": "not-a-number"}))
    assert router.in_flight("docker") == 0


# -- capacity ------------------------------------------------------------------------


def test_capacity_is_taken_and_released(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    router = make_router(
        executors={**mocks, "docker": {"instance": mocks["docker"], "max_concurrent": 2}},
    )
    assert router.max_concurrent("docker") == 2
    assert router.max_concurrent("mock") is None
    assert router.route(job("a")).executor == "docker"
    first = router.launch(job("a"))
    second = router.launch(job("b"))
    assert router.in_flight("docker") == 2
    assert router.is_available("docker") == (False, "at capacity (2/2 running)")
    with pytest.raises(NoExecutorAvailableError) as routed:
        router.route(job("c"))
    assert routed.value.capacity_only is True
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(job("c"))
    assert caught.value.capacity_only is True
    assert caught.value.skipped == (("docker", "at capacity (2/2 running)"),)
    router.release(first)
    router.release(first)  # idempotent
    assert router.in_flight("docker") == 1
    third = router.launch(job("c"))
    assert third.executor == "docker"
    for execution in (second, third):
        router.release(execution)
    assert router.in_flight("docker") == 0
    router.release(Execution("docker", "unknown", "j", first.launched_at))  # harmless


def test_a_full_executor_overflows_only_when_its_entry_says_so(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    entry = {"instance": mocks["fargate"], "max_concurrent": 1, "overflow": "fallback"}
    router = make_router(executors={**mocks, "fargate": entry}, fallback=["mock"])
    router.launch(job("ml-1"))
    execution = router.launch(job("ml-2"))
    assert execution.executor == "docker"
    assert execution.metadata["jobrelay.route"]["skipped"] == (
        ("fargate", "at capacity (1/1 running)"),
    )


def test_capacity_only_is_false_when_another_reason_exists(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    docker = {"instance": mocks["docker"], "max_concurrent": 1, "overflow": "fallback"}
    router = make_router(
        executors={
            **mocks,
            "docker": docker,
            "mock": {"instance": mocks["mock"], "enabled": False},
        },
        fallback=["mock"],
    )
    router.launch(job())
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(job())
    assert caught.value.capacity_only is False
    assert caught.value.retry_after is None
    assert caught.value.skipped == (("docker", "at capacity (1/1 running)"), ("mock", "disabled"))


def test_launching_the_same_job_twice_holds_one_slot(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    router = make_router(
        executors={**mocks, "docker": {"instance": mocks["docker"], "max_concurrent": 2}}
    )
    spec = job()
    first = router.launch(spec)
    again = router.launch(spec)
    assert again.execution_id == first.execution_id
    assert router.in_flight("docker") == 1


def test_concurrent_launches_never_exceed_capacity(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    router = make_router(
        executors={**mocks, "docker": {"instance": mocks["docker"], "max_concurrent": 3}},
    )
    launched: list[Execution] = []
    refused: list[NoExecutorAvailableError] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def launch_one(name: str) -> None:
        try:
            execution = router.launch(job(name))
        except NoExecutorAvailableError as exc:
            with lock:
                refused.append(exc)
        else:
            with lock:
                launched.append(execution)

    def worker(index: int) -> None:
        start.wait()
        for attempt in range(5):
            launch_one(f"w{index}-{attempt}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(launched) == 3
    assert len(refused) == 37
    assert all(error.capacity_only for error in refused)
    assert router.in_flight("docker") == 3


def test_threads_that_all_saw_a_free_slot_still_take_only_the_free_ones(
    make_router: Callable[..., Router], mocks: dict[str, MockExecutor]
) -> None:
    docker = mocks["docker"]
    together = threading.Barrier(4)
    healthy = docker.health

    def slow_health() -> Health:
        time.sleep(0.2)  # meanwhile the other threads pass the capacity check and wait
        return healthy()

    docker.health = slow_health  # type: ignore[method-assign]
    router = make_router(
        executors={**mocks, "docker": {"instance": docker, "max_concurrent": 2}}, health_ttl=60
    )
    outcomes: list[str] = []

    def worker(index: int) -> None:
        together.wait(timeout=10)
        try:
            outcomes.append(router.launch(job(f"w{index}")).executor)
        except NoExecutorAvailableError as exc:
            outcomes.append(f"full={exc.capacity_only}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["docker", "docker", "full=True", "full=True"]
    assert router.in_flight("docker") == 2
    assert len(docker.calls("health")) == 1  # the threads shared one probe


# -- configuration -------------------------------------------------------------------


def test_from_config_builds_lazily_with_entry_names(clock: ManualClock) -> None:
    router = Router.from_config(
        {
            "executors": {
                "mock": {"enabled": True, "max_concurrent": 4},
                "big": {"type": "mock", "enabled": True, "log_split": False},
                "off": {"type": "mock", "enabled": False},
            },
            "rules": [{"condition": "memory_mb > 8192", "executor": "big", "reason": "large job"}],
            "default": "mock",
            "fallback": ["off"],
            "health_ttl": 10,
        },
        clock=clock,
    )
    assert router.names == ("mock", "big", "off")
    assert router.default == "mock"
    assert router.fallback == ("off",)
    assert router.health_ttl == 10
    assert router.max_concurrent("mock") == 4
    big = router.executor("big")
    assert isinstance(big, MockExecutor)
    assert big.name == "big"
    assert big.log_split is False
    assert router.executor("big") is big
    execution = router.launch(job(resources=Resources(memory="9Gi")))
    assert execution.executor == "big"
    router.close()
    assert big.closed
    assert router.executor("big") is not big  # made afresh after close


def test_from_toml(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(
        """
[tool.jobrelay]
default = "mock"
fallback = ["spare"]

[tool.jobrelay.executors.mock]
max_concurrent = 2

[tool.jobrelay.executors.spare]
type = "mock"

[[tool.jobrelay.rules]]
condition = 'name.startswith("ml-")'
executor = "spare"
reason = "ml jobs"
priority = 10
""",
        encoding="utf-8",
    )
    router = Router.from_toml(path, table="tool.jobrelay", clock=clock)
    assert router.names == ("mock", "spare")
    assert router.rules == (RoutingRule('name.startswith("ml-")', "spare", "ml jobs", priority=10),)
    assert router.route(job("ml-x")).executor == "spare"
    assert router.route(job("other")).executor == "mock"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("executors = [", "not valid TOML"),
        ("[executors.mock]\nmax_concurrent = 0", "executors['mock'].max_concurrent"),
        ("[other]\nx = 1", "no table [tool.jobrelay]"),
    ],
)
def test_from_toml_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "router.toml"
    path.write_text(content, encoding="utf-8")
    table = "tool.jobrelay" if "other" in content else None
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Router.from_toml(path, table=table)


def test_from_toml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Router.from_toml(tmp_path / "absent.toml")


BAD_CONFIGS: list[tuple[Any, str]] = [
    ({"executors": {"mock": {}}, "rules": [{"condition": "memory_mb >", "executor": "mock"}]},
     r"rules\[0\]\.condition: unexpected end of condition .*\(column 12\)"),
    ({"executors": {"mock": {}}, "rules": [{"condition": "x.__class__", "executor": "mock"}]},
     r"rules\[0\]\.condition: attributes starting with '_'"),
    ({"executors": {"mock": {}}, "rules": [{"condition": "x", "executor": "fargate"}]},
     r"rules\[0\]\.executor: 'fargate' is not configured; configured: mock"),
    ({"executors": {"mock": {}}, "rules": [{"condition": "x"}]}, r"rules\[0\]: missing 'executor'"),
    ({"executors": {"mock": {}}, "rules": [{"executor": "mock"}]}, r"rules\[0\]: missing 'condition'"),
    ({"executors": {"mock": {}}, "rules": [{"condition": "x", "executor": "mock", "when": 1}]},
     r"rules\[0\]: unknown keys \['when'\]"),
    ({"executors": {"mock": {}}, "rules": [{"condition": "x", "executor": "mock", "priority": "1"}]},
     r"rules\[0\]\.priority must be an int"),
    ({"executors": {"mock": {}}, "rules": [{"condition": 1, "executor": "mock"}]},
     r"rules\[0\]\.condition must be a string"),
    ({"executors": {"mock": {}}, "rules": "x > 1"}, "rules: expected a list"),
    ({"executors": {"mock": {}}, "default": "docker"}, "default: 'docker' is not a configured executor"),
    ({"executors": {"mock": {}}, "fallback": ["docker"]}, r"fallback\[0\]: 'docker' is not a configured"),
    ({"executors": {"mock": {}}, "fallback": "mock"}, "fallback: expected a list"),
    ({"executors": {"mock": {}}, "health_ttl": -1}, "health_ttl: must be a number of seconds >= 0"),
    ({"executors": {"mock": {}}, "rule": []}, r"unknown configuration keys \['rule'\]"),
    ({"rules": []}, "no 'executors' table"),
    ({"executors": {}}, "at least one executor"),
    ({"executors": "mock"}, "executors: expected a mapping"),
    ({"executors": {"mock": 3}}, r"executors\['mock'\]: expected an executor or a mapping"),
    ({"executors": {"mock": {"max_concurrent": 0}}}, r"executors\['mock'\]\.max_concurrent: must be an int from 1 to 1000000"),
    ({"executors": {"mock": {"max_concurrent": True}}}, r"max_concurrent: must be an int"),
    ({"executors": {"mock": {"max_concurrent": "4"}}}, r"max_concurrent: must be an int"),
    ({"executors": {"mock": {"enabled": "yes"}}}, r"executors\['mock'\]\.enabled: must be true or false"),
    ({"executors": {"gpu-box": {}}}, r"executors\['gpu-box'\]\.type: no executor type 'gpu-box' is installed"),
    ({"executors": {"box": {"type": "nope"}}}, r"no executor type 'nope' is installed; available: .*mock"),
    ({"executors": {"box": {"type": ""}}}, r"executors\['box'\]\.type: must be a non-empty string"),
    ({"executors": {"box": {"type": "mock", "name": "x"}}}, r"executors\['box'\]\.name: the entry's key"),
    ({"executors": {"box": {"type": "mock", "instance": 1, }}}, r"an 'instance' entry takes only"),
    ({"executors": {"": {}}}, "names must be non-empty strings"),
    ([], "configuration must be a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_config_errors(config: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Router.from_config(config)


def test_a_compile_error_keeps_its_rule_error_as_cause() -> None:
    with pytest.raises(ConfigError) as caught:
        Router.from_config(
            {"executors": {"mock": {}}, "rules": [{"condition": "len(", "executor": "mock"}]}
        )
    assert isinstance(caught.value.__cause__, RuleError)
    assert caught.value.__cause__.column is not None


def test_instances_must_carry_their_entry_name(clock: ManualClock) -> None:
    with pytest.raises(
        ConfigError, match=r"executors\['docker'\]: the executor instance is named 'mock'"
    ):
        Router({"docker": MockExecutor(clock=clock)})
    with pytest.raises(ConfigError, match=r"executors\[1\]: a second executor named 'mock'"):
        Router([MockExecutor(clock=clock), MockExecutor(clock=clock)])
    with pytest.raises(ConfigError, match=r"executors\[0\]: expected an executor instance"):
        Router([object()])  # type: ignore[list-item]
    router = Router([MockExecutor(name="a", clock=clock), MockExecutor(name="b", clock=clock)])
    assert router.names == ("a", "b")


def test_routing_rule_validates_its_fields() -> None:
    with pytest.raises(RuleError):
        RoutingRule("memory_mb >", "mock")
    with pytest.raises(ConfigError, match="executor must be a non-empty string"):
        RoutingRule("True", "")
    with pytest.raises(ConfigError, match="priority must be an int"):
        RoutingRule("True", "mock", priority=True)
    rule = RoutingRule("memory_mb > 1", "mock")
    assert rule.reason == "rule: memory_mb > 1"
    assert rule.rule.names == frozenset({"memory_mb"})


# -- lazy creation and broken backends -----------------------------------------------


class NamelessMock(MockExecutor):
    """An executor class without a ``name`` parameter."""

    def __init__(self) -> None:
        super().__init__("nameless")


@pytest.mark.usefixtures("registry_state")
def test_a_backend_that_cannot_be_imported_is_reported_where_a_job_would_go(
    clock: ManualClock,
) -> None:
    register_executor("cloudy", "jobrelay_test_missing_backend:CloudExecutor")
    router = Router.from_config(
        {
            "executors": {"cloudy": {"region": "eu-west-1"}, "mock": {}},
            "rules": [{"condition": "memory_mb > 8192", "executor": "cloudy"}],
            "default": "mock",
            "fallback": ["mock"],
        },
        clock=clock,
    )
    # Loading tried the import (to check the options) and left the entry for later.
    assert router.route(job()).executor == "mock"
    decision = router.route(job(resources=Resources(memory="9Gi")))
    assert decision.executor == "mock"
    ((name, why),) = decision.skipped
    assert name == "cloudy"
    assert why.startswith("could not be created: executor 'cloudy'")
    assert "jobrelay_test_missing_backend" in why
    with pytest.raises(jobrelay.ExecutorLoadError):
        router.executor("cloudy")


@pytest.mark.usefixtures("registry_state")
def test_an_executor_without_a_name_parameter_keeps_its_own_name(clock: ManualClock) -> None:
    register_executor("nameless", NamelessMock)
    router = Router.from_config(
        {"executors": {"nameless": {}, "renamed": {"type": "nameless"}}}, clock=clock
    )
    assert router.executor("nameless").name == "nameless"
    with pytest.raises(ConfigError, match=r"name the entry 'nameless'"):
        router.executor("renamed")
    assert router.is_available("renamed")[1].startswith("could not be created")


def test_unknown_names(router: Router) -> None:
    with pytest.raises(ExecutorNotFoundError):
        router.executor("nope")
    with pytest.raises(ExecutorNotFoundError):
        router.in_flight("nope")
    with pytest.raises(ExecutorNotFoundError):
        router.max_concurrent("nope")
    assert router.is_available("nope") == (False, "not configured")


def test_close_closes_only_what_the_router_created(clock: ManualClock) -> None:
    given = MockExecutor(name="given", clock=clock)
    with Router({"given": given, "made": {"type": "mock"}}, clock=clock) as router:
        made = router.executor("made")
    assert isinstance(made, MockExecutor)
    assert made.closed
    assert not given.closed


# -- logging and hooks ---------------------------------------------------------------


def test_decisions_are_logged_at_info_with_their_reason(
    make_router: Callable[..., Router],
    mocks: dict[str, MockExecutor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    mocks["fargate"].healthy = False
    router = make_router()
    spec = job("ml-train", job_id="job-42")
    with caplog.at_level(logging.INFO, logger="jobrelay.router"):
        router.route(spec)
    records = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(records) == 1
    assert records[0].getMessage() == (
        "job job-42 (ml-train) -> docker (default); skipped fargate: unhealthy: mock set unhealthy"
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="jobrelay.router"):
        router.launch(job("batch-1", job_id="job-43"))
    assert "job job-43 (batch-1) -> cloudrun (batch)" in caplog.text


def test_secrets_never_reach_logs_or_decisions(
    router: Router, caplog: pytest.LogCaptureFixture, recorder: Recorder
) -> None:
    spec = job("test-x", secrets={"TOKEN": "hunter2-secret"})
    with caplog.at_level(logging.DEBUG):
        execution = router.launch(spec)
    assert "hunter2-secret" not in caplog.text
    assert "hunter2-secret" not in repr(execution.metadata)
    assert "hunter2-secret" not in repr(recorder.named("job_routed")[0]["decision"])


def test_a_failing_hook_never_breaks_routing(
    make_router: Callable[..., Router], caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        @hookimpl
        def job_routed(self, job: JobSpec, decision: RouteDecision) -> None:
            raise RuntimeError("metrics down")

    router = make_router()
    router.hooks.register(Broken())
    with caplog.at_level(logging.ERROR, logger="jobrelay.hooks"):
        execution = router.launch(job())
    assert execution.executor == "docker"
    assert "metrics down" in caplog.text


def test_public_surface() -> None:
    for name in ("Router", "RoutingRule", "RouteDecision", "Rule", "compile_rule"):
        assert name in jobrelay.__all__
    assert RouteDecision("docker", "default").to_dict() == {
        "executor": "docker",
        "reason": "default",
        "rule": None,
        "skipped": (),
        "hops": (),
        "candidates": (),
    }
