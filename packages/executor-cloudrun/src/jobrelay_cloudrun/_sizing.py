"""Rounding a job's resources up to a size Cloud Run jobs accept.

Cloud Run jobs take 1, 2, 4, 6 or 8 vCPU, and each cpu a memory range (below); a GPU
(one NVIDIA L4 per instance) needs at least 4 vCPU and 16 GiB. A request rounds up to
the smallest cpu that fits and the memory that cpu allows; anything larger than 8 vCPU
/ 32 GiB is refused before any call.
"""

from __future__ import annotations

import math

import attrs

from jobrelay import Resources

__all__ = ["CPUS", "MAX_CPU", "MAX_MEMORY_MB", "MEMORY_BOUNDS", "Size", "fit"]

# vCPU -> (least MiB, most MiB) a Cloud Run job accepts with it.
MEMORY_BOUNDS: dict[int, tuple[int, int]] = {
    1: (512, 4096),
    2: (512, 8192),
    4: (2048, 16384),
    6: (4096, 24576),
    8: (4096, 32768),
}
CPUS = tuple(MEMORY_BOUNDS)
MAX_CPU = CPUS[-1]
MAX_MEMORY_MB = MEMORY_BOUNDS[MAX_CPU][1]
GPU_MIN_CPU = 4
GPU_MIN_MEMORY_MB = 16384


class SizeError(ValueError):
    """The job asks for more than Cloud Run gives one task."""


@attrs.frozen
class Size:
    """What a task really gets (and is billed for)."""

    cpu: int
    memory_mb: int
    gpu: int = 0

    @property
    def limits(self) -> dict[str, str]:
        """The container's ``resources.limits``."""
        limits = {"cpu": str(self.cpu), "memory": f"{self.memory_mb}Mi"}
        if self.gpu:
            limits["nvidia.com/gpu"] = str(self.gpu)
        return limits


def fit(resources: Resources, *, gpu_type: str | None = None) -> Size:
    """Return the smallest Cloud Run size holding ``resources``.

    Raises:
        SizeError: more than 8 vCPU / 32 GiB, or a GPU when none is configured
            (``gpu_type``) or more than one.
    """
    gpu = resources.gpu
    if gpu and gpu_type is None:
        raise SizeError(f"gpu={gpu}: this executor has no gpu_type configured")
    if gpu > 1:
        raise SizeError(f"gpu={gpu}: Cloud Run jobs give one GPU per task")
    want_cpu = max(resources.cpu, GPU_MIN_CPU if gpu else 0)
    want_memory = max(resources.memory, GPU_MIN_MEMORY_MB if gpu else 0)
    for cpu in CPUS:
        low, high = MEMORY_BOUNDS[cpu]
        if cpu >= want_cpu - 1e-9 and want_memory <= high:
            return Size(cpu=cpu, memory_mb=max(low, math.ceil(want_memory)), gpu=gpu)
    raise SizeError(
        f"cpu={resources.cpu:g}, memory={resources.memory}Mi is larger than a Cloud Run "
        f"job task ({MAX_CPU} vCPU, {MAX_MEMORY_MB}Mi)"
    )
