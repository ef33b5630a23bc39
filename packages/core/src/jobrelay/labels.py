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

import contextlib
import contextvars
import functools
import socket
from collections.abc import Iterator, Mapping

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
    "launching_for",
    "owner_of",
    "workload_labels",
]

MANAGED = "jobrelay.managed"
JOB_ID = "jobrelay.job-id"
JOB_NAME = "jobrelay.job-name"
EXECUTOR = "jobrelay.executor"
OWNER = "jobrelay.owner"
KEYS = (MANAGED, JOB_ID, JOB_NAME, EXECUTOR, OWNER)


_OWNER: contextvars.ContextVar[str | None] = contextvars.ContextVar("jobrelay_owner", default=None)


@contextlib.contextmanager
def launching_for(owner: str) -> Iterator[None]:
    """Launches made in this block (this thread or task) are recorded as ``owner``'s.

    A Runner wraps its launches in it, so every executor labels the workload with the
    Runner's owner without the job being copied to carry it.
    """
    token = _OWNER.set(owner)
    try:
        yield
    finally:
        _OWNER.reset(token)


@functools.cache
def default_owner() -> str:
    """Return the owner recorded when none is given: this host's name."""
    return socket.gethostname() or "localhost"


def owner_of(job: JobSpec) -> str:
    """Return the owner a workload of ``job`` launched now is recorded under.

    The job's own ``jobrelay.owner`` label, else the :func:`launching_for` owner (a
    Runner's), else :func:`default_owner`.
    """
    return job.labels.get(OWNER) or _OWNER.get() or default_owner()


def workload_labels(job: JobSpec, executor: str, owner: str | None = None) -> dict[str, str]:
    """Return the labels of ``job``'s workload: the job's own, then jobrelay's.

    jobrelay's keys win over a job label of the same name, so no job can pose as
    unmanaged or as another job.

    Args:
        job: the job being launched.
        executor: the launching executor's name.
        owner: who launched it; default: the job's own ``jobrelay.owner`` label, else
            the owner of the :func:`launching_for` block the call is in (a Runner's),
            else :func:`default_owner`.
    """
    labels = dict(job.labels)
    if owner is None:
        owner = owner_of(job)
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
