"""Reconcile listing, task definition pruning, health, configuration, discovery."""

from __future__ import annotations

import socket
from typing import Any

import boto3
import pytest

import jobrelay_fargate
from fargate_fakes import REGION, MakeExecutor, MotoFargate, WireProxy
from jobrelay import ConfigError, JobSpec, load_executor_class
from jobrelay import labels as jl
from jobrelay_fargate import FargateExecutor


def _job(**fields: Any) -> JobSpec:
    return JobSpec("busybox:1.36", ["true"], **fields)


# -- list_managed -----------------------------------------------------------------------


def test_list_managed_finds_only_this_executors_tasks(
    make_executor: MakeExecutor, moto: MotoFargate
) -> None:
    ours = make_executor()
    other = make_executor(name="fargate-other")
    running = ours.launch(_job(job_id="reconcile-running"))
    finished = ours.launch(_job(job_id="reconcile-finished"))
    moto.finish(finished.execution_id, 0)
    theirs = other.launch(_job(job_id="reconcile-theirs"))
    # a task somebody else started in the same cluster, without jobrelay's tags
    definition = moto.task(running.execution_id).task_definition_arn
    moto.ecs.run_task(
        cluster=moto.cluster,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [moto.subnet],
                "securityGroups": [moto.security_group],
            }
        },
        tags=[{"key": "jobrelay.managed", "value": "true"}],
    )
    listed = {e.job_id: e for e in ours.list_managed()}
    assert set(listed) == {"reconcile-running", "reconcile-finished"}
    assert listed["reconcile-running"].execution_id == running.execution_id
    assert listed["reconcile-finished"].execution_id == finished.execution_id
    assert listed["reconcile-running"].executor == ours.name
    assert listed["reconcile-running"].launched_at.tzinfo is not None
    assert listed["reconcile-running"].metadata["owner"] == jl.default_owner()
    assert [e.execution_id for e in other.list_managed()] == [theirs.execution_id]


def test_list_managed_reports_each_tasks_owner(executor: FargateExecutor) -> None:
    executor.launch(_job(job_id="mine", labels={jl.OWNER: "host-a"}))
    executor.launch(_job(job_id="theirs", labels={jl.OWNER: "host-b"}))
    owners = {e.job_id: e.metadata["owner"] for e in executor.list_managed()}
    assert owners == {"mine": "host-a", "theirs": "host-b"}


def test_list_managed_executions_work_with_status(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    execution = executor.launch(_job())
    moto.finish(execution.execution_id, 0)
    (found,) = executor.list_managed()
    assert executor.harvest(found).succeeded


# -- prune_task_definitions ----------------------------------------------------------------


def test_prune_deregisters_only_unused_jobrelay_definitions(
    make_executor: MakeExecutor, moto: MotoFargate, proxy: WireProxy
) -> None:
    executor = make_executor()
    busy = executor.launch(_job(resources={"cpu": 1, "memory": 2048}))
    idle = executor.launch(_job(resources={"cpu": 2, "memory": 4096}))
    executor.cancel(idle)  # its task stops: the definition is no longer used
    foreign: Any = moto.ecs.register_task_definition(
        family="jobrelay-handmade",
        containerDefinitions=[{"name": "main", "image": "busybox", "memory": 512}],
    )
    pruned = executor.prune_task_definitions()
    assert pruned == [idle.metadata["task_definition_arn"]]
    active: Any = moto.ecs.list_task_definitions(status="ACTIVE")
    assert set(active["taskDefinitionArns"]) == {
        busy.metadata["task_definition_arn"],
        foreign["taskDefinition"]["taskDefinitionArn"],
    }
    # the pruned shape is registered afresh on its next launch, not reused stale
    proxy.clear()
    again = executor.launch(_job(resources={"cpu": 2, "memory": 4096}))
    assert proxy.count("RegisterTaskDefinition") == 1
    assert again.metadata["task_definition_arn"].endswith(":2")


def test_prune_leaves_a_lookalike_family_without_our_tag(
    executor: FargateExecutor, moto: MotoFargate
) -> None:
    moto.ecs.register_task_definition(
        family="jobrelay-0123456789abcdef0123",
        containerDefinitions=[{"name": "main", "image": "busybox", "memory": 512}],
    )
    assert executor.prune_task_definitions() == []


# -- health -------------------------------------------------------------------------------


def test_health_of_an_active_cluster(executor: FargateExecutor) -> None:
    health = executor.health()
    assert health.healthy
    assert health.latency is not None
    assert health.latency >= 0


def test_health_of_a_missing_cluster(make_executor: MakeExecutor, moto: MotoFargate) -> None:
    moto.ecs.delete_cluster(cluster=moto.cluster)
    health = make_executor().health()
    assert not health.healthy
    assert moto.cluster in health.detail


def test_health_of_an_unreachable_endpoint_never_raises(make_executor: MakeExecutor) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health = make_executor(endpoint_url=f"http://127.0.0.1:{port}").health()
    assert not health.healthy
    assert "DescribeClusters failed" in health.detail


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"capacity_provider": "EC2"}, "capacity_provider"),
        ({"cpu_architecture": "arm"}, "cpu_architecture"),
        ({"poll_interval": float("nan")}, "poll_interval"),
        ({"missing_grace": 10**400}, "missing_grace"),
        ({"retry": 3}, "retry"),
        ({"subnets": "subnet-1"}, "subnets"),
        ({"subnets": []}, "subnets"),
        ({"security_groups": [""]}, "security_groups"),
        ({"cluster": ""}, "cluster"),
        ({"family_prefix": "has space"}, "family_prefix"),
        ({"log_group": "bad*group"}, "log_group"),
        ({"log_stream_prefix": "a:b"}, "log_stream_prefix"),
        ({"assign_public_ip": "yes"}, "assign_public_ip"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"name": ""}, "name"),
    ],
)
def test_bad_configuration_names_the_argument(overrides: dict[str, Any], field: str) -> None:
    arguments: dict[str, Any] = {
        "cluster": "jobs",
        "subnets": ["subnet-1"],
        "security_groups": ["sg-1"],
        "region": REGION,
    }
    arguments.update(overrides)
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        FargateExecutor(**arguments)


def test_no_region_anywhere_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigError, match=r"^region: "):
        FargateExecutor("jobs", ["subnet-1"], [], session=boto3.session.Session())


def test_region_comes_from_the_session() -> None:
    session = boto3.session.Session(region_name="eu-west-3")
    with FargateExecutor("jobs", ["subnet-1"], [], session=session) as executor:
        assert executor.region == "eu-west-3"
        assert "eu-west-3" in repr(executor)


# -- discovery and surface ------------------------------------------------------------------


def test_entry_point_loads_the_executor() -> None:
    assert load_executor_class("fargate") is FargateExecutor


def test_public_surface() -> None:
    assert jobrelay_fargate.__all__ == ["FargateExecutor"]
    assert FargateExecutor.__doc__


def test_constructor_options_are_keyword_only() -> None:
    untyped: Any = FargateExecutor
    with pytest.raises(TypeError, match="positional"):
        untyped("jobs", ["subnet-1"], [], "us-east-1")
