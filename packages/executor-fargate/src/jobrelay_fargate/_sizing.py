"""Fargate task sizes: the valid (cpu units, memory MiB) pairs and rounding up to one.

Fargate accepts only fixed combinations. For each cpu size, memory runs from a
minimum to a maximum in fixed steps::

    cpu (vCPU)   memory
    0.25         512 MiB, 1 GiB, 2 GiB
    0.5          1 - 4 GiB in 1 GiB steps
    1            2 - 8 GiB in 1 GiB steps
    2            4 - 16 GiB in 1 GiB steps
    4            8 - 30 GiB in 1 GiB steps
    8            16 - 60 GiB in 4 GiB steps
    16           32 - 120 GiB in 8 GiB steps
"""

from __future__ import annotations

import math

import attrs

__all__ = ["MAX_CPU", "MAX_MEMORY_MB", "FargateSize", "fargate_size"]


@attrs.frozen
class _CpuTier:
    cpu_units: int
    memory: tuple[int, ...]


def _steps(low_gib: int, high_gib: int, step_gib: int) -> tuple[int, ...]:
    return tuple(gib * 1024 for gib in range(low_gib, high_gib + 1, step_gib))


_TIERS = (
    _CpuTier(256, (512, 1024, 2048)),
    _CpuTier(512, _steps(1, 4, 1)),
    _CpuTier(1024, _steps(2, 8, 1)),
    _CpuTier(2048, _steps(4, 16, 1)),
    _CpuTier(4096, _steps(8, 30, 1)),
    _CpuTier(8192, _steps(16, 60, 4)),
    _CpuTier(16384, _steps(32, 120, 8)),
)

MAX_CPU = _TIERS[-1].cpu_units / 1024
MAX_MEMORY_MB = _TIERS[-1].memory[-1]


@attrs.frozen
class FargateSize:
    """A valid Fargate task size.

    Args:
        cpu_units: ECS cpu units (1024 per vCPU), as the task definition wants them.
        memory_mb: memory in MiB.
    """

    cpu_units: int
    memory_mb: int

    @property
    def vcpu(self) -> float:
        """The size in vCPUs."""
        return self.cpu_units / 1024


def fargate_size(cpu: float, memory_mb: int) -> FargateSize | None:
    """Return the smallest valid Fargate size that gives at least ``cpu`` and ``memory_mb``.

    Smallest means fewest vCPUs first, then least memory: the cheapest pair that fits.
    Returns None when no Fargate size is that large.
    """
    wanted_units = math.ceil(cpu * 1024 - 1e-9)
    for tier in _TIERS:
        if tier.cpu_units < wanted_units:
            continue
        for memory in tier.memory:
            if memory >= memory_mb:
                return FargateSize(tier.cpu_units, memory)
    return None
