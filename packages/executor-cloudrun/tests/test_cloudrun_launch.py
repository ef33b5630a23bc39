"""Launch: the wire format of the created job, sizing, names, idempotency and errors."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import (
    ConfigError,
    JobSpec,
    LaunchError,
    Resources,
    RetryPolicy,
    TransientExecutorError,
)
from jobrelay_cloudrun import CloudRunExecutor, fit, google_label, google_labels, job_name
from jobrelay_cloudrun._names import MAX_JOB_NAME, execution_token

SECRET = "s3cr3t-Value/with+chars"


def _created(fake: FakeGCP) -> dict[str, Any]:
    (call,) = fake.calls_of("run.jobs.create")
    body: dict[str, Any] = call.body
    return body


def test_wire_format_of_the_created_job(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    job = JobSpec(
        "europe-docker.pkg.dev/p/r/app:1",
        ["python", "-m", "app", "--fast"],
        entrypoint=["/usr/bin/env"],
        env={"MODE": "batch"},
        secrets={"TOKEN": SECRET},
        resources=Resources(cpu=0.5, memory="600Mi"),
        timeout=90.5,
        labels={"team": "Data.Science"},
        name="Nightly Report",
        job_id="report-2024",
        working_dir="/srv",
    )
    execution = executor.launch(job)
    call = fake.calls_of("run.jobs.create")[0]
    assert call.query["jobId"] == "jobrelay-report-2024"
    body = _created(fake)
    assert body["startExecutionToken"] == execution_token("report-2024")
    assert body["labels"] == {
        "team": "data-science",
        "jobrelay-managed": "true",
        "jobrelay-job-id": "report-2024",
        "jobrelay-job-name": "nightly_report",
        "jobrelay-executor": "cloudrun",
        "jobrelay-owner": body["labels"]["jobrelay-owner"],
    }
    assert body["annotations"]["jobrelay.job-id"] == "report-2024"
    assert body["annotations"]["jobrelay.job-name"] == "Nightly Report"
    assert body["annotations"]["jobrelay.executor"] == "cloudrun"
    template = body["template"]
    assert template["taskCount"] == 1
    assert template["labels"] == body["labels"]
    task = template["template"]
    # jobrelay's default of no platform retries must be sent: Cloud Run's own is 3.
    assert task["maxRetries"] == 0
    assert task["timeout"] == "91s"
    (container,) = task["containers"]
    assert container["image"] == "europe-docker.pkg.dev/p/r/app:1"
    assert container["command"] == ["/usr/bin/env"]
    assert container["args"] == ["python", "-m", "app", "--fast"]
    assert container["workingDir"] == "/srv"
    assert container["env"] == [
        {"name": "MODE", "value": "batch"},
        {"name": "TOKEN", "value": SECRET},
    ]
    # 0.5 vCPU / 600 MiB is not a Cloud Run job size: 1 vCPU, 600 MiB is.
    assert container["resources"] == {"limits": {"cpu": "1", "memory": "600Mi"}}
    assert execution.execution_id == (
        f"projects/{fake.project}/locations/{fake.region}/jobs/jobrelay-report-2024"
        f"/executions/jobrelay-report-2024-{execution_token('report-2024')}"
    )
    assert execution.execution_id in fake.executions
    assert execution.metadata["cpu"] == 1
    assert execution.metadata["memory_mb"] == 600


def test_max_retries_timeout_account_and_network(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    executor = make_executor(
        service_account="runner@jobrelay-test.iam.gserviceaccount.com",
        vpc_connector="jobs-connector",
        vpc_egress="private-ranges-only",
    )
    executor.launch(JobSpec("busybox", "true", max_retries=2, job_id="retrying"))
    task = _created(fake)["template"]["template"]
    assert task["maxRetries"] == 2
    assert task["timeout"] == "86400s"  # no jobrelay timeout: 24 h, not Cloud Run's 600 s
    assert task["serviceAccount"] == "runner@jobrelay-test.iam.gserviceaccount.com"
    assert task["vpcAccess"] == {"connector": "jobs-connector", "egress": 2}
    stored = fake.job("jobrelay-retrying")["template"]["template"]
    assert stored["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        (0.25, "128Mi", (1, 512)),
        (1, "4Gi", (1, 4096)),
        (1, "5Gi", (2, 5120)),
        (1.5, "1Gi", (2, 1024)),
        (3, "1Gi", (4, 2048)),
        (4, "17Gi", (6, 17408)),
        (5, "2Gi", (6, 4096)),
        (2, "30Gi", (8, 30720)),
        (8, "32Gi", (8, 32768)),
    ],
)
def test_resources_round_up_to_a_cloud_run_size(
    cpu: float, memory: str, expected: tuple[int, int]
) -> None:
    size = fit(Resources(cpu=cpu, memory=memory))
    assert (size.cpu, size.memory_mb) == expected


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (Resources(cpu=9, memory="1Gi"), "resources: cpu=9, memory=1024Mi is larger than"),
        (Resources(cpu=1, memory="33Gi"), "resources: cpu=1, memory=33792Mi is larger than"),
        (Resources(cpu=1, memory="1Gi", gpu=1), "resources: gpu=1: this executor has no gpu_type"),
    ],
)
def test_too_large_is_refused_before_any_call(
    executor: CloudRunExecutor, fake: FakeGCP, resources: Resources, message: str
) -> None:
    with pytest.raises(LaunchError) as caught:
        executor.launch(JobSpec("busybox", "true", resources=resources))
    assert str(caught.value).startswith(message)
    assert fake.count() == 0


def test_gpu_with_a_configured_type(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    executor = make_executor(gpu_type="nvidia-l4")
    executor.launch(JobSpec("busybox", "true", resources=Resources(cpu=1, memory="1Gi", gpu=1)))
    task = _created(fake)["template"]["template"]
    assert task["nodeSelector"] == {"accelerator": "nvidia-l4"}
    limits = task["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "16384Mi", "nvidia.com/gpu": "1"}
    assert executor.capabilities().max_gpu == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"project": ""}, "project"),
        ({"project": "Bad_Project"}, "project"),
        ({"region": "europe"}, "region"),
        ({"region": "eu-west"}, "region"),
        ({"job_prefix": "9jobs"}, "job_prefix"),
        ({"job_prefix": "a" * 21}, "job_prefix"),
        ({"api_endpoint": "ftp://x"}, "api_endpoint"),
        ({"logging_endpoint": "localhost:1"}, "logging_endpoint"),
        ({"vpc_egress": "all-traffic"}, "vpc_egress"),
        ({"vpc_connector": "x", "vpc_egress": "everything"}, "vpc_egress"),
        ({"service_account": "nobody"}, "service_account"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"request_timeout": float("nan")}, "request_timeout"),
        ({"logs_per_minute": 0}, "logs_per_minute"),
        ({"prices": {"tiers": {}}}, "prices"),
        ({"name": " "}, "name"),
        ({"credentials": object()}, "credentials"),
    ],
)
def test_bad_configuration_names_the_field_before_any_call(
    make_executor: MakeExecutor, fake: FakeGCP, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_executor(**options)
    assert str(caught.value).startswith(f"{field}:")
    assert fake.count() == 0


def test_labels_translate_to_google_rules() -> None:
    assert google_label("jobrelay.managed", "true") == ("jobrelay-managed", "true")
    assert google_label("Team.Name", "Data Science/ML") == ("team-name", "data_science_ml")
    assert google_label("9lives", "x" * 80) == ("l9lives", "x" * 63)
    translated = google_labels({"jobrelay-managed": "false", "jobrelay.managed": "true"})
    assert translated == {"jobrelay-managed": "true"}


def test_long_or_odd_ids_are_hashed_into_valid_names() -> None:
    assert job_name("jobrelay", "nightly-42") == "jobrelay-nightly-42"
    odd = job_name("jobrelay", "Nightly_Report.2024")
    assert odd.startswith("jobrelay-nightly-report-2024-")
    assert odd != job_name("jobrelay", "nightly_report.2024")  # case matters in ids
    long = job_name("jobrelay", "a" * 128)
    assert len(long) <= MAX_JOB_NAME
    assert len(f"{long}-{execution_token('a' * 128)}") < 63
    assert job_name("jobrelay", "a" * 128) != job_name("jobrelay", "a" * 127)


def test_same_job_id_twice_is_one_execution(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    job = JobSpec("busybox", "sleep 60", job_id="twice")
    first = make_executor().launch(job)
    # Another process (its own executor) launches the same id.
    second = make_executor().launch(job)
    assert second.execution_id == first.execution_id
    assert len(fake.executions) == 1
    assert fake.count("run.jobs.create") == 2


def test_concurrent_launches_of_one_id_make_one_execution(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    job = JobSpec("busybox", "sleep 60", job_id="racing")
    executors = [make_executor() for _ in range(4)]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda e=e: results.append(e.launch(job).execution_id))
        for e in executors
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(fake.executions) == 1


def test_lost_reply_is_retried_into_the_same_execution(
    executor: CloudRunExecutor, fake: FakeGCP
) -> None:
    fake.fail("run.jobs.create", lost_reply=True)
    execution = executor.launch(JobSpec("busybox", "true", job_id="lost-reply"))
    assert list(fake.executions) == [execution.execution_id]
    assert fake.count("run.jobs.create") == 2  # the lost one, then the retry's 409
    assert fake.count("run.jobs.get") == 1
    assert fake.count("run.jobs.run") == 0  # RunJob, not idempotent, is never used


def test_lost_reply_without_retries_is_transient_and_the_next_launch_adopts(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    executor = make_executor(retry=RetryPolicy(attempts=1))
    fake.fail("run.jobs.create", lost_reply=True)
    job = JobSpec("busybox", "true", job_id="lost-twice")
    with pytest.raises(TransientExecutorError):
        executor.launch(job)
    execution = executor.launch(job)
    assert list(fake.executions) == [execution.execution_id]


def test_name_held_by_an_unmanaged_job_is_refused(
    executor: CloudRunExecutor, fake: FakeGCP
) -> None:
    fake.create_foreign_job("jobrelay-taken")
    with pytest.raises(LaunchError, match="something jobrelay does not manage"):
        executor.launch(JobSpec("busybox", "true", job_id="taken"))
    assert len(fake.executions) == 1


def test_429_is_retried(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    fake.fail("run.jobs.create", 429, grpc_status="RESOURCE_EXHAUSTED", times=2)
    execution = executor.launch(JobSpec("busybox", "true", job_id="throttled"))
    assert execution.execution_id in fake.executions
    assert fake.count("run.jobs.create") == 3


def test_503_after_retries_is_transient(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    fake.fail("run.jobs.create", 503, times=10)
    with pytest.raises(TransientExecutorError, match="HTTP 503"):
        executor.launch(JobSpec("busybox", "true", job_id="unavailable"))
    assert fake.count("run.jobs.create") == 3
    assert fake.jobs == {}


def test_403_is_a_launch_error_with_googles_message_scrubbed(
    executor: CloudRunExecutor, fake: FakeGCP
) -> None:
    fake.fail(
        "run.jobs.create",
        403,
        grpc_status="PERMISSION_DENIED",
        message=f"Permission 'run.jobs.create' denied (env TOKEN={SECRET})",
    )
    with pytest.raises(LaunchError) as caught:
        executor.launch(JobSpec("busybox", "true", secrets={"TOKEN": SECRET}, job_id="denied"))
    assert not isinstance(caught.value, TransientExecutorError)
    text = str(caught.value)
    assert "HTTP 403" in text
    assert "Permission 'run.jobs.create' denied" in text
    assert SECRET not in text
    assert caught.value.__cause__ is None  # the original still holds the secret
    assert fake.count("run.jobs.create") == 1
    assert fake.jobs == {}


def test_400_from_the_service_is_a_launch_error(executor: CloudRunExecutor, fake: FakeGCP) -> None:
    fake.fail("run.jobs.create", 400, grpc_status="INVALID_ARGUMENT", message="bad image")
    with pytest.raises(LaunchError, match="HTTP 400 BadRequest: bad image"):
        executor.launch(JobSpec("busybox", "true", job_id="invalid"))
    assert fake.count("run.jobs.create") == 1


def test_a_stalled_call_ends_within_its_deadline(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    executor = make_executor(request_timeout=0.5, retry=RetryPolicy(attempts=1))
    fake.fail("run.jobs.create", stall=30.0)
    started = time.monotonic()
    with pytest.raises(TransientExecutorError, match="Timeout"):
        executor.launch(JobSpec("busybox", "true", job_id="stalled"))
    assert time.monotonic() - started < 3.0


def test_a_stalled_create_is_retried(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    executor = make_executor(request_timeout=0.3, retry=RetryPolicy(attempts=2, timeout=5))
    fake.fail("run.jobs.create", stall=30.0, times=1)
    execution = executor.launch(JobSpec("busybox", "true", job_id="stall-then-ok"))
    assert list(fake.executions) == [execution.execution_id]
    assert fake.count("run.jobs.create") == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_retries": 11}, "max_retries: 11 is more than Cloud Run's 10"),
        ({"timeout": 169 * 3600}, "timeout: 608400s is longer than Cloud Run's 604800s"),
    ],
)
def test_beyond_cloud_run_limits_is_refused_before_any_call(
    executor: CloudRunExecutor, fake: FakeGCP, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(LaunchError, match=message):
        executor.launch(JobSpec("busybox", "true", **fields))
    assert fake.count() == 0
