"""Identity without labels: list_managed, cleanup and prune touch only jobrelay's own."""

from __future__ import annotations

import json
import logging

import pytest

from conftest import MakeExecutor
from fake_scaleway import FakeScaleway
from jobrelay import JobSpec, JobState, LaunchError
from jobrelay_scaleway import ScalewayExecutor


def test_list_managed_returns_exact_job_ids(executor: ScalewayExecutor) -> None:
    ids = ["Nightly.Run_2026-12-01.A", "a" * 128, "x-1"]
    launched = {executor.launch(JobSpec("busybox", "true", job_id=job_id)).job_id for job_id in ids}
    executor.launch(JobSpec("busybox", "true", job_id="bigger", resources={"cpu": 2}))
    managed = executor.list_managed()
    assert {e.job_id for e in managed} == {*launched, "bigger"}
    assert all(e.executor == "scaleway" for e in managed)
    assert len(managed) == 4


def test_unmanaged_definition_and_run_untouched(
    make_executor: MakeExecutor, fake: FakeScaleway
) -> None:
    executor = make_executor()
    foreign = fake.add_definition(name="jobrelay-lookalike", description="hand made")
    posing = fake.add_definition(
        name="jobrelay-0000000000000000",
        description=json.dumps({"jobrelay.managed": "false", "jobrelay.executor": "scaleway"}),
    )
    foreign_run = fake.start_run(
        foreign["id"],
        {"JOBRELAY_LABELS": json.dumps({"jobrelay.managed": "true", "jobrelay.job-id": "x"})},
    )
    fake.start_run(posing["id"])
    fake.set_state(foreign_run, "running")
    mine = executor.launch(JobSpec("busybox", "true", job_id="mine"))
    fake.finish(mine.execution_id, 0)
    other_executor = make_executor(name="elsewhere")
    theirs = other_executor.launch(JobSpec("busybox", "true", job_id="theirs"))
    assert [e.job_id for e in executor.list_managed()] == ["mine"]
    assert [e.job_id for e in other_executor.list_managed()] == ["theirs"]
    pruned = executor.prune_definitions()
    assert pruned == [mine.metadata["job_definition_id"]]
    assert foreign["id"] in fake.definitions
    assert posing["id"] in fake.definitions
    assert theirs.metadata["job_definition_id"] in fake.definitions
    assert fake.run(foreign_run)["state"] == "running"
    assert fake.calls["StopJobRun"] == 0
    assert fake.calls["DeleteJobDefinition"] == 1


def test_prune_keeps_definitions_with_active_runs(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    running = executor.launch(JobSpec("busybox", "sleep 60"))
    fake.set_state(running.execution_id, "running")
    assert executor.prune_definitions() == []
    fake.finish(running.execution_id, 0)
    assert executor.prune_definitions() == [running.metadata["job_definition_id"]]
    again = executor.launch(JobSpec("busybox", "echo again"))
    assert again.metadata["job_definition_id"] in fake.definitions


def test_cleanup_stops_only_the_run(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    first = executor.launch(JobSpec("busybox", "sleep 60"))
    second = executor.launch(JobSpec("busybox", "sleep 61"))
    fake.set_state(first.execution_id, "running")
    fake.set_state(second.execution_id, "running")
    executor.cleanup(first)
    executor.cleanup(first)
    assert fake.calls["StopJobRun"] == 1
    assert fake.run(second.execution_id)["state"] == "running"
    assert len(fake.definitions) == 1  # shared with the second job: kept


def test_secrets_never_reach_the_sdk_logger(
    executor: ScalewayExecutor, fake: FakeScaleway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("scaleway").setLevel(logging.DEBUG)
    try:
        job = JobSpec("busybox", "true", secrets={"API_TOKEN": "tok-Zq9-very-secret"})
        execution = executor.launch(job)
        fake.inject(
            "GetJobRun",
            status=400,
            body={"message": "bad env tok-Zq9-very-secret", "type": "invalid_arguments"},
        )
        with pytest.raises(Exception, match=r"\*\*\*"):
            executor.status(execution)
        executor.status(execution)
    finally:
        logging.getLogger("scaleway").setLevel(logging.NOTSET)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records  # the HTTP lines were logged...
    assert "tok-Zq9-very-secret" not in text  # ...without bodies
    assert "11111111-2222-4333-8444-555555555555" not in text


def test_identity_env_cannot_be_overridden_by_the_job(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = executor.launch(
        JobSpec(
            "busybox",
            "true",
            job_id="honest",
            env={"JOBRELAY_LABELS": json.dumps({"jobrelay.managed": "false"})},
        )
    )
    labels = json.loads(
        fake.run(execution.execution_id)["environment_variables"]["JOBRELAY_LABELS"]
    )
    assert labels["jobrelay.managed"] == "true"
    assert labels["jobrelay.job-id"] == "honest"


def test_launch_failure_leaves_no_run(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    fake.inject(
        "StartJobDefinition", status=400, body={"message": "bad", "type": "invalid_arguments"}
    )
    with pytest.raises(LaunchError):
        executor.launch(JobSpec("busybox", "true"))
    assert fake.runs == {}
    assert executor.list_managed() == []


def test_harvest_of_lost_run_is_lost(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    fake.runs.clear()
    result = executor.harvest(execution)
    assert result.state is JobState.LOST
    assert not result.succeeded
