"""From an ECS task description to a jobrelay :class:`~jobrelay.JobStatus`.

ECS lifecycle (``lastStatus``)::

    PROVISIONING -> PENDING -> ACTIVATING -> RUNNING
        -> DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED

The first three are jobrelay's PENDING, the next four RUNNING. A STOPPED task is
SUCCEEDED or FAILED by its essential container's exit code; stopped by our own
StopTask it is CANCELLED; with no exit code at all (image pull failed, out of
capacity, ``TaskFailedToStart``) it is FAILED with AWS's reason, never left hanging.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from jobrelay import JobState, JobStatus
from jobrelay_fargate._taskdefs import CONTAINER_NAME

__all__ = ["CANCEL_REASON_PREFIX", "task_status"]

CANCEL_REASON_PREFIX = "jobrelay:"

_PENDING = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
_RUNNING = frozenset({"RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING"})
_FAILED_TO_START = "TaskFailedToStart"


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _container(task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    containers = [c for c in task.get("containers", []) if isinstance(c, Mapping)]
    for container in containers:
        if container.get("name") == CONTAINER_NAME:
            return container
    return containers[0] if containers else None


def _failure_reason(task: Mapping[str, Any], container: Mapping[str, Any] | None) -> str:
    parts = [str(task.get("stopCode") or ""), str(task.get("stoppedReason") or "")]
    if container is not None and container.get("reason"):
        parts.append(f"container: {container['reason']}")
    text = "; ".join(part for part in parts if part)
    return text or "task stopped without an exit code"


def _stopped(
    task: Mapping[str, Any], container: Mapping[str, Any] | None, exit_code: int | None
) -> JobStatus:
    started = _utc(task.get("startedAt"))
    stopped = _utc(task.get("stoppedAt") or task.get("executionStoppedAt"))
    reason = str(task.get("stoppedReason") or "") or None
    if reason is not None and reason.startswith(CANCEL_REASON_PREFIX):
        return JobStatus(JobState.CANCELLED, exit_code, reason, started, stopped)
    if exit_code is None or task.get("stopCode") == _FAILED_TO_START:
        return JobStatus(JobState.FAILED, None, _failure_reason(task, container), started, stopped)
    state = JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED
    return JobStatus(state, exit_code, None if exit_code == 0 else reason, started, stopped)


def task_status(task: Mapping[str, Any]) -> JobStatus:
    """Return the jobrelay status of one ``DescribeTasks`` task."""
    last = str(task.get("lastStatus") or "")
    container = _container(task)
    raw_exit = container.get("exitCode") if container is not None else None
    exit_code = raw_exit if isinstance(raw_exit, int) and not isinstance(raw_exit, bool) else None
    if last == "STOPPED":
        return _stopped(task, container, exit_code)
    started = _utc(task.get("startedAt"))
    if task.get("stopCode") == _FAILED_TO_START:
        # Still deprovisioning, but it will never run: report it now.
        return JobStatus(JobState.FAILED, None, _failure_reason(task, container), started)
    if last in _PENDING:
        return JobStatus(JobState.PENDING, started_at=started)
    if last in _RUNNING:
        return JobStatus(JobState.RUNNING, started_at=started)
    # An unknown lastStatus from a newer ECS: not terminal, so keep polling.
    return JobStatus(JobState.PENDING, reason=f"unrecognised ECS status {last!r}")
