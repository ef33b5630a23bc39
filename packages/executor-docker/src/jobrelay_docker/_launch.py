"""From a :class:`~jobrelay.JobSpec` to the arguments of ``create_container``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import docker.types

from jobrelay import JobSpec
from jobrelay_docker._config import Settings
from jobrelay_docker._state import (
    LABEL_EXECUTOR,
    LABEL_JOB_ID,
    LABEL_JOB_NAME,
    LABEL_MANAGED,
    LABEL_SECRET_ENV,
)

__all__ = ["container_labels", "container_spec", "scrub"]

_MIB = 1024 * 1024
_NANO = 1_000_000_000


def container_labels(job: JobSpec, settings: Settings) -> dict[str, str]:
    """Return the executor's labels, the job's, then jobrelay's (which win)."""
    labels = {**settings.labels, **job.labels}
    labels.update(
        {
            LABEL_MANAGED: "true",
            LABEL_JOB_ID: job.job_id,
            LABEL_JOB_NAME: job.name,
            LABEL_EXECUTOR: settings.name,
        }
    )
    if job.secrets:
        labels[LABEL_SECRET_ENV] = ",".join(sorted(job.secrets))
    else:
        labels.pop(LABEL_SECRET_ENV, None)
    return labels


def container_spec(api: Any, job: JobSpec, settings: Settings) -> dict[str, Any]:
    """Return keyword arguments for ``APIClient.create_container`` (all but ``name``).

    Command and entrypoint go as argument lists, never through a shell; env values
    travel as JSON strings, so quotes and spaces arrive intact. Memory is a hard
    limit with no extra swap; CPU is a nano-CPU quota; GPUs are device requests.
    """
    resources = job.resources
    memory = resources.memory * _MIB
    device_requests = None
    if resources.gpu > 0:
        device_requests = [docker.types.DeviceRequest(count=resources.gpu, capabilities=[["gpu"]])]
    host_config = api.create_host_config(
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=round(resources.cpu * _NANO),
        network_mode=settings.network,
        device_requests=device_requests,
    )
    return {
        "image": job.image,
        "command": list(job.command) if job.command is not None else None,
        "entrypoint": list(job.entrypoint) if job.entrypoint is not None else None,
        "environment": [f"{key}={value}" for key, value in job.environment().items()],
        "working_dir": job.working_dir,
        "labels": container_labels(job, settings),
        "host_config": host_config,
        "detach": True,
        "tty": False,
        "stdin_open": False,
        "stop_timeout": settings.stop_grace,
    }


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret value replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text
