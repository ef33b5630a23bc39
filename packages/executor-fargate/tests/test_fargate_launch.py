"""Launching: task definitions, sizing, idempotency, failures, retries, secrets, tags."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fargate_fakes import MakeExecutor, MotoFargate, WireProxy
from jobrelay import JobSpec, LaunchError, RetryPolicy, TransientExecutorError
from jobrelay import labels as jl
from jobrelay_fargate import FargateExecutor
from jobrelay_fargate._tags import client_token, started_by

SECRET = "s3cr3t-Value-that-must-not-leak"


def _job(**fields: Any) -> JobSpec:
    return JobSpec("busybox:1.36", ["sh", "-c", "echo hi"], **fields)


def _task_definition(moto: MotoFargate, arn: str) -> dict[str, Any]:
    answer: Any = moto.ecs.describe_task_definition(taskDefinition=arn)
    return dict(answer["taskDefinition"])


# -- task definitions -----------------------------------------------------------------


def test_same_shape_registers_one_task_definition(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    executions = [executor.launch(_job(env={"N": str(i)})) for i in range(5)]
    assert proxy.count("RegisterTaskDefinition") == 1
    assert proxy.count("RunTask") == 5
    arns = {e.metadata["task_definition_arn"] for e in executions}
    assert len(arns) == 1
    (arn,) = arns
    assert arn.endswith(":1")
    families: Any = moto.ecs.list_task_definition_families()
    assert len(families["families"]) == 1


def test_a_new_executor_reuses_the_registered_family(
    make_executor: MakeExecutor, proxy: WireProxy
) -> None:
    first = make_executor().launch(_job())
    proxy.clear()
    second = make_executor().launch(_job())  # empty cache: looks the family up
    assert proxy.count("DescribeTaskDefinition") == 1
    assert proxy.count("RegisterTaskDefinition") == 0
    assert second.metadata["task_definition_arn"] == first.metadata["task_definition_arn"]


def test_each_distinct_shape_gets_its_own_family(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    base = executor.launch(_job())
    variants = [
        _job(resources={"cpu": 2, "memory": "4Gi"}),
        _job(entrypoint=["/bin/sh"]),
        _job(working_dir="/srv"),
        JobSpec("alpine:3.20", ["true"]),
    ]
    arns = {base.metadata["task_definition_arn"]}
    arns |= {executor.launch(job).metadata["task_definition_arn"] for job in variants}
    assert len(arns) == 5
    assert proxy.count("RegisterTaskDefinition") == 5
    # command and environment are overrides: they never make a new definition
    executor.launch(_job(env={"X": "1"}))
    JobSpec("busybox:1.36", ["echo", "other"])
    executor.launch(JobSpec("busybox:1.36", ["echo", "other"]))
    assert proxy.count("RegisterTaskDefinition") == 5
    definition = _task_definition(moto, base.metadata["task_definition_arn"])
    container = definition["containerDefinitions"][0]
    # what real ECS accepts and unpatched moto needs: the container limit is the task's
    assert container["memory"] == int(definition["memory"]) == 2048  # 1 vCPU: 2 GiB at least
    assert definition["runtimePlatform"] == {
        "cpuArchitecture": "X86_64",
        "operatingSystemFamily": "LINUX",
    }
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": executor.log_group,
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": executor.log_stream_prefix,
        },
    }


def test_roles_go_into_the_task_definition(make_executor: MakeExecutor, proxy: WireProxy) -> None:
    executor = make_executor(
        execution_role_arn="arn:aws:iam::123456789012:role/exec",
        task_role_arn="arn:aws:iam::123456789012:role/task",
    )
    executor.launch(_job())
    (register,) = proxy.ops("RegisterTaskDefinition")
    assert register.body["executionRoleArn"] == "arn:aws:iam::123456789012:role/exec"
    assert register.body["taskRoleArn"] == "arn:aws:iam::123456789012:role/task"


# -- sizing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        (0.1, 100, ("256", "512")),
        (0.25, 512, ("256", "512")),
        (0.25, 600, ("256", "1024")),
        (0.25, 3000, ("512", "3072")),
        (0.5, 4096, ("512", "4096")),
        (1, 512, ("1024", "2048")),
        (1, 8193, ("2048", "9216")),
        (3, 1000, ("4096", "8192")),
        (4, 30721, ("8192", "32768")),
        (8, 61441, ("16384", "65536")),
        (16, 122880, ("16384", "122880")),
    ],
)
def test_resources_round_up_to_a_fargate_pair(
    executor: FargateExecutor, proxy: WireProxy, cpu: float, memory: int, expected: tuple[str, str]
) -> None:
    executor.launch(_job(resources={"cpu": cpu, "memory": memory}))
    (register,) = proxy.ops("RegisterTaskDefinition")
    assert (register.body["cpu"], register.body["memory"]) == expected


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"cpu": 16.5, "memory": 1024}, "resources"),
        ({"cpu": 1, "memory": 122881}, "resources"),
        ({"cpu": 32, "memory": "200Gi"}, "resources"),
        ({"cpu": 1, "memory": 2048, "gpu": 1}, "resources.gpu"),
    ],
)
def test_too_large_is_refused_before_any_api_call(
    executor: FargateExecutor, proxy: WireProxy, resources: dict[str, Any], field: str
) -> None:
    with pytest.raises(LaunchError, match=rf"^{field}: ") as caught:
        executor.launch(_job(resources=resources))
    assert caught.value.job_id is not None
    assert proxy.count() == 0


def test_oversized_overrides_are_refused_before_any_api_call(
    executor: FargateExecutor, proxy: WireProxy
) -> None:
    job = _job(secrets={"BIG": SECRET * 400})
    with pytest.raises(LaunchError, match="8192") as caught:
        executor.launch(job)
    assert SECRET not in str(caught.value)
    assert proxy.count() == 0


# -- idempotency ------------------------------------------------------------------------


def test_client_token_and_started_by_on_the_wire(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    job = _job(job_id="nightly.report-2024")
    execution = executor.launch(job)
    (run,) = proxy.ops("RunTask")
    assert run.body["clientToken"] == client_token(job.job_id)
    assert run.body["startedBy"] == started_by(job.job_id)
    assert len(run.body["clientToken"]) <= 64
    assert "." not in run.body["startedBy"]  # startedBy's charset has no dot
    assert run.body["propagateTags"] == "TASK_DEFINITION"
    assert run.body["launchType"] == "FARGATE"
    assert run.body["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": [moto.subnet],
            "securityGroups": [moto.security_group],
            "assignPublicIp": "DISABLED",
        }
    }
    listed: Any = moto.ecs.list_tasks(cluster=moto.cluster, startedBy=run.body["startedBy"])
    assert listed["taskArns"] == [execution.execution_id]
    # the token is a function of the job id alone: another job, another token
    executor.launch(_job(job_id="nightly.report-2025"))
    tokens = {call.body["clientToken"] for call in proxy.ops("RunTask")}
    assert len(tokens) == 2


def test_same_job_id_twice_starts_one_task(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    job = _job()
    first = executor.launch(job)
    second = executor.launch(job)
    assert second.execution_id == first.execution_id
    assert proxy.count("RunTask") == 1
    assert len(list(moto.tasks())) == 1


def test_a_finished_job_is_not_started_again(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    job = _job()
    first = executor.launch(job)
    moto.finish(first.execution_id, 0)
    assert executor.launch(job).execution_id == first.execution_id
    assert proxy.count("RunTask") == 1


def test_retry_after_a_lost_reply_finds_the_task_it_started(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    proxy.lose_reply("RunTask")
    job = _job()
    execution = RetryPolicy(attempts=3).call(executor.launch, job)
    assert proxy.count("RunTask") == 1
    assert [t.task_arn for t in moto.tasks()] == [execution.execution_id]


# -- failures -------------------------------------------------------------------------


def test_run_task_failures_become_launch_error(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    proxy.answer(
        "RunTask",
        {
            "tasks": [],
            "failures": [
                {
                    "arn": "arn:aws:ecs:us-east-1:123456789012:cluster/jobrelay-test",
                    "reason": "Capacity is unavailable at this time",
                    "detail": "FARGATE_SPOT",
                }
            ],
        },
    )
    with pytest.raises(LaunchError, match="Capacity is unavailable at this time") as caught:
        executor.launch(_job())
    assert "FARGATE_SPOT" in str(caught.value)
    assert caught.value.executor == executor.name
    assert list(moto.tasks()) == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "ThrottlingException"),
        (500, "ServerException"),
        (503, "ServiceUnavailableException"),
        (429, "TooManyRequestsException"),
    ],
)
def test_throttling_and_5xx_are_transient_and_retried(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate, status: int, code: str
) -> None:
    proxy.fail("RunTask", status=status, code=code, message="Rate exceeded")
    with pytest.raises(TransientExecutorError, match=code):
        executor.launch(_job(job_id="flaky-1"))
    assert proxy.count("RunTask") == 1  # botocore did not retry behind our back

    proxy.fail("RunTask", status=status, code=code, message="Rate exceeded", times=2)
    execution = RetryPolicy(attempts=4).call(executor.launch, _job(job_id="flaky-2"))
    assert proxy.count("RunTask") == 4  # 1 above, then 2 refused and 1 accepted
    assert [t.task_arn for t in moto.tasks()] == [execution.execution_id]


def test_a_dropped_read_is_retried_inside_the_launch(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    proxy.drop("ListTasks")
    execution = executor.launch(_job())
    assert proxy.count("ListTasks") == 3  # dropped, repeated, then the STOPPED look-up
    assert [t.task_arn for t in moto.tasks()] == [execution.execution_id]


def test_reads_failing_past_the_retry_budget_are_transient(
    executor: FargateExecutor, proxy: WireProxy
) -> None:
    proxy.drop("ListTasks", times=10)
    with pytest.raises(TransientExecutorError, match="ListTasks"):
        executor.launch(_job())
    assert proxy.count("ListTasks") == 4  # the executor's default retry: 4 attempts
    assert proxy.count("RunTask") == 0


@pytest.mark.parametrize(
    ("status", "code"), [(500, "ServerException"), (400, "ThrottlingException")]
)
def test_an_error_after_run_task_took_effect_finds_the_task(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate, status: int, code: str
) -> None:
    proxy.fail("RunTask", status=status, code=code, after_effect=True)
    execution = executor.launch(_job())
    assert proxy.count("RunTask") == 1  # looked up, not sent again
    assert [t.task_arn for t in moto.tasks()] == [execution.execution_id]


def test_lost_reply_and_failed_look_up_is_transient_then_found(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    job = _job()
    proxy.lose_reply("RunTask")
    # the two look-ups before RunTask pass; every one after it fails
    proxy.drop("ListTasks", times=10, skip=2)
    with pytest.raises(TransientExecutorError, match="outcome unknown") as caught:
        executor.launch(job)
    assert not isinstance(caught.value, LaunchError)
    (task,) = moto.tasks()  # the task runs: the caller must not forget it
    proxy.clear()
    again = executor.launch(job)
    assert again.execution_id == task.task_arn
    assert proxy.count("RunTask") == 0


def test_lost_reply_and_refused_look_up_is_still_transient(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    proxy.lose_reply("RunTask")
    proxy.fail("ListTasks", status=400, code="AccessDeniedException", skip=2)
    with pytest.raises(TransientExecutorError, match="outcome unknown"):
        executor.launch(_job())
    assert len(list(moto.tasks())) == 1


def test_run_task_refused_without_effect_is_transient_and_starts_nothing(
    executor: FargateExecutor, proxy: WireProxy, moto: MotoFargate
) -> None:
    proxy.fail("RunTask", status=503, code="ServiceUnavailableException", times=10)
    with pytest.raises(TransientExecutorError, match="ServiceUnavailableException"):
        RetryPolicy(attempts=3).call(executor.launch, _job())
    assert proxy.count("RunTask") == 3
    assert list(moto.tasks()) == []


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "InvalidParameterException", "ClientException"]
)
def test_permanent_errors_are_launch_errors_with_aws_message(
    executor: FargateExecutor, proxy: WireProxy, code: str
) -> None:
    proxy.fail("RunTask", status=400, code=code, message=f"{code}: not allowed here")
    with pytest.raises(LaunchError, match=f"{code}: not allowed here"):
        RetryPolicy(attempts=3).call(executor.launch, _job())
    assert proxy.count("RunTask") == 1  # not retried


def test_a_missing_cluster_is_a_launch_error(make_executor: MakeExecutor, proxy: WireProxy) -> None:
    executor = make_executor(cluster="no-such-cluster")
    with pytest.raises(LaunchError, match="ClusterNotFoundException"):
        executor.launch(_job())
    assert proxy.count("RunTask") == 0


def test_launch_goes_on_when_the_log_group_cannot_be_created(
    executor: FargateExecutor, proxy: WireProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.fail("CreateLogGroup", status=400, code="AccessDeniedException", message="no")
    executor.launch(_job())
    assert proxy.count("RunTask") == 1
    assert "could not ensure log group /jobrelay" in caplog.text
    executor.launch(_job())
    assert proxy.count("CreateLogGroup") == 1  # tried once per executor


def test_register_refused_is_a_launch_error(executor: FargateExecutor, proxy: WireProxy) -> None:
    proxy.fail(
        "RegisterTaskDefinition",
        status=400,
        code="ClientException",
        message="Fargate requires task definition to have execution role ARN",
    )
    with pytest.raises(LaunchError, match="execution role ARN"):
        executor.launch(_job())
    assert proxy.count("RunTask") == 0


# -- secrets and tags -----------------------------------------------------------------


def test_secrets_go_as_env_and_nowhere_else(
    executor: FargateExecutor,
    proxy: WireProxy,
    moto: MotoFargate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="jobrelay")
    job = _job(env={"MODE": "fast"}, secrets={"API_TOKEN": SECRET}, labels={"team": "data"})
    execution = executor.launch(job)
    (run,) = proxy.ops("RunTask")
    (override,) = run.body["overrides"]["containerOverrides"]
    assert override["command"] == ["sh", "-c", "echo hi"]
    assert {"name": "API_TOKEN", "value": SECRET} in override["environment"]
    assert {"name": "MODE", "value": "fast"} in override["environment"]
    assert SECRET not in str(run.body["tags"])
    assert SECRET not in repr(execution)
    assert SECRET not in caplog.text
    tags: Any = moto.ecs.list_tags_for_resource(resourceArn=execution.execution_id)
    assert SECRET not in str(tags)


def test_secrets_are_scrubbed_from_aws_errors(executor: FargateExecutor, proxy: WireProxy) -> None:
    proxy.fail(
        "RunTask",
        status=400,
        code="InvalidParameterException",
        message=f"environment value {SECRET} is invalid",
    )
    with pytest.raises(LaunchError) as caught:
        executor.launch(_job(secrets={"API_TOKEN": SECRET}))
    assert SECRET not in str(caught.value)
    assert "***" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_tags_carry_jobrelay_labels_and_sanitised_job_labels(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    job = _job(
        name="nightly report",
        labels={"team": "data", "cost/centre": "4#2", "aws:owner": "me", "k" * 200: "v"},
    )
    execution = executor.launch(job)
    answer: Any = moto.ecs.list_tags_for_resource(resourceArn=execution.execution_id)
    tags = {tag["key"]: tag["value"] for tag in answer["tags"]}
    assert tags["jobrelay.managed"] == "true"
    assert tags["jobrelay.job-id"] == job.job_id
    assert tags["jobrelay.job-name"] == "nightly report"
    assert tags["jobrelay.executor"] == "fargate"
    assert tags["jobrelay.owner"] == jl.default_owner()
    assert tags["team"] == "data"
    assert tags["cost/centre"] == "4_2"
    assert tags["x-aws:owner"] == "me"
    assert tags["k" * 128] == "v"


def test_fargate_spot_uses_a_capacity_provider_strategy(
    make_executor: MakeExecutor, proxy: WireProxy
) -> None:
    executor = make_executor(capacity_provider="FARGATE_SPOT", assign_public_ip=True)
    executor.launch(_job())
    (run,) = proxy.ops("RunTask")
    assert "launchType" not in run.body
    assert run.body["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1}
    ]
    assert run.body["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"


def test_the_owner_tag_comes_from_the_job_label(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    execution = executor.launch(_job(labels={jl.OWNER: "worker-7"}))
    answer: Any = moto.ecs.list_tags_for_resource(resourceArn=execution.execution_id)
    tags = {tag["key"]: tag["value"] for tag in answer["tags"]}
    assert tags[jl.OWNER] == "worker-7"


def test_arm64_goes_into_the_task_definition(make_executor: MakeExecutor, proxy: WireProxy) -> None:
    execution = make_executor(cpu_architecture="ARM64").launch(_job())
    (register,) = proxy.ops("RegisterTaskDefinition")
    assert register.body["runtimePlatform"]["cpuArchitecture"] == "ARM64"
    assert execution.metadata["cpu_architecture"] == "ARM64"
