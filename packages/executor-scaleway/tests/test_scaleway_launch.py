"""Launching: one run per job id, definitions reused, errors sorted, deadlines kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from conftest import MakeExecutor
from fake_scaleway import FakeScaleway
from jobrelay import (
    Execution,
    ExecutorError,
    JobSpec,
    LaunchError,
    RetryPolicy,
    TransientExecutorError,
)
from jobrelay_scaleway import ScalewayExecutor


def _runs_of(fake: FakeScaleway, job_id: str) -> list[str]:
    return [
        run_id
        for run_id, run in fake.runs.items()
        if f'"jobrelay.job-id":"{job_id}"' in run.data["environment_variables"]["JOBRELAY_LABELS"]
    ]


def test_same_job_id_twice_is_one_run(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    job = JobSpec("busybox", "sleep 60", job_id="once")
    first = make_executor().launch(job)
    # A second process: nothing remembered, so it must find the run through the API.
    second = make_executor().launch(job)
    assert second.execution_id == first.execution_id
    assert second.job_id == "once"
    assert _runs_of(fake, "once") == [first.execution_id]
    assert fake.calls["StartJobDefinition"] == 1


def test_lost_reply_is_one_run(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    fake.inject("StartJobDefinition", lose_reply=True)
    execution = executor.launch(JobSpec("busybox", "sleep 60", job_id="lost-reply"))
    assert fake.calls["StartJobDefinition"] == 1  # the retry found the run first
    assert _runs_of(fake, "lost-reply") == [execution.execution_id]


def test_concurrent_launches_of_one_id_are_one_run(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    job = JobSpec("busybox", "sleep 60", job_id="racing")
    found: list[str] = []
    barrier = threading.Barrier(6)

    def launch() -> None:
        barrier.wait()
        found.append(executor.launch(job).execution_id)

    threads = [threading.Thread(target=launch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1
    assert len(_runs_of(fake, "racing")) == 1
    assert len(executor._job_locks) == 0  # no lock is kept once nobody launches the id


def test_definitions_are_reused_per_shape(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    for index in range(3):
        executor.launch(JobSpec("busybox", f"echo {index}", env={"I": str(index)}))
    executor.launch(JobSpec("busybox", "echo big", resources={"cpu": 2}))
    assert fake.calls["CreateJobDefinition"] == 2
    assert len(fake.definitions) == 2
    assert fake.calls["ListJobDefinitions"] == 2  # once per shape, then remembered
    assert fake.calls["StartJobDefinition"] == 4


def test_existing_definition_is_found_by_another_process(
    make_executor: MakeExecutor, fake: FakeScaleway
) -> None:
    make_executor().launch(JobSpec("busybox", "echo a"))
    make_executor().launch(JobSpec("busybox", "echo b"))
    assert fake.calls["CreateJobDefinition"] == 1
    assert len(fake.definitions) == 1


def test_pruned_definition_is_made_again(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    executor.launch(JobSpec("busybox", "echo a"))
    fake.definitions.clear()
    execution = executor.launch(JobSpec("busybox", "echo b"))
    assert fake.calls["CreateJobDefinition"] == 2
    assert execution.metadata["job_definition_id"] in fake.definitions


def test_503_is_retried(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    fake.inject(
        "StartJobDefinition", status=503, body={"message": "unavailable", "type": "unavailable"}
    )
    execution = executor.launch(JobSpec("busybox", "true", job_id="after-503"))
    assert fake.calls["StartJobDefinition"] == 2
    assert _runs_of(fake, "after-503") == [execution.execution_id]


def test_503_that_persists_is_transient(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    executor = make_executor(retry=RetryPolicy(attempts=3))
    fake.inject("StartJobDefinition", status=503, times=10)
    with pytest.raises(TransientExecutorError, match="HTTP 503"):
        executor.launch(JobSpec("busybox", "true"))
    assert fake.calls["StartJobDefinition"] == 3


def test_403_is_not_retried(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    fake.inject(
        "StartJobDefinition",
        status=403,
        body={
            "message": "insufficient permissions",
            "type": "permissions_denied",
            "details": [{"resource": "job_definition", "action": "start"}],
        },
    )
    with pytest.raises(LaunchError) as caught:
        executor.launch(JobSpec("busybox", "true", job_id="denied", secrets={"K": "v4lue"}))
    assert not isinstance(caught.value, TransientExecutorError)
    assert "HTTP 403 permissions_denied insufficient permissions" in str(caught.value)
    assert caught.value.job_id == "denied"
    assert fake.calls["StartJobDefinition"] == 1
    assert fake.runs == {}


def test_quota_error_is_a_launch_error_with_scaleway_message(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    fake.inject(
        "CreateJobDefinition",
        status=403,
        body={
            "message": "quota(s) exceeded for this resource",
            "type": "quotas_exceeded",
            "details": [{"resource": "job_definitions", "quota": 1000, "current": 1000}],
        },
    )
    with pytest.raises(LaunchError, match="quotas_exceeded quota") as caught:
        executor.launch(JobSpec("busybox", "true"))
    assert '"quota": 1000' in str(caught.value)
    assert fake.calls["CreateJobDefinition"] == 1
    assert fake.definitions == {}


def test_secret_echoed_by_scaleway_is_masked(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    fake.inject(
        "StartJobDefinition",
        status=400,
        body={"message": "invalid environment value 'hunter2-secret'", "type": "invalid_arguments"},
    )
    with pytest.raises(LaunchError) as caught:
        executor.launch(JobSpec("busybox", "true", secrets={"PASSWORD": "hunter2-secret"}))
    assert "hunter2-secret" not in str(caught.value)
    assert "***" in str(caught.value)
    assert caught.value.__cause__ is None


def test_error_with_empty_body_is_not_success(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.inject("GetJobRun", status=502, empty_body=True, times=10)
    with pytest.raises(TransientExecutorError, match="HTTP 502 with an empty body"):
        executor.status(execution)


def test_success_status_with_empty_body_is_not_success(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.inject("GetJobRun", status=200, empty_body=True, times=10)
    with pytest.raises(TransientExecutorError, match="empty body"):
        executor.status(execution)


def test_stalled_call_ends_within_its_deadline(
    make_executor: MakeExecutor, fake: FakeScaleway
) -> None:
    executor = make_executor(timeout=0.5, retry=RetryPolicy(attempts=1))
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.inject("GetJobRun", stall=30)
    started = time.monotonic()
    with pytest.raises(TransientExecutorError, match="Timeout"):
        executor.status(execution)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("action", "work"),
    [
        ("ListJobRuns", lambda ex, e: ex.statuses([e])),
        ("StopJobRun", lambda ex, e: ex.cancel(e)),
        ("LokiQueryRange", lambda ex, e: ex.logs(e)),
        ("ListDataSources", lambda ex, e: ex.logs(e)),
        ("CreateJobDefinition", lambda ex, _e: ex.launch(JobSpec("alpine", "true"))),
        ("StartJobDefinition", lambda ex, _e: ex.launch(JobSpec("busybox", "true"))),
    ],
)
def test_every_call_has_a_deadline(
    make_executor: MakeExecutor,
    fake: FakeScaleway,
    action: str,
    work: Callable[[ScalewayExecutor, Execution], object],
) -> None:
    executor = make_executor(timeout=0.5, retry=RetryPolicy(attempts=1), logs_url=None)
    execution = executor.launch(JobSpec("busybox", "sleep 60", job_id="deadline"))
    fake.inject(action, stall=30)
    started = time.monotonic()
    with pytest.raises(TransientExecutorError, match="Timeout"):
        work(executor, execution)
    assert time.monotonic() - started < 3


def test_health_is_short_and_reports_bad_credentials(
    make_executor: MakeExecutor, fake: FakeScaleway
) -> None:
    healthy = make_executor().health()
    assert healthy.healthy, healthy.detail
    wrong = make_executor(secret_key="99999999-2222-4333-8444-555555555555").health()
    assert not wrong.healthy
    assert "HTTP 401 denied_authentication" in wrong.detail
    assert "99999999-2222" not in wrong.detail
    stalled = make_executor(health_timeout=0.3)
    fake.inject("ListJobDefinitions", stall=30)
    started = time.monotonic()
    assert not stalled.health().healthy
    assert time.monotonic() - started < 3


def test_unknown_run_id_status_error_is_executor_error(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.inject("GetJobRun", status=403, body={"message": "no", "type": "permissions_denied"})
    with pytest.raises(ExecutorError) as caught:
        executor.status(execution)
    assert not isinstance(caught.value, (LaunchError, TransientExecutorError))
    assert fake.calls["GetJobRun"] == 1
