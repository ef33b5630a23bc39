"""The Runner's promises on the mock: never launched twice, never lost, never leaked.

Each test causes the situation through the mock (a harvest that cannot reach its
backend, a reply lost after the launch took effect, a second Runner of another owner)
and checks what a user would: the handles' results, and what the backend holds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import threading
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pytest

from jobrelay import (
    Capabilities,
    ConfigError,
    Cost,
    Execution,
    ExecutorNotFoundError,
    Health,
    JobrelayError,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    JobTimeoutError,
    LaunchError,
    ManualClock,
    NoExecutorAvailableError,
    Progress,
    RetryPolicy,
    Router,
    Runner,
    TransientExecutorError,
    hookimpl,
)
from jobrelay_mock import MockEvent, MockExecutor, MockOutcome

FOREVER = "10000000"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


def job(*, labels: dict[str, str] | None = None, **fields: Any) -> JobSpec:
    return JobSpec("busybox", labels=labels or {}, **fields)


def router_for(mock: MockExecutor, clock: ManualClock, **entry: Any) -> Router:
    return Router(
        {"mock": {"instance": mock, **entry}},
        default="mock",
        clock=clock,
        retry=RetryPolicy(attempts=1),
    )


class Launches:
    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        self.seen.append(job.job_id)

    def __init__(self) -> None:
        self.seen: list[str] = []


# -- one handle per job id, and a result for every job ------------------------------------


def test_same_job_id_twice_gives_the_same_handle_and_returns(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    spec = job(labels={"mock.duration": "5"})
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        first = runner.submit(spec)
        assert runner.submit(spec) is first
        results = runner.run([spec, spec])
    assert [r.execution.execution_id for r in results] == [results[0].execution.execution_id] * 2
    assert len(mock.calls("launch")) == 1


def test_run_keeps_every_result_and_can_still_raise(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    jobs = [job(), job(labels={"mock.fail-launch": "image not found"}), job()]
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        results = runner.run(jobs)
        assert [r.state for r in results] == [
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.SUCCEEDED,
        ]
        assert results[1].status.reason is not None
        assert results[1].status.reason.startswith("launch failed: ")
        assert "image not found" in results[1].status.reason
        assert [r.job for r in results] == jobs
        assert {r.attempts for r in results} == {1}
        with pytest.raises(JobrelayError, match="image not found"):
            runner.run([job(labels={"mock.fail-launch": "image not found"})], raise_errors=True)


def test_secrets_never_reach_reasons_or_errors(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    spec = job(
        labels={"mock.fail-launch": "daemon says: env TOKEN=hunter2\\x00 refused"},
        secrets={"TOKEN": "hunter2"},
    )
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        handle = runner.submit(spec)
        with pytest.raises(JobrelayError) as info:
            handle.result(10)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in str(handle.status().reason)
    assert "***" in str(handle.status().reason)


def test_result_wait_that_runs_out_is_a_job_timeout(clock: ManualClock) -> None:
    mock = MockExecutor(clock=ManualClock(follow_real_time=False))
    with router_for(mock, clock) as router:
        runner = Runner(router, clock=clock)
        handle = runner.submit(job(labels={"mock.duration": FOREVER}))
        with pytest.raises(JobTimeoutError) as info:
            handle.result(0.05)
        assert isinstance(info.value, TimeoutError)
        assert info.value.job_id == handle.job_id
        runner.shutdown(wait=True, cancel=True)


# -- retention and harvest under faults --------------------------------------------------


class FlakyHarvest(MockExecutor):
    """A backend unreachable for its first ``failures`` harvests."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures

    def harvest(self, execution: Execution) -> JobResult:
        if self.failures:
            self.failures -= 1
            raise TransientExecutorError("daemon unreachable", executor=self.name)
        return super().harvest(execution)


def test_a_harvest_is_retried_until_the_backend_answers(clock: ManualClock) -> None:
    mock = FlakyHarvest(6, clock=clock)
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        result = runner.submit(job(labels={"mock.exit-code": "3", "mock.stdout": "out"})).result(10)
    assert (result.state, result.exit_code, result.logs.stdout) == (JobState.FAILED, 3, "out")
    assert len(mock.calls("harvest")) == 1  # the six failures never reached the mock
    assert not mock.calls("cleanup")


def test_a_harvest_past_its_budget_leaves_the_workload_for_reconcile(clock: ManualClock) -> None:
    mock = FlakyHarvest(10**6, clock=clock)
    with router_for(mock, clock) as router:
        runner = Runner(router, clock=clock, harvest_timeout=120)
        handle = runner.submit(job(labels={"mock.exit-code": "5"}))
        with pytest.raises(TransientExecutorError):
            handle.result(10)
        status = handle.status()
        assert (status.state, status.exit_code) == (JobState.FAILED, 5)
        assert "left for reconcile" in str(status.reason)
        runner.shutdown()
        assert not mock.calls("cleanup")
        assert handle.execution is not None
        assert mock.status(handle.execution).state is JobState.FAILED
        # The backend answers again: a new Runner adopts and finishes it.
        mock.failures = 0
        with Runner(router, clock=clock) as later:
            adopted = later.reconcile()
            assert [h.execution.execution_id for h in adopted if h.execution] == [
                handle.execution.execution_id
            ]
            assert adopted[0].result(10).exit_code == 5


class Unreachable(MockExecutor):
    """A backend whose status cannot be read while ``down``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.down = False

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        if self.down:
            raise TransientExecutorError("daemon unreachable", executor=self.name)
        return super().statuses(executions)


def test_a_job_whose_status_stays_unreadable_ends_lost_and_is_left_for_reconcile(
    clock: ManualClock,
) -> None:
    mock = Unreachable(clock=clock, remove_on_harvest=False)
    with router_for(mock, clock) as router:
        runner = Runner(router, clock=clock, harvest_timeout=120, poll_interval=5)
        mock.down = True  # launches still work; no status can be read from the start
        handle = runner.submit(job(labels={"mock.duration": "600", "mock.exit-code": "4"}))
        with pytest.raises(TransientExecutorError, match="daemon unreachable"):
            handle.result(10)  # it ends: the backend is not waited for for ever
        status = handle.status()
        assert status.state is JobState.LOST
        assert "status unreadable for 120s, workload left for reconcile" in str(status.reason)
        assert handle.execution is not None  # it was launched, and is not forgotten
        runner.shutdown()
        assert not mock.calls("cancel")
        assert not mock.calls("cleanup")
        # The backend answers again: a new Runner adopts it and gets the real end.
        mock.down = False
        with Runner(router, clock=clock) as later:
            [adopted] = later.reconcile()
            assert adopted.result(10).exit_code == 4


class LostReply(MockExecutor):
    """The first launch takes effect, but its reply is lost."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lose = 1

    def launch(self, job: JobSpec) -> Execution:
        execution = super().launch(job)
        if self.lose:
            self.lose -= 1
            raise TransientExecutorError("connection reset", executor=self.name, job_id=job.job_id)
        return execution


def test_a_lost_launch_reply_is_settled_without_a_second_workload(clock: ManualClock) -> None:
    mock = LostReply(clock=clock, remove_on_harvest=False)
    spec = job(labels={"mock.stdout": "once"})
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        result = runner.submit(spec).result(10)
    assert result.state is JobState.SUCCEEDED
    assert [e.job_id for e in mock.list_managed()] == [spec.job_id]
    details = [e.detail for e in mock.calls("launch")]
    assert len(details) == 2
    assert details[1] == "existing"


class LostThenDown(LostReply):
    """The first launch takes effect and its reply is lost; then health fails a while."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failing_probes = 0

    def launch(self, job: JobSpec) -> Execution:
        if self.lose:
            self.failing_probes = 3
        return super().launch(job)

    def health(self) -> Health:
        if self.failing_probes:
            self.failing_probes -= 1
            self.events.append(MockEvent("health", detail="failing"))
            return Health(healthy=False, latency=0.0, detail="daemon restarting", version="mock")
        return super().health()


def test_an_unknown_launch_is_asked_again_only_where_it_may_have_run(clock: ManualClock) -> None:
    first, spare = LostThenDown(name="first", clock=clock), MockExecutor(name="spare", clock=clock)
    router = Router(
        {"first": {"instance": first}, "spare": {"instance": spare}},
        default="first",
        fallback=["spare"],
        unhealthy_wait=0,  # any other job would go to the spare at once
        health_ttl=1,
        clock=clock,
        retry=RetryPolicy(attempts=1),
    )
    spec = job(labels={"mock.stdout": "once"})
    with router, Runner(router, clock=clock) as runner:
        result = runner.submit(spec).result(10)
    assert result.state is JobState.SUCCEEDED
    assert result.execution.executor == "first"
    assert result.logs.stdout == "once"
    assert spare.calls("launch") == []  # never a second workload elsewhere
    assert [e.detail for e in first.calls("health")].count("failing") == 3
    assert [e.detail for e in first.calls("launch")][-1] == "existing"


def test_launch_only_on_one_executor(clock: ManualClock) -> None:
    down = MockExecutor(name="down", clock=clock, healthy=False)
    spare = MockExecutor(name="spare", clock=clock)
    router = Router(
        {"down": {"instance": down}, "spare": {"instance": spare}},
        default="spare",
        unhealthy_wait=0,
        clock=clock,
    )
    with router:
        with pytest.raises(NoExecutorAvailableError) as info:
            router.launch(job(), only="down")
        assert info.value.retry_after is not None
        assert 0 < info.value.retry_after <= 30
        assert spare.calls("launch") == []
        down.healthy = True
        clock.advance(31)
        execution = router.launch(job(), only="down")
        assert execution.executor == "down"
        with pytest.raises(ExecutorNotFoundError):
            router.launch(job(), only="nowhere")


# -- retries -----------------------------------------------------------------------------


def fails_until(attempt: int) -> Any:
    def behave(spec: JobSpec) -> MockOutcome:
        tries = 1 if ".retry-" not in spec.job_id else int(spec.job_id.rsplit("-", 1)[1])
        return MockOutcome(exit_code=0 if tries >= attempt else 7)

    return behave


def test_failed_jobs_are_relaunched_under_derived_ids(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, behavior=fails_until(3))
    launches = Launches()
    spec = job(max_retries=2)
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        router.hooks.register(launches)
        result = runner.submit(spec).result(10)
    assert result.succeeded
    assert result.attempts == 3
    assert result.job == spec
    assert launches.seen == [spec.job_id, f"{spec.job_id}.retry-2", f"{spec.job_id}.retry-3"]


def test_retries_stop_at_max_retries_and_skip_cancelled(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, behavior=fails_until(10))
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        result = runner.submit(job(max_retries=1)).result(10)
    plain = MockExecutor(clock=clock)
    with router_for(plain, clock) as router, Runner(router, clock=clock) as runner:
        endless = runner.submit(job(max_retries=3, labels={"mock.duration": FOREVER}))
        endless.wait_launched(10)
        endless.cancel()
        cancelled = endless.result(10)
    assert (result.state, result.attempts) == (JobState.FAILED, 2)
    assert (cancelled.state, cancelled.attempts) == (JobState.CANCELLED, 1)


class PlatformRetries(MockExecutor):
    def capabilities(self) -> Capabilities:
        return Capabilities(list_managed=True, platform_retries=True)


def test_backends_with_platform_retries_are_not_relaunched(clock: ManualClock) -> None:
    mock = PlatformRetries(clock=clock, behavior=fails_until(10))
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        result = runner.submit(job(max_retries=3)).result(10)
    assert (result.state, result.attempts) == (JobState.FAILED, 1)
    assert len(mock.calls("launch")) == 1


# -- limits, owners, budget --------------------------------------------------------------


def test_max_running_limits_jobs_across_executors(clock: ManualClock) -> None:
    peak = 0
    lock = threading.Lock()
    running: set[str] = set()

    class Watch:
        @hookimpl
        def job_launched(self, job: JobSpec, execution: Execution) -> None:
            nonlocal peak
            with lock:
                running.add(execution.execution_id)
                peak = max(peak, len(running))

        @hookimpl
        def job_finished(self, execution: Execution, result: JobResult) -> None:
            with lock:
                running.discard(execution.execution_id)

    one, two = MockExecutor("one", clock=clock), MockExecutor("two", clock=clock)
    router = Router(
        {"one": {"instance": one}, "two": {"instance": two}},
        rules=[{"condition": "name == 'b'", "executor": "two"}],
        default="one",
        clock=clock,
    )
    router.hooks.register(Watch())
    jobs = [job(name="a" if i % 2 else "b", labels={"mock.duration": "30"}) for i in range(10)]
    with router, Runner(router, clock=clock, max_workers=8, max_running=2) as runner:
        results = runner.run(jobs)
    assert all(r.succeeded for r in results)
    assert peak == 2
    assert {r.execution.executor for r in results} == {"one", "two"}


def test_reconcile_adopts_only_its_owners_workloads(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    with router_for(mock, clock) as router:
        alice = Runner(router, clock=clock, owner="alice")
        mine = alice.submit(job(labels={"mock.duration": FOREVER}))
        execution = mine.wait_launched(10)
        assert execution is not None
        assert mock.labels_of(execution)["jobrelay.owner"] == "alice"
        bob = Runner(router, clock=clock, owner="bob")
        assert bob.reconcile() == []
        assert alice.reconcile() == []  # already held
        everything = bob.reconcile(all_owners=True)
        assert [h.execution.execution_id for h in everything if h.execution] == [
            execution.execution_id
        ]
        bob.shutdown(wait=True, cancel=True)
        alice.shutdown(wait=True, cancel=True)


def test_budget_stops_launching_at_the_right_job(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, cost_per_hour=Decimal(1), currency="EUR")
    jobs = [job(timeout=1800, labels={"mock.duration": "1800"}) for _ in range(4)]
    seen: list[Progress] = []
    with router_for(mock, clock) as router:
        runner = Runner(router, clock=clock, max_workers=1, budget="1.2 EUR", progress=seen.append)
        results = runner.run(jobs)
        runner.shutdown()
    states = [r.state for r in results]
    assert states == [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED, JobState.FAILED]
    assert "budget exhausted" in str(results[2].status.reason)
    assert len(mock.calls("launch")) == 2
    assert seen[-1].spent == Cost(Decimal(1), "EUR", Decimal(0), "runner")


def test_launches_that_fail_give_their_reservation_back(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, cost_per_hour=Decimal(1), currency="EUR")
    refused = [job(timeout=1800, labels={"mock.fail-launch": "no room"}) for _ in range(3)]
    with router_for(mock, clock) as router:
        runner = Runner(router, clock=clock, max_workers=1, budget="1 EUR")
        assert [r.state for r in runner.run(refused)] == [JobState.FAILED] * 3
        assert runner.progress().spent == Cost(Decimal(0), "EUR", Decimal(0), "runner")
        [result] = runner.run([job(timeout=1800)])  # the whole budget is still there
        runner.shutdown()
    assert result.state is JobState.SUCCEEDED


class Refuses(MockExecutor):
    def launch(self, job: JobSpec) -> Execution:
        raise LaunchError("no capacity in this zone", executor=self.name, job_id=job.job_id)


def test_a_job_priced_on_one_executor_and_launched_on_another_holds_the_real_estimate(
    clock: ManualClock,
) -> None:
    cheap = Refuses(name="cheap", clock=clock, cost_per_hour=Decimal("0.2"), currency="EUR")
    dear = MockExecutor(name="dear", clock=clock, cost_per_hour=Decimal(1), currency="EUR")
    router = Router(
        {"cheap": {"instance": cheap}, "dear": {"instance": dear}},
        default="cheap",
        fallback=["dear"],
        clock=clock,
        retry=RetryPolicy(attempts=1),
    )
    with router:
        runner = Runner(router, clock=clock, budget="1 EUR")
        handle = runner.submit(job(timeout=1800, labels={"mock.duration": FOREVER}))
        execution = handle.wait_launched(10)
        assert execution is not None
        assert execution.executor == "dear"
        # Reserved at dear's price (0.5 EUR for its half-hour timeout), not cheap's 0.1.
        assert runner.progress().spent == Cost(Decimal("0.5"), "EUR", Decimal(0), "runner")
        runner.shutdown(cancel=True)


def test_budget_in_another_currency_is_a_config_error(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, cost_per_hour=1, currency="USD")
    with router_for(mock, clock) as router, Runner(router, clock=clock, budget="5 EUR") as runner:
        handle = runner.submit(job(timeout=60))
        with pytest.raises(ConfigError, match="currencies are never added"):
            handle.result(10)
    with pytest.raises(ConfigError, match="budget"):
        Runner(router, budget="five euros")


# -- callbacks, asyncio ------------------------------------------------------------------


def test_progress_callback_runs_outside_the_runners_lock(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    answered: list[bool] = []

    def callback(_: Progress) -> None:
        # Another thread must be able to ask the Runner for its counts meanwhile.
        worker = threading.Thread(target=runner.progress)
        worker.start()
        worker.join(2)
        answered.append(not worker.is_alive())

    with router_for(mock, clock) as router:
        runner = Runner(router, clock=clock, progress=callback)
        runner.run([job(), job()])
        runner.shutdown()
    assert answered
    assert all(answered)


def test_handles_are_awaitable(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)

    async def main() -> list[JobResult]:
        async with Runner(router_for(mock, clock), clock=clock) as runner:
            handles = [runner.submit(job(labels={"mock.exit-code": str(i)})) for i in range(3)]
            first = await handles[0]
            rest = await asyncio.gather(*handles[1:])
            done = [await item for item in asyncio.as_completed(handles)]
            assert len(done) == 3
            return [first, *rest]

    results = asyncio.run(main())
    assert [r.exit_code for r in results] == [0, 1, 2]


def test_cancelled_before_launch_has_a_result_in_run(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    with router_for(mock, clock, max_concurrent=1) as router:
        runner = Runner(router, clock=clock, max_workers=1)
        first = runner.submit(job(labels={"mock.duration": FOREVER}))
        queued = runner.submit(job())
        first.wait_launched(10)
        assert queued.cancel()
        with pytest.raises(cf.CancelledError):
            queued.result(1)
        runner.shutdown(wait=True, cancel=True)
    assert queued.status().state is JobState.CANCELLED


def test_launch_hooks_run_in_the_submitters_context(clock: ManualClock) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    seen: list[str] = []

    class Seen:
        @hookimpl
        def job_launched(self, job: JobSpec, execution: Execution) -> None:
            seen.append(request_id.get())

    mock = MockExecutor(clock=clock)
    with router_for(mock, clock) as router, Runner(router, clock=clock) as runner:
        router.hooks.register(Seen())
        request_id.set("req-42")
        runner.submit(job()).result(10)
        request_id.set("req-43")
        runner.submit(job()).result(10)
    assert seen == ["req-42", "req-43"]
