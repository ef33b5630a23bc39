"""From a :class:`~jobrelay.JobSpec` to the arguments of ``create_container``."""

from __future__ import annotations

import math
from typing import Any

import docker.types

from jobrelay import JobSpec
from jobrelay.errors import LaunchError
from jobrelay.labels import workload_labels
from jobrelay_docker._config import Settings
from jobrelay_docker._state import LABEL_SECRET_ENV

__all__ = ["container_labels", "container_spec"]

_MIB = 1024 * 1024
_NANO = 1_000_000_000
_INT64_MAX = 2**63 - 1


def container_labels(job: JobSpec, settings: Settings) -> dict[str, str]:
    """Return the executor's labels, then the job's and jobrelay's (which win).

    Docker takes jobrelay's keys as they are; the one label of its own is the list of
    the environment variables that hold secrets (names only), so ``inspect`` can mask
    their values.
    """
    labels = {**settings.labels, **workload_labels(job, settings.name)}
    if job.secrets:
        labels[LABEL_SECRET_ENV] = ",".join(sorted(job.secrets))
    else:
        labels.pop(LABEL_SECRET_ENV, None)
    return labels


def _limits(job: JobSpec, settings: Settings) -> tuple[int, int]:
    """Return (memory bytes, nano-CPUs), refusing what the daemon's int64 fields cannot hold."""
    memory = job.resources.memory * _MIB
    if memory > _INT64_MAX:
        raise LaunchError(
            f"resources.memory: {job.resources.memory} MiB is more than Docker can express",
            executor=settings.name,
            job_id=job.job_id,
        )
    nano = job.resources.cpu * _NANO
    if not math.isfinite(nano) or nano > _INT64_MAX:
        raise LaunchError(
            f"resources.cpu: {job.resources.cpu:g} cores is more than Docker can express",
            executor=settings.name,
            job_id=job.job_id,
        )
    return memory, round(nano)


def container_spec(api: Any, job: JobSpec, settings: Settings) -> dict[str, Any]:
    """Return keyword arguments for ``APIClient.create_container`` (all but ``name``).

    Command and entrypoint go as argument lists, never through a shell; env values
    travel as JSON strings, so quotes and spaces arrive intact. Memory is a hard
    limit with no extra swap; CPU is a nano-CPU quota; GPUs are device requests.
    A job with ``stdin=True`` gets an open stdin, closed after one attach.
    """
    resources = job.resources
    memory, nano_cpus = _limits(job, settings)
    device_requests = None
    if resources.gpu > 0:
        device_requests = [docker.types.DeviceRequest(count=resources.gpu, capabilities=[["gpu"]])]
    host_config = api.create_host_config(
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=nano_cpus,
        network_mode=settings.network,
        device_requests=device_requests,
        binds=list(settings.volumes) or None,
    )
    return {
        "image": job.image,
        "command": list(job.command) if job.command is not None else None,
        "entrypoint": list(job.entrypoint) if job.entrypoint is not None else None,
        "environment": [f"{key}={value}" for key, value in job.environment().items()],
        "working_dir": job.working_dir,
        "labels": container_labels(job, settings),
        "host_config": host_config,
        # A job with stdin keeps it open until the first attach ends (StdinOnce), so
        # the job reads EOF after its input. docker-py writes StdinOnce only for a
        # non-detached create, where "detach" sets nothing else but the Attach*
        # fields: hints for the docker CLI, which the daemon ignores.
        "detach": not job.stdin,
        "tty": False,
        "stdin_open": job.stdin,
        "stop_timeout": settings.stop_grace,
        "user": settings.user,
    }
