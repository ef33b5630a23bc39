"""The mock executor's own behaviours, beyond the conformance kit."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from jobrelay import (
    ConfigError,
    Execution,
    JobResult,
    JobSpec,
    JobState,
    LaunchError,
    ManualClock,
    RetryPolicy,
    SpecError,
    TransientExecutorError,
    get_executor,
    is_testing,
    set_testing,
)
from jobrelay_mock import MockEvent, MockExecutor, MockOutcome, outcome_from_labels

T0 = 1_700_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def executor(clock: ManualClock) -> Iterator[MockExecutor]:
    with MockExecutor(clock=clock) as mock:
        yield mock


def job(labels: dict[str, str] | None = None, **kwargs: Any) -> JobSpec:
    return JobSpec("busybox", labels=labels or {}, **kwargs)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, timezone.utc)


# -- outcomes ----------------------------------------------------------------------------


def test_default_is_success(executor: MockExecutor) -> None:
    spec = job()
    execution = executor.launch(spec)
    assert execution.executor == "mock"
    assert execution.job_id == spec.job_id
    assert execution.launched_at == at(0)
    status = executor.status(execution)
    assert (status.state, status.exit_code) == (JobState.SUCCEEDED, 0)
    result = executor.harvest(execution)
    assert result.succeeded
    assert (result.exit_code, result.logs.stdout, result.logs.stderr) == (0, "", "")
    assert result.duration == 0.0
    assert result.cost is not None
    assert (result.cost.amount, result.cost.currency) == (Decimal(0), "USD")


def test_behavior_callable(clock: ManualClock) -> None:
    seen: list[str] = []

    def behavior(spec: JobSpec) -> MockOutcome:
        seen.append(spec.name)
        return MockOutcome(exit_code=7, stdout=f"hello {spec.name}\n", stderr="warn\n")

    executor = MockExecutor(behavior=behavior, clock=clock)
    spec = job(name="greeter", labels={"mock.exit-code": "0"})  # behavior wins over labels
    execution = executor.launch(spec)
    assert executor.launch(spec) == execution  # idempotent: behavior not asked again
    assert seen == ["greeter"]
    result = executor.harvest(execution)
    assert (result.state, result.exit_code) == (JobState.FAILED, 7)
    assert result.status.reason == "exit code 7"
    assert (result.logs.stdout, result.logs.stderr) == ("hello greeter\n", "warn\n")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"mock.exit-code": "3"}, MockOutcome(exit_code=3)),
        ({"mock.stdout": "a\nb\n"}, MockOutcome(stdout="a\nb\n")),
        ({"mock.stderr": "oops\n"}, MockOutcome(stderr="oops\n")),
        ({"mock.duration": "90.5"}, MockOutcome(duration=90.5)),
        ({"mock.pending": "4"}, MockOutcome(pending=4)),
        ({"mock.fail-launch": "quota"}, MockOutcome(launch_error="quota")),
        ({"mock.transient-failures": "2"}, MockOutcome(transient_failures=2)),
        ({"mock.lost": "true"}, MockOutcome(lost=True)),
        ({"mock.lost": "false"}, MockOutcome()),
        ({"team": "data"}, MockOutcome()),
    ],
)
def test_outcome_from_labels(labels: dict[str, str], expected: MockOutcome) -> None:
    assert outcome_from_labels(job(labels)) == expected


@pytest.mark.parametrize(
    "labels",
    [
        {"mock.exit-code": "three"},
        {"mock.exit-code": "1.5"},
        {"mock.duration": "soon"},
        {"mock.duration": "-1"},
        {"mock.duration": "nan"},
        {"mock.duration": "inf"},
        {"mock.pending": "-2"},
        {"mock.transient-failures": "-1"},
        {"mock.transient-failures": "x"},
    ],
)
def test_bad_mock_label(executor: MockExecutor, labels: dict[str, str]) -> None:
    spec = job(labels)
    with pytest.raises(SpecError) as info:
        executor.launch(spec)
    assert info.value.field == "labels"
    assert "mock." in str(info.value)
    assert executor.list_managed() == []


@pytest.mark.parametrize(
    ("labels", "field", "needle"),
    [
        ({"mock.exit_code": "3"}, "labels['mock.exit_code']", "unknown mock label"),
        ({"mock.stdot": "x"}, "labels['mock.stdot']", "mock.stdout"),
        ({"mock.lost": "maybe"}, "labels['mock.lost']", "true or false"),
    ],
)
def test_misspelt_or_unclear_mock_label_is_refused(
    executor: MockExecutor, labels: dict[str, str], field: str, needle: str
) -> None:
    with pytest.raises(SpecError) as info:
        executor.launch(job(labels))
    assert info.value.field == field
    assert needle in str(info.value)
    assert executor.list_managed() == []


def test_labels_outside_mock_namespace_are_free(executor: MockExecutor) -> None:
    execution = executor.launch(job({"team": "data", "mockery": "yes"}))
    assert executor.harvest(execution).succeeded


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration": -1},
        {"duration": float("nan")},
        {"duration": float("inf")},
        {"duration": "5"},
        {"pending": -0.5},
        {"transient_failures": -1},
        {"transient_failures": 1.0},
    ],
)
def test_outcome_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        MockOutcome(**kwargs)


def test_labels_drive_the_whole_run(executor: MockExecutor, clock: ManualClock) -> None:
    labels = {"mock.exit-code": "2", "mock.stdout": "o\n", "mock.stderr": "e\n"}
    result = executor.harvest(executor.launch(job({**labels, "mock.duration": "30"})))
    assert (result.state, result.exit_code, result.duration) == (JobState.FAILED, 2, 30.0)
    assert (result.logs.stdout, result.logs.stderr) == ("o\n", "e\n")
    assert clock.time() == T0 + 30


# -- launch failures ------------------------------------------------------------------------


def test_transient_failures_then_success(executor: MockExecutor) -> None:
    spec = job({"mock.transient-failures": "2"})
    for attempt in (1, 2):
        with pytest.raises(TransientExecutorError, match=f"{attempt}/2") as info:
            executor.launch(spec)
        assert (info.value.executor, info.value.job_id) == ("mock", spec.job_id)
        assert executor.list_managed() == []
    execution = executor.launch(spec)
    assert executor.status(execution).state is JobState.SUCCEEDED
    assert [e.detail for e in executor.calls("launch")] == ["transient", "transient", ""]


def test_transient_failures_under_a_retry_policy(executor: MockExecutor) -> None:
    before = is_testing()
    set_testing(True)
    try:
        spec = job({"mock.transient-failures": "3"})
        execution = RetryPolicy(attempts=4).call(executor.launch, spec)
    finally:
        set_testing(before)
    assert len(executor.calls("launch")) == 4
    assert executor.harvest(execution).succeeded


def test_launch_error_leaves_nothing(executor: MockExecutor) -> None:
    spec = job({"mock.fail-launch": "image not allowed"})
    for _ in range(2):  # permanent: the same answer every time
        with pytest.raises(LaunchError, match="image not allowed") as info:
            executor.launch(spec)
        assert not isinstance(info.value, TransientExecutorError)
        assert (info.value.executor, info.value.job_id) == ("mock", spec.job_id)
    assert executor.list_managed() == []
    assert executor.events == [
        MockEvent("launch", spec.job_id, None, "error"),
        MockEvent("launch", spec.job_id, None, "error"),
        MockEvent("list_managed"),
    ]
    assert executor.launch(job()).execution_id == "mock-1"  # no id was spent


def test_lost(executor: MockExecutor) -> None:
    execution = executor.launch(job({"mock.lost": "yes", "mock.stdout": "x\n"}))
    assert executor.status(execution).state is JobState.LOST
    assert executor.statuses([execution])[execution.execution_id].state is JobState.LOST
    assert executor.logs(execution).stdout == ""
    assert list(executor.stream_logs(execution)) == []
    result = executor.harvest(execution)
    assert result.state is JobState.LOST
    assert not result.succeeded
    assert executor.list_managed() == []


# -- switches -------------------------------------------------------------------------------


def test_capacity_switch(executor: MockExecutor, clock: ManualClock) -> None:
    executor.capacity = 2
    first = executor.launch(job({"mock.duration": "10"}))
    second_spec = job({"mock.duration": "20"})
    second = executor.launch(second_spec)
    third_spec = job({"mock.duration": "5"})
    with pytest.raises(LaunchError, match="capacity") as info:
        executor.launch(third_spec)
    assert info.value.executor == "mock"
    assert executor.launch(second_spec) == second  # a known job is not a new one
    assert len(executor.list_managed()) == 2
    clock.advance(10)  # the first job ends: room for one more
    third = executor.launch(third_spec)
    with pytest.raises(LaunchError, match="capacity"):
        executor.launch(job())
    executor.cancel(second)  # a cancelled job frees its slot too
    fourth = executor.launch(job({"mock.duration": "1"}))
    executor.capacity = None
    extra = [executor.launch(job({"mock.duration": "100"})) for _ in range(5)]
    assert len({e.execution_id for e in [first, second, third, fourth, *extra]}) == 9


def test_health_switch(executor: MockExecutor) -> None:
    assert executor.health().healthy
    executor.healthy = False
    health = executor.health()
    assert not health.healthy
    assert health.detail
    executor.healthy = True
    assert executor.health().healthy
    assert len(executor.calls("health")) == 3
    assert not MockExecutor(healthy=False).health().healthy


# -- simulated time ---------------------------------------------------------------------------


def test_duration_on_a_manual_clock(executor: MockExecutor, clock: ManualClock) -> None:
    execution = executor.launch(job({"mock.duration": "60"}))
    status = executor.status(execution)
    assert status.state is JobState.RUNNING
    assert (status.started_at, status.finished_at, status.exit_code) == (at(0), None, None)
    clock.advance(59.5)
    assert executor.status(execution).state is JobState.RUNNING
    clock.advance(0.5)
    done = executor.status(execution)
    assert (done.state, done.finished_at) == (JobState.SUCCEEDED, at(60))


def test_harvest_advances_to_the_end(executor: MockExecutor, clock: ManualClock) -> None:
    execution = executor.launch(job({"mock.duration": "3600", "mock.stdout": "done\n"}))
    clock.advance(100)
    result = executor.harvest(execution)
    assert clock.time() == T0 + 3600
    assert result.state is JobState.SUCCEEDED
    assert result.duration == 3600.0
    assert result.status.finished_at == at(3600)
    assert result.logs.stdout == "done\n"


def test_pending_before_running(executor: MockExecutor, clock: ManualClock) -> None:
    execution = executor.launch(job({"mock.pending": "5", "mock.duration": "10"}))
    assert executor.status(execution).state is JobState.PENDING
    clock.advance(5)
    status = executor.status(execution)
    assert (status.state, status.started_at) == (JobState.RUNNING, at(5))
    result = executor.harvest(execution)
    assert clock.time() == T0 + 15
    assert (result.state, result.duration) == (JobState.SUCCEEDED, 10.0)


def test_cancel_running(executor: MockExecutor, clock: ManualClock) -> None:
    execution = executor.launch(job({"mock.duration": "600"}))
    clock.advance(30)
    executor.cancel(execution)
    status = executor.status(execution)
    assert (status.state, status.finished_at, status.exit_code) == (
        JobState.CANCELLED,
        at(30),
        None,
    )
    clock.advance(1000)  # past the scripted end: still cancelled
    executor.cancel(execution)  # idempotent
    assert executor.status(execution).state is JobState.CANCELLED
    result = executor.harvest(execution)
    assert result.state is JobState.CANCELLED
    assert result.duration == 30.0
    assert clock.time() == T0 + 1030  # harvest of a cancelled job does not wait


def test_cancel_pending(executor: MockExecutor) -> None:
    execution = executor.launch(job({"mock.pending": "60", "mock.duration": "60"}))
    executor.cancel(execution)
    status = executor.status(execution)
    assert (status.state, status.started_at) == (JobState.CANCELLED, None)
    assert executor.harvest(execution).state is JobState.CANCELLED


def test_cancel_finished_is_harmless(executor: MockExecutor) -> None:
    execution = executor.launch(job({"mock.exit-code": "1"}))
    executor.cancel(execution)
    assert executor.status(execution).state is JobState.FAILED


def test_stream_logs_waits_for_the_end(executor: MockExecutor, clock: ManualClock) -> None:
    labels = {"mock.duration": "10", "mock.stdout": "a\nb\n", "mock.stderr": "c\n"}
    execution = executor.launch(job(labels))
    lines = [(line.stream, line.text) for line in executor.stream_logs(execution)]
    assert lines == [("stdout", "a"), ("stdout", "b"), ("stderr", "c")]
    assert clock.time() == T0 + 10


def test_stream_logs_stops_at_the_timeout_for_its_enforcer(clock: ManualClock) -> None:
    executor = MockExecutor(clock=clock)
    endless = JobSpec(
        "busybox", timeout=5, labels={"mock.duration": "3600", "mock.stdout": "partial\n"}
    )
    execution = executor.launch(endless)
    seen: list[float] = []

    def enforcer() -> None:  # what a Runner's sweep does at the deadline
        while clock.time() < T0 + 5:
            threading.Event().wait(0.01)
        seen.append(clock.time())
        executor.cancel(execution)

    thread = threading.Thread(target=enforcer)
    thread.start()
    lines = [line.text for line in executor.stream_logs(execution)]
    thread.join(5)
    assert seen == [T0 + 5]  # the stream did not jump past the timeout
    assert lines == ["partial"]
    status = executor.status(execution)
    assert status.state is JobState.CANCELLED
    assert status.finished_at == datetime.fromtimestamp(T0 + 5, timezone.utc)


def test_stream_logs_goes_on_when_nobody_enforces_the_timeout(
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("jobrelay_mock._executor.TIMEOUT_GRACE", 0.05)
    executor = MockExecutor(clock=clock)
    execution = executor.launch(
        JobSpec("busybox", timeout=5, labels={"mock.duration": "60", "mock.stdout": "all\n"})
    )
    assert [line.text for line in executor.stream_logs(execution)] == ["all"]
    assert clock.time() == T0 + 60
    assert executor.status(execution).state is JobState.SUCCEEDED


def test_logs_tail_and_unsplit(clock: ManualClock) -> None:
    labels = {"mock.stdout": "1\n2\n3\n", "mock.stderr": "x\ny\n"}
    split = MockExecutor(clock=clock)
    execution = split.launch(job(labels))
    assert split.logs(execution, tail=2).stdout == "2\n3\n"
    assert split.logs(execution, tail=1).stderr == "y\n"
    assert split.logs(execution, tail=0).stdout == ""
    unsplit = MockExecutor(clock=clock, log_split=False)
    merged = unsplit.launch(job(labels))
    assert unsplit.logs(merged).stdout == "1\n2\n3\nx\ny\n"
    assert unsplit.logs(merged).stderr == ""
    assert unsplit.harvest(merged).logs.stdout == "1\n2\n3\nx\ny\n"
    assert {line.stream for line in unsplit.stream_logs(merged)} <= {"stdout"}
    assert not unsplit.capabilities().log_split


# -- the event log ------------------------------------------------------------------------------


def test_event_log(executor: MockExecutor) -> None:
    a = executor.launch(job(job_id="job-a"))
    b = executor.launch(job({"mock.duration": "5"}, job_id="job-b"))
    executor.statuses([a, b])
    executor.status(a)
    executor.cancel(b)
    executor.harvest(b)
    executor.cleanup(a)
    executor.health()
    assert executor.events == [
        MockEvent("launch", "job-a", "mock-1"),
        MockEvent("launch", "job-b", "mock-2"),
        MockEvent("statuses"),  # one backend call for many executions
        MockEvent("status", "job-a", "mock-1"),
        MockEvent("cancel", "job-b", "mock-2"),
        MockEvent("harvest", "job-b", "mock-2"),
        MockEvent("cleanup", "job-a", "mock-1"),
        MockEvent("health"),
    ]
    assert executor.calls("launch") == executor.events[:2]


def test_statuses_is_one_call(executor: MockExecutor) -> None:
    executions = [executor.launch(job({"mock.duration": str(n)})) for n in range(50)]
    before = len(executor.events)
    statuses = executor.statuses(executions)
    assert len(executor.events) == before + 1
    assert set(statuses) == {e.execution_id for e in executions}
    assert statuses["mock-1"].state is JobState.SUCCEEDED  # duration 0
    assert statuses["mock-2"].state is JobState.RUNNING


def _scripted_run() -> tuple[list[MockEvent], list[str], list[JobResult]]:
    clock = ManualClock(T0)
    outcomes = iter([MockOutcome(duration=5, stdout="a\n"), MockOutcome(exit_code=4)])
    executor = MockExecutor("det", behavior=lambda _: next(outcomes), clock=clock)
    specs = [job(job_id=f"det-{n}") for n in range(2)]
    executions = [executor.launch(spec) for spec in specs]
    executor.statuses(executions)
    clock.advance(2)
    executor.status(executions[0])
    results = [executor.harvest(execution) for execution in executions]
    return executor.events, [e.execution_id for e in executions], results


def test_deterministic() -> None:
    first, second = _scripted_run(), _scripted_run()
    assert first == second
    assert first[1] == ["det-1", "det-2"]
    assert [r.state for r in first[2]] == [JobState.SUCCEEDED, JobState.FAILED]


# -- idempotency, cleanup and bookkeeping ------------------------------------------------------


def test_same_job_id_launches_once(executor: MockExecutor) -> None:
    spec = job({"mock.duration": "10"})
    first = executor.launch(spec)
    assert executor.launch(spec) == first
    assert executor.calls("launch")[-1].detail == "existing"
    assert [e.job_id for e in executor.list_managed()] == [spec.job_id]


def test_cleanup_forgets(executor: MockExecutor) -> None:
    spec = job({"mock.duration": "10"})
    execution = executor.launch(spec)
    executor.cleanup(execution)
    executor.cleanup(execution)  # idempotent
    assert executor.status(execution).state is JobState.LOST
    assert executor.labels_of(execution) == {}
    assert executor.list_managed() == []
    relaunched = executor.launch(spec)  # the backend forgot it: a new workload
    assert relaunched.execution_id != execution.execution_id


def test_harvest_removes_unless_told_not_to(clock: ManualClock) -> None:
    removing = MockExecutor(clock=clock)
    execution = removing.launch(job())
    assert removing.harvest(execution).succeeded
    assert removing.status(execution).state is JobState.LOST
    keeping = MockExecutor(clock=clock, remove_on_harvest=False)
    kept = keeping.launch(job())
    assert keeping.harvest(kept).succeeded
    assert keeping.status(kept).state is JobState.SUCCEEDED
    assert keeping.harvest(kept).succeeded


def test_workload_labels(executor: MockExecutor) -> None:
    spec = job({"team": "data"}, name="nightly")
    execution = executor.launch(spec)
    assert executor.labels_of(execution) == {
        "team": "data",
        "jobrelay.managed": "true",
        "jobrelay.job-id": spec.job_id,
        "jobrelay.job-name": "nightly",
        "jobrelay.executor": "mock",
        "jobrelay.owner": socket.gethostname(),
    }
    assert execution.metadata["owner"] == socket.gethostname()


def test_owner_label_of_a_runner_is_kept(executor: MockExecutor) -> None:
    spec = job({"jobrelay.owner": "worker-7"})
    execution = executor.launch(spec)
    assert executor.labels_of(execution)["jobrelay.owner"] == "worker-7"
    assert execution.metadata["owner"] == "worker-7"


def test_keep_failed_keeps_only_failed(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, keep_failed=True)
    failed = mock.launch(job({"mock.exit-code": "2"}))
    passed = mock.launch(job())
    assert mock.harvest(failed).state is JobState.FAILED
    assert mock.harvest(passed).succeeded
    assert mock.status(failed).state is JobState.FAILED
    assert mock.status(passed).state is JobState.LOST


def test_cost_per_hour_prices_the_run(clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock, cost_per_hour="0.36", currency="EUR")
    execution = mock.launch(job({"mock.duration": "600"}))
    result = mock.harvest(execution)
    assert result.cost is not None
    assert (result.cost.amount, result.cost.currency) == (Decimal("0.06"), "EUR")
    assert mock.estimate_cost(job(), 3600).amount == Decimal("0.36")
    with pytest.raises(ConfigError, match="cost_per_hour"):
        MockExecutor(cost_per_hour=0.5)  # type: ignore[arg-type]


def test_unknown_execution(executor: MockExecutor) -> None:
    unknown = Execution("mock", "mock-999", "nope", at(0))
    assert executor.status(unknown).state is JobState.LOST
    assert executor.harvest(unknown).state is JobState.LOST
    executor.cancel(unknown)
    executor.cleanup(unknown)


def test_concurrent_launches(executor: MockExecutor) -> None:
    shared = job({"mock.duration": "10"})
    specs = [job({"mock.duration": "10"}) for _ in range(200)]
    found: list[Execution] = []
    lock = threading.Lock()

    def launch(items: list[JobSpec]) -> None:
        for spec in items:
            execution = executor.launch(spec)
            with lock:
                found.append(execution)

    threads = [threading.Thread(target=launch, args=([*specs[n::4], shared],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({e.execution_id for e in found}) == 201
    assert len([e for e in found if e.job_id == shared.job_id]) == 4
    assert len({e.execution_id for e in found if e.job_id == shared.job_id}) == 1
    assert len(executor.list_managed()) == 201


def test_close_and_context_manager(clock: ManualClock) -> None:
    with MockExecutor(clock=clock) as executor:
        open_inside = not executor.closed
    assert open_inside
    assert executor.closed
    assert "MockExecutor" in repr(executor)


def test_registered_as_entry_point() -> None:
    executor = get_executor("mock", name="from-registry")
    assert isinstance(executor, MockExecutor)
    assert executor.launch(job()).executor == "from-registry"


def test_default_clock_is_manual() -> None:
    executor = MockExecutor()
    execution = executor.launch(job({"mock.duration": "86400"}))
    assert executor.harvest(execution).succeeded  # a simulated day, no real wait
    assert isinstance(executor.clock, ManualClock)
