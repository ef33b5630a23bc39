"""Status: the Execution mapped to jobrelay states, and sweeps in few Admin API reads."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import Execution, JobSpec, JobState
from jobrelay_cloudrun import CloudRunExecutor


def _launch(executor: CloudRunExecutor, job_id: str) -> Execution:
    return executor.launch(JobSpec("busybox", "true", job_id=job_id))


def test_pending_running_succeeded(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "lifecycle")
    assert executor.status(execution).state is JobState.PENDING
    fake.start_execution(execution.execution_id)
    running = executor.status(execution)
    assert running.state is JobState.RUNNING
    assert running.started_at is not None
    fake.finish(execution.execution_id, 0)
    done = executor.status(execution)
    assert done.state is JobState.SUCCEEDED
    assert done.exit_code == 0
    assert done.finished_at is not None
    assert done.started_at is not None
    assert done.finished_at >= done.started_at


def test_failed_carries_the_tasks_exit_code_and_reason(
    executor: CloudRunExecutor, fake: FakeGCP
) -> None:
    execution = _launch(executor, "failing")
    fake.finish(execution.execution_id, 3)
    fake.clear()
    status = executor.status(execution)
    assert status.state is JobState.FAILED
    assert status.exit_code == 3
    assert status.reason == "Task jobrelay-failing-0 failed."
    assert fake.count("run.tasks.list") == 1
    # Finished executions cannot change: asked again, nothing is read.
    fake.clear()
    assert executor.status(execution) == status
    assert fake.count() == 0


def test_killed_by_a_signal(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "killed")
    fake.finish(execution.execution_id, signal=9)
    status = executor.status(execution)
    assert status.state is JobState.FAILED
    assert status.exit_code == 137
    assert status.reason == "killed by signal 9"


def test_task_timeout_is_timed_out(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "slow")
    fake.finish(execution.execution_id, timed_out=True)
    assert executor.status(execution).state is JobState.TIMED_OUT


def test_cancelled_is_never_succeeded(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "cancelled")
    fake.start_execution(execution.execution_id)
    executor.cancel(execution)
    status = executor.status(execution)
    assert status.state is JobState.CANCELLED
    assert status.exit_code is None
    executor.cancel(execution)  # idempotent: the fake refuses cancelling a finished one
    assert fake.count("run.executions.cancel") == 1


def test_gone_execution_is_lost_after_the_grace(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    executor = make_executor(missing_grace=30.0)
    execution = _launch(executor, "vanishing")
    fake.world.delete_job(execution.metadata["job"])
    young = executor.status(execution)
    assert young.state is JobState.PENDING  # just launched: maybe not visible yet
    old = Execution(
        executor=execution.executor,
        execution_id=execution.execution_id,
        job_id=execution.job_id,
        launched_at=execution.launched_at - timedelta(minutes=5),
    )
    lost = executor.status(old)
    assert lost.state is JobState.LOST
    assert executor.harvest(old).status.state is JobState.LOST


def test_150_executions_in_two_list_calls(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    executions = [_launch(executor, f"many-{index:03d}") for index in range(150)]
    fake.clear()
    first = executor.statuses(executions)
    assert {s.state for s in first.values()} == {JobState.PENDING}
    # 150 executions, 100 per page (the fake's cap): two ListExecutions across jobs.
    assert dict(fake.calls) == {"run.executions.list": 2}
    assert {c.path.rsplit("/jobs/", 1)[1] for c in fake.requests} == {"-/executions"}

    for execution in executions[:50]:
        fake.finish(execution.execution_id, 0)
    for execution in executions[50:100]:
        fake.finish(execution.execution_id, 4)
    for execution in executions[100:]:
        fake.start_execution(execution.execution_id)
    fake.clear()
    second = executor.statuses(executions)
    states = [second[e.execution_id].state for e in executions]
    assert states == [JobState.SUCCEEDED] * 50 + [JobState.FAILED] * 50 + [JobState.RUNNING] * 50
    assert {second[e.execution_id].exit_code for e in executions[50:100]} == {4}
    # Two pages, plus one ListTasks per newly failed execution for its exit code.
    assert dict(fake.calls) == {"run.executions.list": 2, "run.tasks.list": 50}

    fake.clear()
    third = executor.statuses(executions)
    assert third == second
    assert dict(fake.calls) == {"run.executions.list": 2}  # finished ones are remembered


def test_few_executions_are_read_one_by_one(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    executions = [_launch(executor, f"few-{index}") for index in range(3)]
    fake.clear()
    executor.status(executions[0])
    assert dict(fake.calls) == {"run.executions.get": 1}
    fake.clear()
    executor.statuses(executions)  # more than one page's worth of reads: list instead
    assert dict(fake.calls) == {"run.executions.list": 1}


def test_a_read_429_is_retried(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    execution = _launch(executor, "throttled-read")
    fake.fail("run.executions.get", 429, grpc_status="RESOURCE_EXHAUSTED")
    assert executor.status(execution).state is JobState.PENDING
    assert fake.count("run.executions.get") == 2


@pytest.mark.parametrize("execution_id", ["", "jobrelay-x", "projects/p/locations/r/jobs/j"])
def test_ids_that_are_not_executions_are_lost_without_a_call(
    executor: CloudRunExecutor, fake: FakeGCP, execution_id: str
) -> None:
    execution = Execution(
        "cloudrun", execution_id or "x", "job", _launch(executor, "t").launched_at
    )
    fake.clear()
    assert executor.status(execution).state is JobState.LOST
    assert fake.count() == 0
