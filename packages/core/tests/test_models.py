"""States, statuses, results and the clocks."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import attrs
import pytest

from jobrelay import (
    Capabilities,
    Clock,
    Execution,
    Health,
    JobResult,
    JobState,
    JobStatus,
    LogLine,
    Logs,
    ManualClock,
    SystemClock,
)

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
EXECUTION = Execution("mock", "mock-1", "job-1", WHEN, {"region": "eu"})


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (JobState.PENDING, False),
        (JobState.RUNNING, False),
        (JobState.SUCCEEDED, True),
        (JobState.FAILED, True),
        (JobState.CANCELLED, True),
        (JobState.TIMED_OUT, True),
        (JobState.LOST, True),
    ],
)
def test_is_terminal(state: JobState, terminal: bool) -> None:
    assert state.is_terminal is terminal
    assert JobStatus(state).is_terminal is terminal


def test_states_are_exactly_the_documented_ones() -> None:
    assert [s.name for s in JobState] == [
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "TIMED_OUT",
        "LOST",
    ]


def test_state_values_are_strings() -> None:
    assert JobState("timed_out") is JobState.TIMED_OUT
    assert str(JobState.SUCCEEDED) == "succeeded"
    assert f"{JobState.LOST}" == "lost"
    assert isinstance(JobState.RUNNING, str)
    assert JobState.RUNNING.value == "running"


@pytest.mark.parametrize(
    ("status", "succeeded"),
    [
        (JobStatus(JobState.SUCCEEDED, 0), True),
        (JobStatus(JobState.FAILED, 3, "exit code 3"), False),
        (JobStatus(JobState.LOST, reason="gone"), False),
        (JobStatus(JobState.CANCELLED), False),
        (JobStatus(JobState.TIMED_OUT), False),
    ],
)
def test_result_shortcuts(status: JobStatus, succeeded: bool) -> None:
    result = JobResult(EXECUTION, status, Logs("out", "err"), duration=1.5)
    assert result.state is status.state
    assert result.exit_code == status.exit_code
    assert result.succeeded is succeeded
    assert result.cost is None


def test_value_objects_are_frozen_and_compare_by_value() -> None:
    status = JobStatus(JobState.SUCCEEDED, 0, None, WHEN, WHEN)
    assert status == JobStatus(JobState.SUCCEEDED, 0, None, WHEN, WHEN)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        status.exit_code = 1  # type: ignore[misc]
    assert Logs() == Logs("", "", truncated=False)
    assert LogLine("stderr", "x").timestamp is None


def test_execution_metadata_is_a_frozen_copy() -> None:
    metadata = {"region": "eu"}
    execution = Execution("mock", "mock-1", "job-1", WHEN, metadata)
    metadata["region"] = "us"
    assert execution.metadata["region"] == "eu"
    with pytest.raises(TypeError):
        execution.metadata["region"] = "us"  # type: ignore[index]
    assert dict(Execution("mock", "m", "j", WHEN).metadata) == {}


def test_capabilities() -> None:
    caps = Capabilities()
    assert caps.gpu is False
    assert Capabilities(max_gpu=2).gpu is True
    assert (caps.log_split, caps.cancel, caps.list_managed) == (True, True, False)


def test_health() -> None:
    assert Health(healthy=False, detail="connection refused").version is None


# -- clocks -----------------------------------------------------------------------------


def test_manual_clock_never_waits() -> None:
    clock = ManualClock(100.0)
    assert clock.time() == 100.0
    started = time.monotonic()
    clock.sleep(3600)
    assert time.monotonic() - started < 5
    assert clock.time() == 3700.0
    clock.advance(0.5)
    assert clock.time() == 3700.5


def test_manual_clock_ignores_negative_and_zero() -> None:
    clock = ManualClock(10.0)
    clock.sleep(-5)
    clock.advance(0)
    assert clock.time() == 10.0


def test_manual_clock_default_starts_now() -> None:
    before = time.time()
    clock = ManualClock()
    assert before <= clock.time() <= time.time()


def test_manual_clock_is_thread_safe() -> None:
    clock = ManualClock(0.0)

    def tick() -> None:
        for _ in range(2000):
            clock.advance(1)

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.time() == 8000.0


def test_system_clock() -> None:
    clock = SystemClock()
    assert abs(clock.time() - time.time()) < 5
    started = time.monotonic()
    clock.sleep(0.01)
    clock.sleep(0)
    clock.sleep(-1)
    elapsed = time.monotonic() - started
    assert 0.01 <= elapsed < 5
    assert repr(clock) == "SystemClock()"


def test_clocks_satisfy_the_protocol() -> None:
    clocks: list[Clock] = [SystemClock(), ManualClock()]
    for clock in clocks:
        assert isinstance(clock.time(), float)
