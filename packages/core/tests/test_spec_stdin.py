"""``JobSpec.stdin``: a bool, False unless asked, carried through every copy of a spec."""

from __future__ import annotations

import attrs
import pytest

from jobrelay import JobSpec, SpecError


def test_stdin_is_off_unless_asked() -> None:
    assert JobSpec("busybox").stdin is False
    assert JobSpec("busybox", "cat", stdin=True).stdin is True


@pytest.mark.parametrize("value", [1, 0, "yes", "", None, 1.0, [True]])
def test_stdin_must_be_a_bool(value: object) -> None:
    with pytest.raises(SpecError, match=r"^stdin: must be True or False") as info:
        JobSpec("busybox", stdin=value)
    assert info.value.field == "stdin"


def test_stdin_is_keyword_only() -> None:
    positional: tuple[object, ...] = ("busybox", "cat", True)
    with pytest.raises(TypeError):
        JobSpec(*positional)


def test_stdin_survives_copies_and_takes_part_in_equality() -> None:
    job = JobSpec("busybox", "cat", stdin=True, job_id="fed")
    assert "stdin=True" in repr(job)
    assert JobSpec(**attrs.asdict(job, recurse=False)) == job
    assert attrs.evolve(job, job_id="fed-2").stdin is True
    assert attrs.evolve(job, stdin=False) != job


def test_a_job_fed_once_cannot_be_retried() -> None:
    # A retried attempt would wait for input nobody sends again.
    with pytest.raises(SpecError, match=r"^stdin: .*cannot be retried") as info:
        JobSpec("busybox", "cat", stdin=True, max_retries=2)
    assert info.value.field == "stdin"
    job = JobSpec("busybox", "cat", stdin=True)
    with pytest.raises(SpecError):
        attrs.evolve(job, max_retries=1)
