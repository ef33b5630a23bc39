"""Statuses: state and reason decide, never the exit code alone; sweeps list, not get."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from scaleway.jobs.v1alpha2.marshalling import unmarshal_JobRun  # type: ignore[import-untyped, unused-ignore]

from fake_scaleway import FakeScaleway
from jobrelay import Execution, JobSpec, JobState
from jobrelay_scaleway import ScalewayExecutor
from jobrelay_scaleway._status import run_status


def _launch(executor: ScalewayExecutor, **overrides: Any) -> Execution:
    return executor.launch(JobSpec("busybox", "true", **overrides))


@pytest.mark.parametrize("code", [0, 3])
def test_exit_codes(executor: ScalewayExecutor, fake: FakeScaleway, code: int) -> None:
    execution = _launch(executor)
    fake.set_state(execution.execution_id, "running")
    assert executor.status(execution).state is JobState.RUNNING
    fake.finish(execution.execution_id, code)
    status = executor.status(execution)
    assert status.state is (JobState.SUCCEEDED if code == 0 else JobState.FAILED)
    assert status.exit_code == code
    assert status.started_at is not None
    assert status.finished_at is not None


def test_failed_run_without_exit_code_is_failed(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = _launch(executor)
    fake.fail(execution.execution_id, "image_not_found", "image busybox not found")
    assert "exit_code" not in fake.run(execution.execution_id)
    status = executor.status(execution)
    assert status.state is JobState.FAILED
    assert status.exit_code is None  # the SDK says 0; the run never exited
    assert status.reason == "image_not_found: image busybox not found"
    result = executor.harvest(execution)
    assert not result.succeeded


def test_timeout_reason_is_timed_out(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = _launch(executor)
    fake.fail(execution.execution_id, "timeout", "job run exceeded its timeout")
    status = executor.status(execution)
    assert status.state is JobState.TIMED_OUT
    assert status.reason is not None
    assert status.reason.startswith("timeout")


def test_cancel_is_cancelled_and_idempotent(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = _launch(executor)
    fake.set_state(execution.execution_id, "running")
    executor.cancel(execution)
    assert fake.calls["StopJobRun"] == 1
    assert executor.status(execution).state is JobState.RUNNING  # interrupting
    assert executor.status(execution).state is JobState.CANCELLED
    executor.cancel(execution)
    executor.cleanup(execution)
    assert fake.calls["StopJobRun"] == 1
    assert executor.harvest(execution).state is JobState.CANCELLED


@pytest.mark.parametrize(
    ("state", "reason", "exit_code", "expected", "code"),
    [
        ("succeeded", None, None, JobState.SUCCEEDED, 0),
        ("failed", "exited_with_error", 137, JobState.FAILED, 137),
        ("failed", "memory_usage_exceeded", None, JobState.FAILED, None),
        ("failed", "quota_exceeded", None, JobState.FAILED, None),
        ("interrupted", "cancellation", None, JobState.CANCELLED, None),
        ("interrupted", "timeout", None, JobState.TIMED_OUT, None),
        ("retrying", "exited_with_error", 1, JobState.RUNNING, None),
        ("queued", None, None, JobState.PENDING, None),
        ("validated", None, None, JobState.PENDING, None),
    ],
)
def test_state_table(
    state: str, reason: str | None, exit_code: int | None, expected: JobState, code: int | None
) -> None:
    payload: dict[str, Any] = {"id": str(uuid.uuid4()), "state": state}
    if reason:
        payload["reason"] = reason
    if exit_code is not None:
        payload["exit_code"] = exit_code
    status = run_status(unmarshal_JobRun(payload))
    assert status.state is expected
    assert status.exit_code == code


def test_naive_times_become_utc() -> None:
    run = SimpleNamespace(
        state="succeeded",
        reason="unknown_reason",
        error_message=None,
        exit_code=0,
        started_at=datetime(2026, 1, 1, 12, 0),  # noqa: DTZ001 - what a naive answer looks like
        terminated_at=datetime(2026, 1, 1, 12, 5),  # noqa: DTZ001
    )
    status = run_status(run)
    assert status.started_at is not None
    assert status.started_at.tzinfo is timezone.utc


def test_unknown_run_is_lost(executor: ScalewayExecutor) -> None:
    execution = _launch(executor)
    ghost = Execution(
        executor="scaleway",
        execution_id=str(uuid.uuid4()),
        job_id="ghost",
        launched_at=execution.launched_at,
        metadata=dict(execution.metadata),
    )
    assert executor.status(ghost).state is JobState.LOST
    assert executor.statuses([ghost, execution])[ghost.execution_id].state is JobState.LOST


@pytest.mark.parametrize("count", [100])
def test_statuses_of_100_runs_and_the_calls_it_took(
    executor: ScalewayExecutor, fake: FakeScaleway, count: int
) -> None:
    executions = [_launch(executor) for _ in range(count)]
    for index, execution in enumerate(executions):
        if index % 3 == 0:
            fake.finish(execution.execution_id, index % 2)
        elif index % 3 == 1:
            fake.set_state(execution.execution_id, "running")
    fake.calls.clear()
    sweep = executor.statuses(executions)
    assert executor.sweep_calls == math.ceil(count / 100) == fake.calls["ListJobRuns"]
    assert fake.calls["GetJobRun"] == 0
    for index, execution in enumerate(executions):
        expected = executor.status(execution)
        assert sweep[execution.execution_id] == expected
        if index % 3 == 1:
            assert expected.state is JobState.RUNNING


def test_statuses_pages_through_other_runs(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    mine = [_launch(executor) for _ in range(3)]
    foreign = fake.add_definition()
    theirs = [fake.start_run(foreign["id"]) for _ in range(150)]
    other = Execution(
        executor="scaleway",
        execution_id=theirs[0],
        job_id="theirs",
        launched_at=mine[-1].launched_at,
        metadata={"job_definition_id": foreign["id"]},
    )
    fake.calls.clear()
    sweep = executor.statuses([*mine, other])
    assert {status.state for status in sweep.values()} == {JobState.PENDING}
    # Two definitions: listed project-wide, newest first, back to the oldest asked about.
    assert fake.calls["ListJobRuns"] == 2
    assert fake.calls["GetJobRun"] == 0
    assert executor.sweep_calls == 2


def test_statuses_falls_back_to_get_for_runs_not_listed(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = _launch(executor)
    future = Execution(
        executor="scaleway",
        execution_id=execution.execution_id,
        job_id=execution.job_id,
        launched_at=datetime(2100, 1, 1, tzinfo=timezone.utc),  # listing stops before it
        metadata=dict(execution.metadata),
    )
    fake.calls.clear()
    assert executor.statuses([future])[execution.execution_id].state is JobState.PENDING
    assert fake.calls["GetJobRun"] == 1


def test_statuses_empty_and_non_uuid_need_no_call(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    assert executor.statuses([]) == {}
    odd = Execution("scaleway", "not-a-run", "j", datetime.now(timezone.utc))
    assert executor.statuses([odd])["not-a-run"].state is JobState.LOST
    assert sum(fake.calls.values()) == 0


def test_statuses_retry_a_503(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = _launch(executor)
    fake.inject("ListJobRuns", status=503)
    assert executor.statuses([execution])[execution.execution_id].state is JobState.PENDING
    assert fake.calls["ListJobRuns"] == 3  # the launch's look, the 503, its retry
