"""Router health checks: brief caching of failures, backoff, shared probes, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from jobrelay import (
    Health,
    Hooks,
    JobSpec,
    JobState,
    ManualClock,
    NoExecutorAvailableError,
    RetryPolicy,
    Router,
    Runner,
    register_executor,
)
from jobrelay_mock import MockExecutor

FAST_RETRY = RetryPolicy(attempts=2, initial=0, maximum=0, jitter=0)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


@pytest.fixture
def docker(clock: ManualClock) -> MockExecutor:
    return MockExecutor(name="docker", clock=clock)


@pytest.fixture
def spare(clock: ManualClock) -> MockExecutor:
    return MockExecutor(name="spare", clock=clock)


@pytest.fixture
def make_router(
    docker: MockExecutor, spare: MockExecutor, clock: ManualClock
) -> Callable[..., Router]:
    def make(**overrides: Any) -> Router:
        settings: dict[str, Any] = {
            "executors": {"docker": docker, "spare": spare},
            "default": "docker",
            "clock": clock,
            "retry": FAST_RETRY,
            "hooks": Hooks(load_entry_points=False),
        }
        settings.update(overrides)
        executors = settings.pop("executors")
        return Router(executors, **settings)

    return make


def job() -> JobSpec:
    return JobSpec("busybox", "true", name="web")


def refused(router: Router) -> NoExecutorAvailableError:
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.route(job())
    return caught.value


def test_a_failed_answer_is_kept_briefly_then_probed_again_with_backoff(
    make_router: Callable[..., Router], docker: MockExecutor, clock: ManualClock
) -> None:
    router = make_router(health_ttl=300)
    docker.healthy = False
    delays = []
    for _ in range(7):
        error = refused(router)
        calls = len(docker.calls("health"))
        assert error.retry_after is not None
        delays.append(error.retry_after)
        clock.advance(error.retry_after - 0.01)
        refused(router)  # not yet: the failed answer is still cached
        assert len(docker.calls("health")) == calls
        clock.advance(0.01)
    assert delays == [1, 2, 4, 8, 16, 30, 30]  # doubling, at most 30 s
    docker.healthy = True
    assert router.route(job()).executor == "docker"
    probes = len(docker.calls("health"))
    clock.advance(299)
    assert router.route(job()).executor == "docker"  # healthy: cached for the ttl
    assert len(docker.calls("health")) == probes


def test_one_transient_failure_costs_a_second_not_the_ttl(
    make_router: Callable[..., Router], docker: MockExecutor, clock: ManualClock
) -> None:
    router = make_router(health_ttl=300)
    answers = iter([RuntimeError("connection reset")])
    healthy = docker.health

    def flaky() -> Health:
        for error in answers:
            raise error
        return healthy()

    docker.health = flaky  # type: ignore[method-assign]
    error = refused(router)
    assert error.skipped == (("docker", "health check raised RuntimeError: connection reset"),)
    assert error.retry_after == 1.0
    clock.advance(1)
    assert router.route(job()).executor == "docker"


def test_backoff_never_exceeds_the_health_ttl(
    make_router: Callable[..., Router], docker: MockExecutor, clock: ManualClock
) -> None:
    router = make_router(health_ttl=1.5)
    docker.healthy = False
    delays = []
    for _ in range(3):
        error = refused(router)
        assert error.retry_after is not None
        delays.append(error.retry_after)
        clock.advance(error.retry_after)
    assert delays == [1, 1.5, 1.5]


def test_concurrent_first_probes_collapse_into_one(
    make_router: Callable[..., Router], docker: MockExecutor
) -> None:
    healthy = docker.health
    started = threading.Barrier(8)

    def slow() -> Health:
        time.sleep(0.2)  # long enough for every thread to arrive meanwhile
        return healthy()

    docker.health = slow  # type: ignore[method-assign]
    router = make_router(health_ttl=60)
    chosen: list[str] = []

    def worker() -> None:
        started.wait(timeout=10)
        chosen.append(router.route(job()).executor)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert chosen == ["docker"] * 8
    assert len(docker.calls("health")) == 1


def test_a_job_whose_candidates_are_all_unhealthy_may_wait(
    make_router: Callable[..., Router], docker: MockExecutor, spare: MockExecutor
) -> None:
    router = make_router(fallback=["spare"])
    docker.healthy = spare.healthy = False
    error = refused(router)
    assert error.capacity_only is False
    assert error.retry_after == 1.0
    assert [name for name, _ in error.skipped] == ["docker", "spare"]
    with pytest.raises(NoExecutorAvailableError) as launched:
        router.launch(job())
    assert launched.value.retry_after is not None
    assert docker.calls("launch") == spare.calls("launch") == []


def test_an_unhealthy_candidate_with_a_healthy_fallback_does_not_wait(
    make_router: Callable[..., Router], docker: MockExecutor
) -> None:
    router = make_router(fallback=["spare"])
    docker.healthy = False
    execution = router.launch(job())
    assert execution.executor == "spare"


def test_waiting_for_an_unhealthy_executor_is_bounded(
    make_router: Callable[..., Router], docker: MockExecutor, clock: ManualClock
) -> None:
    router = make_router(unhealthy_wait=60)
    docker.healthy = False
    waited = 0.0
    while True:
        error = refused(router)
        if error.retry_after is None:
            break
        clock.advance(error.retry_after)
        waited += error.retry_after
    assert 60 <= waited < 60 + 30  # failing for over a minute: jobs stop waiting
    assert error.skipped == (("docker", "unhealthy: mock set unhealthy"),)
    docker.healthy = True
    clock.advance(30)
    assert router.route(job()).executor == "docker"  # and it is still probed


def test_waiting_cannot_help_when_another_reason_blocks(
    make_router: Callable[..., Router], docker: MockExecutor, spare: MockExecutor
) -> None:
    router = make_router(
        executors={"docker": docker, "spare": {"instance": spare, "enabled": False}},
        fallback=["spare"],
    )
    docker.healthy = False
    error = refused(router)
    assert error.retry_after is None
    assert error.capacity_only is False


@pytest.mark.usefixtures("registry_state")
def test_an_executor_that_cannot_be_created_is_not_waited_for(clock: ManualClock) -> None:
    register_executor("broken", "jobrelay_test_no_such_module:Executor")
    router = Router({"broken": {}}, default="broken", clock=clock)
    error = refused(router)
    assert error.retry_after is None
    ((name, why),) = error.skipped
    assert name == "broken"
    assert why.startswith("could not be created: executor 'broken'")


def test_health_ttl_zero_still_shares_a_probe_between_waiting_threads(
    make_router: Callable[..., Router], docker: MockExecutor
) -> None:
    healthy = docker.health
    inside = threading.Event()
    release = threading.Event()

    def blocking() -> Health:
        inside.set()
        release.wait(timeout=10)
        return healthy()

    docker.health = blocking  # type: ignore[method-assign]
    router = make_router(health_ttl=0)
    first = threading.Thread(target=router.route, args=(job(),))
    first.start()
    assert inside.wait(timeout=10)
    others = [threading.Thread(target=router.route, args=(job(),)) for _ in range(3)]
    for thread in others:
        thread.start()
    time.sleep(0.5)  # the others are waiting for the probe in flight
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert len(docker.calls("health")) == 1
    router.route(job())
    assert len(docker.calls("health")) == 2  # a new question gets a new probe


def test_runner_waits_for_an_unhealthy_executor_to_recover() -> None:
    docker = MockExecutor(name="docker")
    docker.healthy = False
    router = Router({"docker": docker}, default="docker", hooks=Hooks(load_entry_points=False))
    recover = threading.Timer(0.5, lambda: setattr(docker, "healthy", True))
    recover.start()
    try:
        with Runner(router, poll_interval=0.05) as runner:
            (result,) = runner.run([job()])
    finally:
        recover.cancel()
        recover.join()
    assert result.state is JobState.SUCCEEDED
    assert result.execution.executor == "docker"
    assert len(docker.calls("health")) >= 2
