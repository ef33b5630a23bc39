"""Absurd input is refused by name, as SpecError, never as a crash deeper down."""

from __future__ import annotations

from typing import Any

import pytest

from jobrelay import JobSpec, SpecError


def nested(depth: int) -> dict[str, Any]:
    top: dict[str, Any] = {}
    current = top
    for _ in range(depth):
        current["x"] = {}
        current = current["x"]
    return top


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timeout": 10**5000}, "timeout"),
        ({"timeout": 10**400}, "timeout"),
        ({"resources": {"cpu": 1e300}}, "resources.cpu"),
        ({"resources": {"cpu": 10**400}}, "resources.cpu"),
        ({"resources": {"memory": 10**40}}, "resources.memory"),
        ({"resources": {"memory": 2**44}}, "resources.memory"),
        ({"resources": {"memory": "9" * 400_000}}, "resources.memory"),
        ({"resources": {"gpu": 10**5000}}, "resources.gpu"),
        ({"max_retries": 10**400}, "max_retries"),
        ({"working_dir": "/data\0x"}, "working_dir"),
        ({"command": ["echo", "a\0b"]}, "command[1]"),
        ({"metadata": nested(3000)}, "metadata"),
        ({"job_id": 10**5000}, "job_id"),
        ({"env": {"A": 10**5000}}, "env['A']"),
    ],
)
def test_absurd_values_are_a_spec_error_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(SpecError) as info:
        JobSpec("busybox", **fields)
    assert info.value.field == field
    assert len(str(info.value)) < 300


def test_reasonable_nesting_and_sizes_are_fine() -> None:
    job = JobSpec(
        "busybox",
        metadata=nested(20),
        timeout=7 * 24 * 3600,
        resources={"cpu": 64, "memory": "512Gi", "gpu": 8},
        max_retries=5,
    )
    assert job.resources.memory == 512 * 1024
    assert repr(job)
