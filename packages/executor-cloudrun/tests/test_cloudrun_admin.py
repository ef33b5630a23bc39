"""Cancel, cleanup, list_managed and Runner.reconcile(), health; what is not ours stays."""

from __future__ import annotations

import pytest
from google.auth.credentials import AnonymousCredentials

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import Execution, JobSpec, JobState, Router, Runner
from jobrelay.labels import OWNER, default_owner
from jobrelay_cloudrun import CloudRunExecutor


def _launch(executor: CloudRunExecutor, job_id: str, **fields: object) -> Execution:
    return executor.launch(JobSpec("busybox", "true", job_id=job_id, **fields))


def test_cleanup_deletes_the_job_and_is_idempotent(
    executor: CloudRunExecutor, fake: FakeGCP
) -> None:
    execution = _launch(executor, "cleaned")
    fake.finish(execution.execution_id, 0)
    executor.cleanup(execution)
    assert fake.jobs == {}
    executor.cleanup(execution)
    assert fake.count("run.jobs.delete") == 1
    # Its final status was seen before: still known. Never seen: gone is LOST.
    assert executor.status(execution).state is JobState.SUCCEEDED


def test_harvest_cleans_up_per_policy(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    deleting = make_executor()
    keeping = make_executor(delete_jobs=False)
    first = _launch(deleting, "harvest-deleting")
    second = _launch(keeping, "harvest-keeping")
    for execution in (first, second):
        fake.finish(execution.execution_id, 0, stdout=["ok"])
    assert deleting.harvest(first).logs.stdout == "ok\n"
    assert keeping.harvest(second).logs.stdout == "ok\n"
    assert list(fake.jobs) == [second.metadata["job"]]
    keeping.cleanup(second)  # delete_jobs=False: cleanup keeps the job too
    assert list(fake.jobs) == [second.metadata["job"]]


def test_cleanup_of_a_running_execution_cancels_it_first(
    executor: CloudRunExecutor, fake: FakeGCP
) -> None:
    execution = _launch(executor, "still-running")
    fake.start_execution(execution.execution_id)
    executor.cleanup(execution)
    assert fake.count("run.executions.cancel") == 1
    assert fake.jobs == {}


def test_a_failed_launch_leaves_nothing_behind(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    fake.fail("run.jobs.create", 403, grpc_status="PERMISSION_DENIED")
    with pytest.raises(Exception, match="HTTP 403"):
        _launch(executor, "denied")
    assert fake.jobs == {}
    assert fake.executions == {}


def test_unmanaged_job_is_untouched(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    foreign = fake.create_foreign_job("someone-elses")
    (foreign_execution,) = [name for name in fake.executions if name.startswith(foreign)]
    execution = Execution(
        "cloudrun",
        foreign_execution,
        "someone-elses",
        _launch(executor, "mine").launched_at,
    )
    executor.cleanup(execution)
    assert foreign in fake.jobs
    assert fake.count("run.jobs.delete") == 0
    listed = executor.list_managed()
    assert [e.job_id for e in listed] == ["mine"]


def test_list_managed_returns_exact_ids_owners_and_sizes(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    ours = make_executor()
    other = make_executor(name="cloudrun-eu")
    odd = _launch(ours, "Report_2024.Q1", labels={OWNER: "Build Host.local"})
    plain = _launch(ours, "plain", resources={"cpu": 2, "memory": "3Gi"})
    _launch(other, "other-executor")
    listed = {execution.job_id: execution for execution in ours.list_managed()}
    assert set(listed) == {"Report_2024.Q1", "plain"}
    assert listed["Report_2024.Q1"].execution_id == odd.execution_id
    assert listed["Report_2024.Q1"].metadata["owner"] == "Build Host.local"
    assert listed["plain"].metadata["owner"] == default_owner()
    assert listed["plain"].execution_id == plain.execution_id
    assert (listed["plain"].metadata["cpu"], listed["plain"].metadata["memory_mb"]) == (2, 3072)
    assert listed["plain"].launched_at.tzinfo is not None
    assert fake.job(odd.metadata["job"])["labels"]["jobrelay-owner"] == "build_host-local"


def test_list_managed_pages_through_every_job(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    for index in range(120):
        fake.create_foreign_job(f"foreign-{index:03d}")
    _launch(executor, "needle")
    fake.clear()
    assert [e.job_id for e in executor.list_managed()] == ["needle"]
    assert dict(fake.calls) == {"run.jobs.list": 2}


def test_runner_reconcile_adopts_only_its_owners_executions(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    crashed = make_executor()
    mine = [
        _launch(crashed, "left-ok", labels={OWNER: "host-a"}),
        _launch(crashed, "left-failed", labels={OWNER: "host-a"}),
    ]
    theirs = _launch(crashed, "other-owner", labels={OWNER: "host-b"})
    foreign = fake.create_foreign_job("not-jobrelay")
    fake.finish(mine[0].execution_id, 0, stdout=["done"])
    fake.finish(mine[1].execution_id, 5, stderr=["boom"])

    fresh = make_executor()
    with Runner(Router({"cloudrun": fresh}), owner="host-a", poll_interval=0.05) as runner:
        handles = runner.reconcile()
        results = {handle.job_id: handle.result(timeout=20) for handle in handles}
    assert set(results) == {"left-ok", "left-failed"}
    assert results["left-ok"].state is JobState.SUCCEEDED
    assert results["left-ok"].logs.stdout == "done\n"
    assert results["left-failed"].state is JobState.FAILED
    assert results["left-failed"].exit_code == 5
    assert results["left-failed"].logs.stderr == "boom\n"
    assert set(fake.jobs) == {theirs.metadata["job"], foreign}


def test_health(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    health = make_executor().health()
    assert health.healthy
    assert health.latency is not None
    assert health.latency >= 0
    fake.fail("run.jobs.list", 403, grpc_status="PERMISSION_DENIED", message="no run.jobs.list")
    denied = make_executor().health()
    assert not denied.healthy
    assert "no run.jobs.list" in denied.detail


def test_health_of_an_unreachable_endpoint_never_raises() -> None:
    executor = CloudRunExecutor(
        "jobrelay-test",
        "europe-west1",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        api_endpoint="http://127.0.0.1:9",
        logging_endpoint="http://127.0.0.1:9",
    )
    with executor:
        health = executor.health()
    assert not health.healthy
    assert "ConnectionError" in health.detail


def test_capabilities(executor: CloudRunExecutor) -> None:
    caps = executor.capabilities()
    assert caps.log_split
    assert caps.platform_retries
    assert caps.cost_estimate
    assert caps.list_managed
    assert (caps.max_cpu, caps.max_memory_mb, caps.max_gpu) == (8.0, 32768, 0)
