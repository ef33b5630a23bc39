"""From a Serverless Jobs run to a jobrelay status.

Success is read from the run's state and reason, never from its exit code: the SDK
fills a missing ``exit_code`` with 0, so a run that never started (``image_not_found``)
would otherwise look like a clean exit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jobrelay import JobState, JobStatus

__all__ = ["ACTIVE_STATES", "run_status"]

_PENDING = {"initialized", "validated", "queued", "unknown_state"}
_RUNNING = {"running", "retrying", "interrupting"}
ACTIVE_STATES = ("initialized", "validated", "queued", "running", "retrying", "interrupting")


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def run_status(run: Any) -> JobStatus:
    """Map a ``JobRun`` (the SDK's dataclass) to a :class:`JobStatus`."""
    state = _text(run.state)
    reason = _text(run.reason)
    message = run.error_message or ""
    exit_code: int | None = run.exit_code
    started = _aware(run.started_at)
    finished = _aware(run.terminated_at)
    if state in _PENDING:
        return JobStatus(JobState.PENDING, reason=state, started_at=started)
    if state in _RUNNING:
        return JobStatus(JobState.RUNNING, reason=state, started_at=started)
    detail = ": ".join(part for part in (reason, message) if part and part != "unknown_reason")
    if state == "succeeded" and reason in {"", "unknown_reason"}:
        return JobStatus(
            JobState.SUCCEEDED, exit_code=exit_code or 0, started_at=started, finished_at=finished
        )
    if reason != "exited_with_error" and not exit_code:
        # The run never exited (image not found, timeout, stop...): the 0 is the SDK's.
        exit_code = None
    if reason == "timeout":
        job_state = JobState.TIMED_OUT
    elif state == "interrupted" or reason == "cancellation":
        job_state = JobState.CANCELLED
    else:
        job_state = JobState.FAILED
    return JobStatus(
        job_state,
        exit_code=exit_code,
        reason=detail or state,
        started_at=started,
        finished_at=finished,
    )
