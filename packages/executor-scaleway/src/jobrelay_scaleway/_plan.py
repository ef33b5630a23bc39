"""What a job becomes on Scaleway: its size, its definition's shape, its run's overrides.

Scaleway has no labels or tags on definitions or runs, so jobrelay's identity
travels where the API keeps free text:

- each run's environment holds ``JOBRELAY_LABELS``, the JSON of
  :func:`jobrelay.labels.workload_labels` (managed flag, exact job id, job name,
  executor, owner, and the job's own labels);
- each definition jobrelay makes is named ``<prefix>-<shape hash>`` and its
  description is JSON holding the managed flag, the executor and the shape hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from jobrelay import JobSpec, LaunchError
from jobrelay.labels import EXECUTOR, JOB_ID, MANAGED, OWNER, workload_labels

__all__ = [
    "IDENTITY_VAR",
    "MAX_MEMORY_MB",
    "MAX_MVCPU",
    "MAX_TIMEOUT",
    "Plan",
    "Size",
    "definition_description",
    "definition_identity",
    "owns",
    "plan_launch",
    "run_identity",
    "size_for",
]

IDENTITY_VAR = "JOBRELAY_LABELS"
MIN_MVCPU = 70
MAX_MVCPU = 6000
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 16_384
MAX_TIMEOUT = 86_400


@attrs.frozen
class Size:
    """What a run is given: mvCPU and MiB, both whole numbers within Scaleway's limits."""

    mvcpu: int
    memory_mb: int

    @property
    def vcpu(self) -> Decimal:
        """VCPU as a Decimal (1000 mvCPU = 1 vCPU)."""
        return Decimal(self.mvcpu) / 1000


def size_for(cpu: float, memory_mb: int) -> Size | None:
    """Round ``cpu`` cores and ``memory_mb`` up to what Scaleway bills; None if too large.

    cpu goes up to a whole mvCPU (computed in decimal, so 0.1 core is 100 mvCPU and
    not 101) and at least 70 mvCPU; memory to at least 128 MiB. Beyond 6000 mvCPU or
    16384 MiB there is no size.
    """
    mvcpu = max(MIN_MVCPU, math.ceil(Decimal(repr(float(cpu))) * 1000))
    memory = max(MIN_MEMORY_MB, int(memory_mb))
    if mvcpu > MAX_MVCPU or memory > MAX_MEMORY_MB:
        return None
    return Size(mvcpu, memory)


@attrs.frozen
class Plan:
    """A job ready to launch: the definition shape it needs and its run overrides."""

    size: Size
    shape: Mapping[str, Any]
    shape_hash: str
    startup_command: list[str] | None
    args: list[str] | None
    environment: dict[str, str]
    secrets: tuple[str, ...]
    owner: str

    def definition_name(self, prefix: str) -> str:
        """The name of the definition for this shape."""
        return f"{prefix}-{self.shape_hash}"


def plan_launch(job: JobSpec, *, executor: str, local_storage_mb: int) -> Plan:
    """Check that ``job`` fits Serverless Jobs and plan its definition and run.

    Raises:
        LaunchError: GPUs, more than 6 vCPU / 16384 MiB, a timeout beyond 24 h, or a
            working directory (Serverless Jobs cannot set one); no call was made.
    """

    def refuse(message: str) -> LaunchError:
        return LaunchError(message, executor=executor, job_id=job.job_id)

    resources = job.resources
    if resources.gpu:
        raise refuse(f"resources: gpu={resources.gpu}: Scaleway Serverless Jobs has no GPUs")
    size = size_for(resources.cpu, resources.memory_mb)
    if size is None:
        raise refuse(
            f"resources: cpu={resources.cpu:g}, memory={resources.memory_mb}Mi is larger than "
            f"Scaleway Serverless Jobs allows ({MAX_MVCPU // 1000} vCPU, {MAX_MEMORY_MB} MiB)"
        )
    if job.timeout is not None and job.timeout > MAX_TIMEOUT:
        raise refuse(
            f"timeout: {job.timeout:g}s is longer than Serverless Jobs allows ({MAX_TIMEOUT}s)"
        )
    if job.working_dir is not None:
        raise refuse("working_dir: Scaleway Serverless Jobs cannot set a working directory")
    shape: dict[str, Any] = {
        "executor": executor,
        "image_uri": job.image,
        "startup_command": list(job.entrypoint) if job.entrypoint else [],
        "cpu_limit": size.mvcpu,
        "memory_limit": size.memory_mb,
        "local_storage_capacity": local_storage_mb,
        "job_timeout": f"{math.ceil(job.timeout)}s" if job.timeout is not None else None,
        "max_retries": job.max_retries,
    }
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
    environment = job.environment()
    labels = workload_labels(job, executor)
    environment[IDENTITY_VAR] = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return Plan(
        size=size,
        shape=shape,
        shape_hash=digest,
        startup_command=list(job.entrypoint) if job.entrypoint else None,
        args=list(job.command) if job.command else None,
        environment=environment,
        secrets=tuple(value for value in job.secrets.values() if value),
        owner=labels[OWNER],
    )


def definition_description(executor: str, shape_hash: str) -> str:
    """The description of a definition jobrelay makes: its identity, as JSON."""
    return json.dumps(
        {MANAGED: "true", EXECUTOR: executor, "jobrelay.shape": shape_hash}, sort_keys=True
    )


def definition_identity(description: str | None) -> dict[str, str]:
    """Read a definition's identity back from its description ({} if not jobrelay's)."""
    return _json_labels(description)


def run_identity(environment: Mapping[str, str] | None) -> dict[str, str]:
    """Read a run's jobrelay labels from its environment ({} if it carries none)."""
    return _json_labels((environment or {}).get(IDENTITY_VAR))


def _json_labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        decoded = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(decoded, dict):
        return {}
    return {str(key): str(value) for key, value in decoded.items()}


def owns(labels: Mapping[str, str], executor: str, job_id: str | None = None) -> bool:
    """True when ``labels`` mark a workload managed by ``executor`` (for ``job_id``)."""
    if labels.get(MANAGED) != "true" or labels.get(EXECUTOR) != executor:
        return False
    return job_id is None or labels.get(JOB_ID) == job_id
