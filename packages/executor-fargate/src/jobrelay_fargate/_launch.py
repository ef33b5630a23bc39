"""Checking a job against Fargate and building its RunTask request, with no API call.

Everything that can refuse a job without asking AWS does so here, so a job that
cannot run is refused before anything is created.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs

from jobrelay import JobSpec, LaunchError
from jobrelay_fargate._sizing import MAX_CPU, MAX_MEMORY_MB, FargateSize, fargate_size
from jobrelay_fargate._tags import client_token, started_by, task_tags
from jobrelay_fargate._taskdefs import CONTAINER_NAME, TaskShape

__all__ = ["LaunchPlan", "NetworkConfig", "plan_launch"]

# ECS refuses container overrides whose JSON is longer than this.
OVERRIDES_MAX_CHARS = 8192


@attrs.frozen
class NetworkConfig:
    """Where tasks run and how they launch: subnets, groups, capacity, platform."""

    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool
    capacity_provider: str
    platform_version: str

    def run_task_arguments(self) -> dict[str, Any]:
        """Return the RunTask arguments for placement and networking."""
        awsvpc: dict[str, Any] = {
            "subnets": list(self.subnets),
            "assignPublicIp": "ENABLED" if self.assign_public_ip else "DISABLED",
        }
        if self.security_groups:
            awsvpc["securityGroups"] = list(self.security_groups)
        arguments: dict[str, Any] = {
            "networkConfiguration": {"awsvpcConfiguration": awsvpc},
            "platformVersion": self.platform_version,
        }
        if self.capacity_provider == "FARGATE":
            # launchType needs no capacity provider attached to the cluster.
            arguments["launchType"] = "FARGATE"
        else:
            arguments["capacityProviderStrategy"] = [
                {"capacityProvider": self.capacity_provider, "weight": 1}
            ]
        return arguments


@attrs.frozen
class LaunchPlan:
    """A job checked against Fargate: its size, task shape and RunTask arguments."""

    size: FargateSize
    shape: TaskShape
    started_by: str
    client_token: str
    tags: list[dict[str, str]]
    overrides: dict[str, Any]

    def run_task_arguments(
        self, *, cluster: str, task_definition: str, network: NetworkConfig
    ) -> dict[str, Any]:
        """Return the full RunTask arguments."""
        return {
            "cluster": cluster,
            "taskDefinition": task_definition,
            "count": 1,
            "startedBy": self.started_by,
            "clientToken": self.client_token,
            "tags": self.tags,
            "propagateTags": "TASK_DEFINITION",
            "overrides": self.overrides,
            **network.run_task_arguments(),
        }


def _overrides(job: JobSpec) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER_NAME}
    if job.command is not None:
        container["command"] = list(job.command)
    environment = job.environment()
    if environment:
        container["environment"] = [
            {"name": name, "value": value} for name, value in sorted(environment.items())
        ]
    return {"containerOverrides": [container]}


def _refuse(job: JobSpec, executor: str, message: str) -> LaunchError:
    return LaunchError(message, executor=executor, job_id=job.job_id)


def plan_launch(
    job: JobSpec,
    *,
    executor: str,
    log_group: str,
    log_region: str,
    log_stream_prefix: str,
    execution_role_arn: str | None,
    task_role_arn: str | None,
    cpu_architecture: str = "X86_64",
) -> LaunchPlan:
    """Check ``job`` against Fargate's limits and build its launch; no API call.

    Raises:
        LaunchError: GPUs asked for, a size beyond the largest Fargate task, or
            overrides over ECS's length limit. The message names the field and
            never holds a secret value.
    """
    resources = job.resources
    if resources.gpu:
        raise _refuse(
            job, executor, f"resources.gpu: Fargate has no GPUs, asked for {resources.gpu}"
        )
    size = fargate_size(resources.cpu, resources.memory)
    if size is None:
        raise _refuse(
            job,
            executor,
            f"resources: cpu={resources.cpu:g}, memory={resources.memory}Mi is larger than the "
            f"largest Fargate task ({MAX_CPU:g} vCPU, {MAX_MEMORY_MB // 1024} GiB)",
        )
    overrides = _overrides(job)
    length = len(json.dumps(overrides["containerOverrides"], separators=(",", ":")))
    if length > OVERRIDES_MAX_CHARS:
        raise _refuse(
            job,
            executor,
            f"command/env/secrets: the RunTask container overrides are {length} characters, "
            f"over ECS's limit of {OVERRIDES_MAX_CHARS}; pass large values another way",
        )
    shape = TaskShape(
        image=job.image,
        entrypoint=job.entrypoint,
        working_dir=job.working_dir,
        cpu_units=size.cpu_units,
        memory_mb=size.memory_mb,
        log_group=log_group,
        log_region=log_region,
        log_stream_prefix=log_stream_prefix,
        execution_role_arn=execution_role_arn,
        task_role_arn=task_role_arn,
        cpu_architecture=cpu_architecture,
    )
    return LaunchPlan(
        size=size,
        shape=shape,
        started_by=started_by(job.job_id),
        client_token=client_token(job.job_id),
        tags=task_tags(job, executor),
        overrides=overrides,
    )


def failure_text(failures: Sequence[Any]) -> str:
    """Return RunTask's ``failures`` list as one readable line."""
    parts = []
    for failure in failures:
        if not isinstance(failure, dict):
            continue
        reason = failure.get("reason") or "unknown reason"
        detail = failure.get("detail")
        arn = failure.get("arn")
        text = f"{reason} ({detail})" if detail else str(reason)
        parts.append(f"{arn}: {text}" if arn else text)
    return "; ".join(parts) or "no task started and no reason given"
