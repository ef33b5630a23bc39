"""The wire format: what the executor sends, and the fake held to the SDK's own code."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scaleway.jobs.v1alpha2 import marshalling, types  # type: ignore[import-untyped, unused-ignore]

from conftest import MakeExecutor
from fake_scaleway import PROJECT_ID, SECRET_KEY, FakeScaleway
from fake_schema import ApiError, check_payload, check_request_body
from jobrelay import JobSpec, LaunchError
from jobrelay.labels import workload_labels
from jobrelay_scaleway import ScalewayExecutor

JOBS = "/serverless-jobs/v1alpha2/regions/fr-par"


def _bodies(fake: FakeScaleway, action: str) -> list[Any]:
    return [body for name, _, body in fake.requests if name == action]


def test_create_and_start_bodies(executor: ScalewayExecutor, fake: FakeScaleway) -> None:
    job = JobSpec(
        "rg.fr-par.scw.cloud/team/tool:1",
        ["--input", "s3://bucket/a"],
        entrypoint=["/bin/tool"],
        env={"MODE": "fast"},
        secrets={"TOKEN": "s3cret"},
        resources={"cpu": 1.5, "memory": "3Gi"},
        timeout=3599.5,
        max_retries=2,
        labels={"team": "data"},
        name="nightly",
        job_id="Nightly.Run_2026-12-01.A",
    )
    execution = executor.launch(job)
    [create] = _bodies(fake, "CreateJobDefinition")
    assert create["cpu_limit"] == 1500
    assert create["memory_limit"] == 3072
    assert create["local_storage_capacity"] == 1024
    assert create["image_uri"] == "rg.fr-par.scw.cloud/team/tool:1"
    assert create["startup_command"] == ["/bin/tool"]
    assert create["job_timeout"] == "3600s"
    assert create["retry_policy"] == {"max_retries": 2}
    assert create["project_id"] == PROJECT_ID
    assert create["name"].startswith("jobrelay-")
    assert json.loads(create["description"])["jobrelay.managed"] == "true"
    assert "environment_variables" not in create or create["environment_variables"] == {}
    [start] = _bodies(fake, "StartJobDefinition")
    assert start["startup_command"] == ["/bin/tool"]
    assert start["args"] == ["--input", "s3://bucket/a"]
    environment = start["environment_variables"]
    assert environment["MODE"] == "fast"
    assert environment["TOKEN"] == "s3cret"
    assert json.loads(environment["JOBRELAY_LABELS"]) == workload_labels(job, "scaleway")
    assert execution.execution_id == fake.runs[execution.execution_id].data["id"]
    assert execution.metadata["cpu_mvcpu"] == 1500
    assert execution.metadata["memory_mb"] == 3072


def test_command_without_entrypoint_keeps_the_image_entrypoint(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    executor.launch(JobSpec("busybox", "echo hi"))
    [create] = _bodies(fake, "CreateJobDefinition")
    [start] = _bodies(fake, "StartJobDefinition")
    assert "startup_command" not in start
    assert "startup_command" not in create
    assert start["args"] == ["echo", "hi"]
    assert "job_timeout" not in create


@pytest.mark.parametrize(
    ("cpu", "memory", "mvcpu", "mib"),
    [
        (0.1, 512, 100, 512),  # 0.1 * 1000 is 100.00000000000001 in floats
        (0.01, 64, 70, 128),  # Scaleway's smallest size
        (0.0701, 129, 71, 129),
        (6, 16384, 6000, 16384),
        (2.3, "1.5Gi", 2300, 1536),
    ],
)
def test_rounding(
    executor: ScalewayExecutor,
    fake: FakeScaleway,
    cpu: float,
    memory: Any,
    mvcpu: int,
    mib: int,
) -> None:
    executor.launch(JobSpec("busybox", "true", resources={"cpu": cpu, "memory": memory}))
    [create] = _bodies(fake, "CreateJobDefinition")
    assert (create["cpu_limit"], create["memory_limit"]) == (mvcpu, mib)


@pytest.mark.parametrize(
    ("overrides", "start"),
    [
        ({"resources": {"cpu": 6.001}}, "resources: cpu=6.001, memory=512Mi is larger than"),
        ({"resources": {"memory": "17Gi"}}, "resources: cpu=1, memory=17408Mi is larger than"),
        ({"resources": {"gpu": 1}}, "resources: gpu=1: Scaleway Serverless Jobs has no GPUs"),
        ({"timeout": 86_401}, "timeout: 86401s is longer than"),
        ({"working_dir": "/data"}, "working_dir: Scaleway Serverless Jobs cannot set"),
    ],
)
def test_refused_before_any_call(
    executor: ScalewayExecutor, fake: FakeScaleway, overrides: dict[str, Any], start: str
) -> None:
    with pytest.raises(LaunchError) as caught:
        executor.launch(JobSpec("busybox", "true", job_id="too-big", **overrides))
    assert str(caught.value).startswith(start), caught.value
    assert caught.value.job_id == "too-big"
    assert sum(fake.calls.values()) == 0


def test_fake_rejects_unknown_keys_with_scaleway_shape(fake: FakeScaleway) -> None:
    answer = requests.post(
        f"{fake.url}{JOBS}/job-definitions",
        json={
            "cpu_limit": 1000,
            "memory_limit": 512,
            "local_storage_capacity": 1024,
            "image_uri": "busybox",
            "description": "",
            "project_id": PROJECT_ID,
            "labels": {"a": "b"},
        },
        headers={"X-Auth-Token": SECRET_KEY},
        timeout=5,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "invalid_arguments"
    assert body["details"][0]["argument_name"] == "labels"


def test_fake_rejects_wrong_types_and_unknown_query(fake: FakeScaleway) -> None:
    with pytest.raises(ApiError) as caught:
        check_request_body(
            "CreateJobDefinition",
            {
                "cpu_limit": "1000",
                "memory_limit": 512,
                "local_storage_capacity": 1,
                "image_uri": "x",
                "description": "",
            },
        )
    assert caught.value.status == 400
    answer = requests.get(
        f"{fake.url}{JOBS}/job-runs",
        params={"tag": "x"},
        headers={"X-Auth-Token": SECRET_KEY},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["details"][0]["argument_name"] == "tag"


def test_fake_accepts_what_the_sdk_marshals() -> None:
    request = types.CreateJobDefinitionRequest(
        cpu_limit=70,
        memory_limit=128,
        local_storage_capacity=1,
        image_uri="busybox",
        description="d",
        name="n",
        startup_command=["sh"],
        args=["-c", "true"],
        project_id=PROJECT_ID,
        environment_variables={"A": "1"},
        job_timeout="60s",
        retry_policy=types.RetryPolicy(max_retries=1),
    )
    body = marshalling.marshal_CreateJobDefinitionRequest(request, None)
    check_request_body("CreateJobDefinition", json.loads(json.dumps(body)))


def test_fake_responses_unmarshal_and_omit_exit_code(
    executor: ScalewayExecutor, fake: FakeScaleway
) -> None:
    execution = executor.launch(JobSpec("busybox", "true"))
    run = fake.run(execution.execution_id)
    assert "exit_code" not in run
    check_payload("GetJobRun", run)
    with pytest.raises(AssertionError, match="keys the SDK does not read"):
        check_payload("GetJobRun", {**run, "labels": {}})


def test_not_found_shape(fake: FakeScaleway) -> None:
    run_id = "00000000-0000-4000-8000-000000000000"
    answer = requests.get(
        f"{fake.url}{JOBS}/job-runs/{run_id}", headers={"X-Auth-Token": SECRET_KEY}, timeout=5
    )
    assert answer.status_code == 404
    assert answer.json() == {
        "message": "resource is not found",
        "resource": "job_run",
        "resource_id": run_id,
        "type": "not_found",
    }


def test_paging_with_total_count(make_executor: MakeExecutor, fake: FakeScaleway) -> None:
    executor = make_executor()
    definition = fake.add_definition()
    for _ in range(5):
        fake.start_run(definition["id"])
    fake.default_page_size = 2
    answer = requests.get(
        f"{fake.url}{JOBS}/job-runs",
        params={"page": 3},
        headers={"X-Auth-Token": SECRET_KEY},
        timeout=5,
    )
    body = answer.json()
    assert body["total_count"] == 5
    assert len(body["job_runs"]) == 1
    assert executor.list_managed() == []


_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True).filter(
    lambda name: name != "JOBRELAY_LABELS"
)
_values = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    env=st.dictionaries(_names, _values, max_size=4),
    secrets=st.dictionaries(_names, _values.filter(bool), max_size=2),
    args=st.lists(_values, min_size=1, max_size=4),
)
def test_any_job_is_sent_as_the_sdk_would_and_kept_exactly(
    executor: ScalewayExecutor,
    fake: FakeScaleway,
    env: dict[str, str],
    secrets: dict[str, str],
    args: list[str],
) -> None:
    job = JobSpec("busybox", args, env=env, secrets=secrets)
    execution = executor.launch(job)  # the fake refuses any body the SDK would not send
    run = fake.run(execution.execution_id)
    environment = dict(run["environment_variables"])
    labels = json.loads(environment.pop("JOBRELAY_LABELS"))
    assert environment == job.environment()
    assert labels == workload_labels(job, "scaleway")
    assert run["args"] == args
