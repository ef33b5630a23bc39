"""The Runner on the mock executor, on simulated time (fast, deterministic outcomes)."""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from jobrelay import (
    Execution,
    ExecutorError,
    JobSpec,
    JobState,
    JobStatus,
    ManualClock,
    NoExecutorAvailableError,
    Progress,
    Router,
    Runner,
    hookimpl,
    set_testing,
)
from jobrelay_mock import MockExecutor, MockOutcome


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


# Simulated time runs as fast as the monitor loops, so a job a test must catch while
# it runs lasts "forever" (about four months of simulated time).
FOREVER = "10000000"


def job(**labels: str) -> JobSpec:
    timeout = labels.pop("timeout", None)
    return JobSpec(
        "busybox",
        labels={f"mock.{key.replace('_', '-')}": value for key, value in labels.items()},
        timeout=float(timeout) if timeout else None,
    )


def make_router(clock: ManualClock, **executors: Any) -> Router:
    entries = {
        name: {"instance": value} if isinstance(value, MockExecutor) else value
        for name, value in executors.items()
    }
    return Router(entries, default=next(iter(entries)), clock=clock)


class Recorder:
    """Hook plugin that records transitions and concurrency."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, Any]] = []
        self.active = 0
        self.peak = 0

    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.events.append(("launched", execution.execution_id, job.job_id))

    @hookimpl
    def job_status_changed(self, execution: Execution, old: Any, new: JobState) -> None:
        with self.lock:
            self.events.append(("changed", execution.execution_id, (old, new)))

    @hookimpl
    def job_finished(self, execution: Execution, result: Any) -> None:
        with self.lock:
            self.active -= 1
            self.events.append(("finished", execution.execution_id, result.state))


def test_run_returns_results_in_submission_order(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    jobs = [
        job(exit_code="0", duration="30", stdout="a"),
        job(exit_code="2", duration="1"),
        job(exit_code="0", duration="5", stdout="c"),
    ]
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        results = runner.run(jobs)
    assert [r.execution.job_id for r in results] == [j.job_id for j in jobs]
    assert [(r.state, r.exit_code) for r in results] == [
        (JobState.SUCCEEDED, 0),
        (JobState.FAILED, 2),
        (JobState.SUCCEEDED, 0),
    ]
    assert results[0].logs.stdout == "a"


def test_max_concurrent_queues_instead_of_failing(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    recorder = Recorder()
    with make_router(clock, mock={"instance": mock, "max_concurrent": 2}) as router:
        router.hooks.register(recorder)
        with Runner(router, clock=clock, max_workers=8) as runner:
            results = runner.run([job(duration="10") for _ in range(7)])
    assert all(r.state is JobState.SUCCEEDED for r in results)
    assert recorder.peak <= 2
    assert len(mock.calls("launch")) == 7


def test_fallback_after_launch_failure(clock: ManualClock) -> None:
    broken = MockExecutor(
        "broken", clock=clock, behavior=lambda _: MockOutcome(launch_error="no capacity in zone")
    )
    spare = MockExecutor("spare", clock=clock)
    router = Router(
        {"broken": {"instance": broken}, "spare": {"instance": spare}},
        default="broken",
        fallback=["spare"],
        clock=clock,
    )
    with router, Runner(router, clock=clock) as runner:
        result = runner.submit(job()).result(10)
    assert result.state is JobState.SUCCEEDED
    assert result.execution.executor == "spare"
    hops = result.execution.metadata["jobrelay.route"]["hops"]
    assert [name for name, _ in hops] == ["broken", "spare"]


def test_launch_failure_everywhere_lands_on_the_handle(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        handle = runner.submit(job(fail_launch="image not found"))
        with pytest.raises(NoExecutorAvailableError, match="image not found"):
            handle.result(10)
    assert handle.status().state is JobState.FAILED


def test_transient_errors_are_retried(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        result = runner.submit(job(transient_failures="2")).result(10)
    assert result.state is JobState.SUCCEEDED
    assert [e.detail for e in mock.calls("launch")] == ["transient", "transient", ""]


def test_timeout_counts_from_start_not_submission(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    # 60 s pending (image pull), then 8 s of running: well inside a 10 s timeout.
    slow_start = job(pending="60", duration="8", timeout="10", stdout="fine")
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        result = runner.submit(slow_start).result(10)
    assert result.state is JobState.SUCCEEDED
    assert result.logs.stdout == "fine"


def test_timeout_cancels_and_keeps_logs(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    endless = job(duration="3600", timeout="10", stdout="partial output")
    recorder = Recorder()
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        router.hooks.register(recorder)
        handle = runner.submit(endless)
        result = handle.result(10)
    changes = [detail for kind, _, detail in recorder.events if kind == "changed"]
    assert changes[-1] == (JobState.RUNNING, JobState.TIMED_OUT)
    assert handle.status().state is JobState.TIMED_OUT
    assert result.state is JobState.TIMED_OUT
    assert result.status.reason == "timed out after 10.0s"
    assert result.logs.stdout == "partial output"
    assert len(mock.calls("cancel")) == 1
    assert result.duration is not None
    assert 10 <= result.duration < 3600
    # Removal is the executor's harvest policy; the Runner never cleans up on top.
    assert not mock.calls("cleanup")
    assert mock.status(result.execution).state is JobState.LOST


def test_finished_job_seen_late_keeps_its_result(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    # Sweeps back off to 30 s: the job ends at 9 s but is first seen done at ~12.8 s,
    # past its 10 s deadline. It finished in time, so it is not TIMED_OUT.
    late = job(duration="9", timeout="10", exit_code="5", stderr="real error")
    with (
        make_router(clock, mock=mock) as router,
        Runner(router, clock=clock, poll_interval=30) as runner,
    ):
        result = runner.submit(late).result(10)
    assert result.state is JobState.FAILED
    assert result.exit_code == 5
    assert result.logs.stderr == "real error"
    assert mock.calls("cancel") == []


def test_cancel_running_job(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        handle = runner.submit(job(duration=FOREVER))
        handle.wait_launched(10)
        assert handle.cancel()
        result = handle.result(10)
        assert not handle.cancel()
    assert result.state is JobState.CANCELLED
    assert not mock.calls("cleanup")
    assert len(mock.calls("harvest")) == 1


def test_cancel_queued_job_never_launches(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    # One launch worker: launches happen in submission order.
    with (
        make_router(clock, mock={"instance": mock, "max_concurrent": 1}) as router,
        Runner(router, clock=clock, max_workers=1) as runner,
    ):
        first = runner.submit(job(duration=FOREVER))
        second = runner.submit(job(duration=FOREVER))
        first.wait_launched(10)
        assert second.cancel()
        assert first.cancel()
        assert first.result(10).state is JobState.CANCELLED
    with pytest.raises(cf.CancelledError):
        second.result(0)
    assert second.status().state is JobState.CANCELLED
    assert [e.job_id for e in mock.calls("launch")] == [first.job_id]


def test_shutdown_without_cancel_finishes_everything(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    router = make_router(clock, mock={"instance": mock, "max_concurrent": 2})
    runner = Runner(router, clock=clock)
    handles = [runner.submit(job(duration="50")) for _ in range(5)]
    runner.shutdown(wait=True)
    assert all(h.result(0).state is JobState.SUCCEEDED for h in handles)
    with pytest.raises(Exception, match="shut down"):
        runner.submit(job())


def test_shutdown_with_cancel_stops_running_and_drops_queued(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    router = make_router(clock, mock={"instance": mock, "max_concurrent": 2})
    runner = Runner(router, clock=clock, max_workers=1)  # launches in submission order
    handles = [runner.submit(job(duration=FOREVER)) for _ in range(4)]
    handles[0].wait_launched(10)
    handles[1].wait_launched(10)
    runner.shutdown(wait=True, cancel=True)
    assert all(h.done() for h in handles)
    launched = [h for h in handles if h.execution is not None]
    assert {h.result(0).state for h in launched} == {JobState.CANCELLED}
    for h in handles:
        if h.execution is None:
            with pytest.raises(cf.CancelledError):
                h.result(0)
    assert len(mock.calls("harvest")) == len(launched)
    assert not mock.calls("cleanup")
    assert router.in_flight("mock") == 0


def test_every_terminal_job_is_harvested_and_retention_is_the_executors(
    clock: ManualClock,
) -> None:
    mock = MockExecutor(clock=clock, remove_on_harvest=False)
    jobs = [job(), job(exit_code="1"), job(lost="true"), job(duration="99", timeout="5")]
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        handles = [runner.submit(j) for j in jobs]
        states = [h.result(10).state for h in handles]
    assert states == [JobState.SUCCEEDED, JobState.FAILED, JobState.LOST, JobState.TIMED_OUT]
    harvested = {e.execution_id for e in mock.calls("harvest")}
    every = {h.execution.execution_id for h in handles if h.execution}
    assert harvested == every
    # remove_on_harvest=False: the Runner keeps its hands off what the executor keeps.
    assert not mock.calls("cleanup")
    kept = [h.execution for h in handles if h.execution and h.status().state is not JobState.LOST]
    assert kept
    assert all(
        mock.status(e).state.is_terminal and mock.status(e).state is not JobState.LOST for e in kept
    )
    assert router.in_flight("mock") == 0


def test_hooks_fire_on_each_transition(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    recorder = Recorder()
    with make_router(clock, mock=mock) as router:
        router.hooks.register(recorder)
        with Runner(router, clock=clock) as runner:
            result = runner.submit(job(duration="5", pending="2")).result(10)
    eid = result.execution.execution_id
    kinds = [(kind, detail) for kind, e, detail in recorder.events if e == eid]
    assert kinds[0] == ("launched", result.execution.job_id)
    changes = [detail for kind, detail in kinds if kind == "changed"]
    assert changes == [
        (None, JobState.PENDING),
        (JobState.PENDING, JobState.RUNNING),
        (JobState.RUNNING, JobState.SUCCEEDED),
    ]
    assert kinds[-1] == ("finished", JobState.SUCCEEDED)


class BrokenHarvest(MockExecutor):
    """A backend that loses the output of finished jobs."""

    def harvest(self, execution: Execution) -> Any:
        raise ExecutorError("log store unreachable", executor=self.name)


def test_harvest_failure_reaches_the_handle_and_frees_everything(clock: ManualClock) -> None:
    mock = BrokenHarvest(clock=clock)
    with (
        make_router(clock, mock={"instance": mock, "max_concurrent": 1}) as router,
        Runner(router, clock=clock) as runner,
    ):
        first = runner.submit(job(exit_code="4"))
        with pytest.raises(ExecutorError, match="log store unreachable"):
            first.result(10)
        status = first.status()
        assert (status.state, status.exit_code) == (JobState.FAILED, 4)
        assert status.reason == (
            "harvest failed, workload left for reconcile: log store unreachable"
        )
        # The slot was released; the workload is left in place for reconcile.
        second = runner.submit(job())
        with pytest.raises(ExecutorError):
            second.result(10)
    assert not mock.calls("cleanup")
    assert first.execution is not None
    assert mock.status(first.execution).state is JobState.FAILED
    assert router.in_flight("mock") == 0


def test_a_raising_hook_never_breaks_a_job(clock: ManualClock) -> None:
    class Broken:
        @hookimpl
        def job_finished(self, execution: Execution, result: Any) -> None:
            raise RuntimeError("metrics backend down")

    mock = MockExecutor(clock=clock)
    with make_router(clock, mock=mock) as router:
        router.hooks.register(Broken())
        with Runner(router, clock=clock) as runner:
            assert runner.submit(job()).result(10).succeeded


def test_progress_callback_counts(clock: ManualClock) -> None:
    seen: list[Progress] = []
    mock = MockExecutor(clock=clock)
    with (
        make_router(clock, mock=mock) as router,
        Runner(router, clock=clock, progress=seen.append) as runner,
    ):
        runner.run([job(), job(exit_code="1"), job(duration="3", timeout="1")])
    final = seen[-1]
    assert (final.succeeded, final.failed, final.timed_out, final.queued, final.running) == (
        1,
        1,
        1,
        0,
        0,
    )
    assert final.finished == 3


def test_statuses_polled_in_one_batch_per_executor(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    with make_router(clock, mock=mock) as router, Runner(router, clock=clock) as runner:
        runner.run([job(duration="20") for _ in range(25)])
    assert mock.calls("status") == []
    sweeps = len(mock.calls("statuses"))
    assert 0 < sweeps < 60  # backoff from 50 ms to 1 s over 20 s of simulated time


class SlowStatuses(MockExecutor):
    """A backend whose status calls take real time (a slow API)."""

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        time.sleep(0.02)
        return super().statuses(executions)


def test_no_job_launched_twice_when_statuses_are_slow(clock: ManualClock) -> None:
    mock = SlowStatuses(clock=clock)
    jobs = [job(duration="3") for _ in range(30)]
    with (
        make_router(clock, mock={"instance": mock, "max_concurrent": 5}) as router,
        Runner(router, clock=clock, max_workers=8) as runner,
    ):
        results = runner.run(jobs)
    assert all(r.succeeded for r in results)
    launches = [str(e.job_id) for e in mock.calls("launch")]
    assert sorted(launches) == sorted(j.job_id for j in jobs)


def test_reconcile_finishes_what_a_crashed_process_left(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    # The "crashed" process: launched through a router, then vanished without a Runner.
    crashed = make_router(clock, mock=mock)
    orphans = [crashed.launch(job(duration="40", stdout=f"orphan {i}")) for i in range(3)]
    finished_orphan = crashed.launch(job(exit_code="7"))
    router = make_router(clock, mock=mock)
    with router, Runner(router, clock=clock) as runner:
        handles = runner.reconcile()
        assert {h.execution.execution_id for h in handles if h.execution} == {
            e.execution_id for e in [*orphans, finished_orphan]
        }
        results = {h.execution.execution_id: h.result(10) for h in handles if h.execution}
        assert runner.reconcile() == []  # already tracked or gone: nothing twice
    assert results[finished_orphan.execution_id].exit_code == 7
    for i, orphan in enumerate(orphans):
        assert results[orphan.execution_id].state is JobState.SUCCEEDED
        assert results[orphan.execution_id].logs.stdout == f"orphan {i}"
    assert mock.list_managed() == []


def test_invalid_arguments(clock: ManualClock) -> None:
    router = make_router(clock, mock=MockExecutor(clock=clock))
    with pytest.raises(Exception, match="max_workers"):
        Runner(router, max_workers=0)
    with pytest.raises(Exception, match="poll_interval"):
        Runner(router, poll_interval=0)


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)
