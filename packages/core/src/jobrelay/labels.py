"""The labels every executor puts on its workloads, in one place.

Keys::

    jobrelay.managed   "true" on everything jobrelay created; cleanup, gc and
                       reconcile touch nothing without it
    jobrelay.job-id    the job's idempotency key (exact, where the backend allows)
    jobrelay.job-name  the job's human name
    jobrelay.executor  the name of the executor that launched it
    jobrelay.owner     who launched it (a Runner's ``owner``; default: this host's name)

:func:`workload_labels` builds the full set for a job; a backend only translates it to
its own label rules (Google Cloud: ``.`` becomes ``-``, values lowercased; AWS: tag
charset), never re-invents the keys.

Example::

    from jobrelay.labels import MANAGED, workload_labels

    labels = workload_labels(job, "docker")
    assert labels[MANAGED] == "true"
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Mapping

from jobrelay._spec import JobSpec

__all__ = [
    "EXECUTOR",
    "JOB_ID",
    "JOB_NAME",
    "KEYS",
    "MANAGED",
    "OWNER",
    "default_owner",
    "is_managed",
    "workload_labels",
]

MANAGED = "jobrelay.managed"
JOB_ID = "jobrelay.job-id"
JOB_NAME = "jobrelay.job-name"
EXECUTOR = "jobrelay.executor"
OWNER = "jobrelay.owner"
KEYS = (MANAGED, JOB_ID, JOB_NAME, EXECUTOR, OWNER)


@functools.cache
def default_owner() -> str:
    """Return the owner recorded when none is given: this host's name."""
    return socket.gethostname() or "localhost"


def workload_labels(job: JobSpec, executor: str, owner: str | None = None) -> dict[str, str]:
    """Return the labels of ``job``'s workload: the job's own, then jobrelay's.

    jobrelay's keys win over a job label of the same name, so no job can pose as
    unmanaged or as another job.

    Args:
        job: the job being launched.
        executor: the launching executor's name.
        owner: who launched it; default: the job's own ``jobrelay.owner`` label (a
            Runner sets it on the jobs it submits), else :func:`default_owner`.
    """
    labels = dict(job.labels)
    if owner is None:
        owner = labels.get(OWNER) or default_owner()
    labels.update(
        {
            MANAGED: "true",
            JOB_ID: job.job_id,
            JOB_NAME: job.name,
            EXECUTOR: executor,
            OWNER: owner,
        }
    )
    return labels


def is_managed(labels: Mapping[str, str] | None, *, managed_key: str = MANAGED) -> bool:
    """Return whether ``labels`` carry the managed flag (under a backend's spelling)."""
    return bool(labels) and labels is not None and labels.get(managed_key) == "true"
