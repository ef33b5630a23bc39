"""Status: ECS lifecycle mapping, exit codes, failures to start, batching, LOST, cancel."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fargate_fakes import MakeExecutor, MotoFargate, WireProxy
from jobrelay import Execution, JobSpec, JobState, ManualClock
from jobrelay_fargate import FargateExecutor
from jobrelay_fargate._status import task_status


def _job(**fields: Any) -> JobSpec:
    return JobSpec("busybox:1.36", ["sh", "-c", "exit 0"], **fields)


# -- the mapping, one DescribeTasks task at a time ----------------------------------------


@pytest.mark.parametrize(
    ("last_status", "state"),
    [
        ("PROVISIONING", JobState.PENDING),
        ("PENDING", JobState.PENDING),
        ("ACTIVATING", JobState.PENDING),
        ("RUNNING", JobState.RUNNING),
        ("DEACTIVATING", JobState.RUNNING),
        ("STOPPING", JobState.RUNNING),
        ("DEPROVISIONING", JobState.RUNNING),
    ],
)
def test_lifecycle_states_over_the_wire(
    executor: FargateExecutor, moto: MotoFargate, last_status: str, state: JobState
) -> None:
    execution = executor.launch(_job())
    moto.set_status(execution.execution_id, last_status)
    status = executor.status(execution)
    assert status.state is state
    assert not status.is_terminal


def test_exit_code_zero_succeeds_with_times(executor: FargateExecutor, moto: MotoFargate) -> None:
    execution = executor.launch(_job())
    moto.set_status(execution.execution_id, "RUNNING")
    moto.finish(execution.execution_id, 0)
    status = executor.status(execution)
    assert status.state is JobState.SUCCEEDED
    assert status.exit_code == 0
    assert status.reason is None
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.started_at.tzinfo is not None
    assert status.finished_at >= status.started_at


@pytest.mark.parametrize("code", [1, 3, 137])
def test_non_zero_exit_fails_with_aws_reason(
    executor: FargateExecutor, moto: MotoFargate, code: int
) -> None:
    execution = executor.launch(_job())
    moto.finish(execution.execution_id, code)
    result = executor.harvest(execution)
    assert result.status.state is JobState.FAILED
    assert result.status.exit_code == code
    assert result.status.reason == "Essential container in task exited"
    assert not result.succeeded


def test_stopped_without_exit_code_fails_never_hangs(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    execution = executor.launch(_job())
    moto.finish(execution.execution_id, None, reason="Task stopped by spot interruption")
    result = executor.harvest(execution)
    assert result.status.state is JobState.FAILED
    assert result.status.exit_code is None
    assert result.status.reason is not None
    assert "spot interruption" in result.status.reason


def test_task_failed_to_start_with_no_containers(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    execution = executor.launch(_job())
    reason = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
    moto.fail_to_start(execution.execution_id, reason)
    result = executor.harvest(execution)
    assert result.status.state is JobState.FAILED
    assert result.status.exit_code is None
    assert result.status.reason is not None
    assert "TaskFailedToStart" in result.status.reason
    assert "CannotPullContainerError" in result.status.reason


def test_task_failed_to_start_is_failed_before_it_reaches_stopped() -> None:
    status = task_status(
        {
            "lastStatus": "DEPROVISIONING",
            "desiredStatus": "STOPPED",
            "stopCode": "TaskFailedToStart",
            "stoppedReason": "ResourceInitializationError: unable to pull secrets",
            "containers": [],
        }
    )
    assert status.state is JobState.FAILED
    assert status.reason is not None
    assert "ResourceInitializationError" in status.reason


def test_unknown_ecs_status_keeps_polling() -> None:
    status = task_status({"lastStatus": "HIBERNATING", "containers": []})
    assert status.state is JobState.PENDING
    assert status.reason is not None
    assert "HIBERNATING" in status.reason


# -- batching -----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [250])
def test_statuses_of_many_in_ceil_n_over_100_calls(
    executor: FargateExecutor, moto: MotoFargate, proxy: WireProxy, count: int
) -> None:
    # one launch registers the task definition; moto's own API starts the rest, 10 a call
    first = executor.launch(_job(job_id="batch-0"))
    definition = first.metadata["task_definition_arn"]
    network = {
        "awsvpcConfiguration": {"subnets": [moto.subnet], "securityGroups": [moto.security_group]}
    }
    arns = [first.execution_id]
    while len(arns) < count:
        answer: Any = moto.ecs.run_task(
            cluster=moto.cluster,
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration=network,
            count=min(10, count - len(arns)),
        )
        arns += [task["taskArn"] for task in answer["tasks"]]
    now = datetime.now(timezone.utc)
    executions = [Execution("fargate", arn, f"batch-{i}", now) for i, arn in enumerate(arns)]
    for execution in executions[::2]:
        moto.finish(execution.execution_id, 0)
    proxy.clear()
    statuses = executor.statuses(executions)
    describe_calls = proxy.ops("DescribeTasks")
    assert len(describe_calls) == math.ceil(count / 100) == 3
    assert [len(call.body["tasks"]) for call in describe_calls] == [100, 100, 50]
    assert proxy.count() == 3
    assert set(statuses) == {e.execution_id for e in executions}
    states = [statuses[e.execution_id].state for e in executions]
    assert states[::2] == [JobState.SUCCEEDED] * (count // 2)
    assert states[1::2] == [JobState.RUNNING] * (count // 2)


def test_statuses_of_nothing_makes_no_call(executor: FargateExecutor, proxy: WireProxy) -> None:
    assert executor.statuses([]) == {}
    assert proxy.count() == 0


# -- missing tasks --------------------------------------------------------------------------


def test_missing_task_is_pending_within_grace_then_lost(
    make_executor: MakeExecutor, moto: MotoFargate
) -> None:
    clock = ManualClock(now=time.time())
    executor = make_executor(clock=clock, missing_grace=30)
    launched_at = datetime.fromtimestamp(clock.now, tz=timezone.utc)
    ghost = Execution(
        executor=executor.name,
        execution_id=f"arn:aws:ecs:us-east-1:123456789012:task/{moto.cluster}/{'0' * 32}",
        job_id="ghost",
        launched_at=launched_at,
    )
    early = executor.status(ghost)
    assert early.state is JobState.PENDING
    clock.advance(31)
    late = executor.status(ghost)
    assert late.state is JobState.LOST
    assert late.reason is not None
    assert moto.cluster in late.reason


def test_harvest_of_a_long_gone_task_is_lost(executor: FargateExecutor, moto: MotoFargate) -> None:
    ghost = Execution(
        executor=executor.name,
        execution_id=f"arn:aws:ecs:us-east-1:123456789012:task/{moto.cluster}/{'f' * 32}",
        job_id="ghost",
        launched_at=datetime.now(timezone.utc) - timedelta(hours=3),
    )
    result = executor.harvest(ghost)
    assert result.status.state is JobState.LOST
    assert not result.succeeded
    assert result.logs.stdout == ""


# -- cancel -------------------------------------------------------------------------------


def test_cancel_stops_with_a_jobrelay_reason_once(
    executor: FargateExecutor, proxy: WireProxy
) -> None:
    execution = executor.launch(_job())
    executor.cancel(execution)
    executor.cancel(execution)
    (stop,) = proxy.ops("StopTask")
    assert stop.body["task"] == execution.execution_id
    assert stop.body["reason"].startswith("jobrelay:")
    status = executor.status(execution)
    assert status.state is JobState.CANCELLED
    assert status.reason == stop.body["reason"]


def test_cancel_of_a_task_already_stopping_does_nothing(
    executor: FargateExecutor, moto: MotoFargate, proxy: WireProxy
) -> None:
    execution = executor.launch(_job())
    moto.task(execution.execution_id).desired_status = "STOPPED"
    executor.cancel(execution)
    assert proxy.count("StopTask") == 0


def test_cleanup_stops_a_task_still_running_and_is_idempotent(
    executor: FargateExecutor, moto: MotoFargate, proxy: WireProxy
) -> None:
    execution = executor.launch(_job())
    executor.cleanup(execution)
    executor.cleanup(execution)
    assert proxy.count("StopTask") == 1
    assert moto.task(execution.execution_id).last_status == "STOPPED"
