"""The Cloud Run Job a jobrelay job becomes (the CreateJob body)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from jobrelay import JobSpec, LaunchError
from jobrelay.backend import lazy_import
from jobrelay.labels import workload_labels
from jobrelay_cloudrun._config import Settings
from jobrelay_cloudrun._names import ANNOTATED, execution_token, google_labels
from jobrelay_cloudrun._sizing import Size

if TYPE_CHECKING:
    from google.cloud import run_v2
else:
    run_v2 = lazy_import("google.cloud.run_v2")

__all__ = ["CONTAINER_NAME", "DEFAULT_TIMEOUT", "MAX_RETRIES", "MAX_TIMEOUT", "build_job"]

CONTAINER_NAME = "job"
# Without a jobrelay timeout the task gets 24 h (Cloud Run's own default is 600 s).
DEFAULT_TIMEOUT = 24 * 3600
MAX_TIMEOUT = 168 * 3600
MAX_RETRIES = 10


def build_job(job: JobSpec, *, executor: str, size: Size, settings: Settings) -> run_v2.Job:
    """Return the Job to create for ``job``, its first execution included.

    Raises:
        LaunchError: timeout or max_retries beyond what Cloud Run allows.
    """
    timeout = DEFAULT_TIMEOUT if job.timeout is None else math.ceil(job.timeout)
    if timeout > MAX_TIMEOUT:
        raise LaunchError(
            f"timeout: {job.timeout:g}s is longer than Cloud Run's {MAX_TIMEOUT}s",
            executor=executor,
            job_id=job.job_id,
        )
    if job.max_retries > MAX_RETRIES:
        raise LaunchError(
            f"max_retries: {job.max_retries} is more than Cloud Run's {MAX_RETRIES}",
            executor=executor,
            job_id=job.job_id,
        )
    labels = workload_labels(job, executor)
    env = [run_v2.EnvVar(name=key, value=value) for key, value in job.env.items()]
    env += [run_v2.EnvVar(name=key, value=value) for key, value in job.secrets.items()]
    container = run_v2.Container(
        name=CONTAINER_NAME,
        image=job.image,
        command=list(job.entrypoint) if job.entrypoint else [],
        args=list(job.command) if job.command else [],
        env=env,
        resources=run_v2.ResourceRequirements(limits=size.limits),
    )
    if job.working_dir:
        container.working_dir = job.working_dir
    task = run_v2.TaskTemplate(
        containers=[container],
        max_retries=job.max_retries,
        timeout=f"{timeout}s",
    )
    if settings.service_account:
        task.service_account = settings.service_account
    if settings.vpc_connector:
        task.vpc_access = run_v2.VpcAccess(connector=settings.vpc_connector)
        if settings.vpc_egress is not None:
            task.vpc_access.egress = getattr(run_v2.VpcAccess.VpcEgress, settings.vpc_egress)
    if size.gpu and settings.gpu_type:
        task.node_selector = run_v2.NodeSelector(accelerator=settings.gpu_type)
    google = google_labels(labels)
    return run_v2.Job(
        labels=google,
        annotations={key: labels[key] for key in ANNOTATED},
        template=run_v2.ExecutionTemplate(
            labels=google, task_count=1, parallelism=1, template=task
        ),
        start_execution_token=execution_token(job.job_id),
    )
