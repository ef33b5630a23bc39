"""From a Cloud Run Execution (and, for failures, its tasks) to a jobrelay status."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from jobrelay import JobState, JobStatus
from jobrelay.backend import lazy_import

if TYPE_CHECKING:
    from google.cloud import run_v2
else:
    run_v2 = lazy_import("google.cloud.run_v2")

__all__ = ["is_finished", "status_of"]

_DEADLINE_EXCEEDED = 4


def _completed(execution: run_v2.Execution) -> run_v2.Condition | None:
    return next((c for c in execution.conditions if c.type_ == "Completed"), None)


def _time(value: datetime | None) -> datetime | None:
    return value if isinstance(value, datetime) else None


def is_finished(execution: run_v2.Execution) -> bool:
    """Return whether the execution has ended (its ``completionTime`` or condition says so)."""
    if _time(execution.completion_time) is not None:
        return True
    completed = _completed(execution)
    return completed is not None and completed.state in (
        run_v2.Condition.State.CONDITION_SUCCEEDED,
        run_v2.Condition.State.CONDITION_FAILED,
    )


def status_of(execution: run_v2.Execution, tasks: Callable[[], Sequence[run_v2.Task]]) -> JobStatus:
    """Return the jobrelay status of ``execution``.

    ``tasks`` is called only for a failed execution, to find the exit code (or
    signal) of the task that failed: the Execution itself carries only counts.
    A cancelled execution is ``CANCELLED`` whatever its counts say.
    """
    started = _time(execution.start_time)
    finished = _time(execution.completion_time)
    completed = _completed(execution)
    message = completed.message if completed is not None and completed.message else None
    if not is_finished(execution):
        if (
            completed is not None
            and completed.execution_reason == run_v2.Condition.ExecutionReason.CANCELLING
        ):
            return JobStatus(JobState.RUNNING, reason="cancelling", started_at=started)
        if execution.running_count > 0 or started is not None:
            return JobStatus(JobState.RUNNING, started_at=started)
        return JobStatus(JobState.PENDING, reason=message, started_at=started)
    cancelled = execution.cancelled_count > 0 or (
        completed is not None
        and completed.execution_reason == run_v2.Condition.ExecutionReason.CANCELLED
    )
    if cancelled:
        return JobStatus(
            JobState.CANCELLED,
            reason=message or "cancelled",
            started_at=started,
            finished_at=finished,
        )
    wanted = max(execution.task_count, 1)
    if execution.failed_count == 0 and execution.succeeded_count >= wanted:
        return JobStatus(JobState.SUCCEEDED, exit_code=0, started_at=started, finished_at=finished)
    return _failure(tasks(), message, started, finished)


def _failure(
    tasks: Sequence[run_v2.Task],
    message: str | None,
    started: datetime | None,
    finished: datetime | None,
) -> JobStatus:
    for task in sorted(tasks, key=lambda t: t.index):
        result = task.last_attempt_result
        if result.status.code == _DEADLINE_EXCEEDED:
            reason = result.status.message or "the task ran past its timeout"
            return JobStatus(
                JobState.TIMED_OUT, reason=reason, started_at=started, finished_at=finished
            )
        if result.term_signal:
            return JobStatus(
                JobState.FAILED,
                exit_code=128 + result.term_signal,
                reason=f"killed by signal {result.term_signal}",
                started_at=started,
                finished_at=finished,
            )
        if result.exit_code:
            return JobStatus(
                JobState.FAILED,
                exit_code=result.exit_code,
                reason=message or result.status.message or None,
                started_at=started,
                finished_at=finished,
            )
    return JobStatus(
        JobState.FAILED,
        reason=message or "execution failed",
        started_at=started,
        finished_at=finished,
    )
