"""From container data (inspect or list summary) to :class:`~jobrelay.JobStatus`.

Container names carry two facts the daemon keeps for us:

- ``jobrelay-<job_id>``: the name a job's container is created with. Docker refuses
  a second container of the same name (409), which makes launch idempotent.
- ``jobrelay-cancelled-<container id>``: the name ``cancel`` renames it to *before*
  stopping it. A rename is atomic, survives daemon restarts and shows in both the
  inspect data and the list summary, so any process, and the single list call behind
  ``statuses()``, can tell a container we stopped (exit 137 or 143) from one that
  died by itself with the same code. The name embeds the container's own id, which
  no job id can produce for that container, so the test is exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from jobrelay import JobState, JobStatus
from jobrelay.labels import MANAGED

__all__ = [
    "CANCELLED_PREFIX",
    "CONTAINER_PREFIX",
    "FORGOTTEN_PREFIX",
    "LABEL_SECRET_ENV",
    "MANAGED_FILTER",
    "cancelled_name",
    "container_name",
    "forgotten_name",
    "is_cancelled",
    "is_forgotten",
    "is_stale",
    "parse_time",
    "status_from_inspect",
    "status_from_summary",
    "summary_created_at",
]

CONTAINER_PREFIX = "jobrelay-"
CANCELLED_PREFIX = "jobrelay-cancelled-"
# A container whose run began (it wrote output) but that a restarted daemon restored
# as never started: renamed so, it is never started a second time.
FORGOTTEN_PREFIX = "jobrelay-forgotten-"
# Names (never values) of the environment variables that came from JobSpec.secrets.
LABEL_SECRET_ENV = "jobrelay.secret-env"  # noqa: S105 - a label name, not a secret
MANAGED_FILTER = f"{MANAGED}=true"

_RUNNING = frozenset({"running", "paused", "restarting"})
_EXITED_RE = re.compile(r"Exited \((-?\d+)\)")
_TIME_RE = re.compile(
    r"(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?"
    r"(?P<zone>Z|[+-]\d\d:\d\d)"
)


def container_name(job_id: str) -> str:
    """Return the name a job's container is created with."""
    return f"{CONTAINER_PREFIX}{job_id}"


def cancelled_name(container_id: str) -> str:
    """Return the name ``cancel`` gives a container before stopping it."""
    return f"{CANCELLED_PREFIX}{container_id}"


def forgotten_name(container_id: str) -> str:
    """Return the name a launch gives a container whose run the daemon forgot."""
    return f"{FORGOTTEN_PREFIX}{container_id}"


def is_forgotten(name: str, container_id: str) -> bool:
    """True when the container carries the forgotten-run name (exact match)."""
    return name.lstrip("/") == forgotten_name(container_id)


def is_cancelled(name: str, container_id: str) -> bool:
    """True when the container carries the cancellation name (exact match)."""
    return name.lstrip("/") == cancelled_name(container_id)


def parse_time(text: object) -> datetime | None:
    """Parse Docker's RFC 3339 time (nanoseconds allowed); None for unset (year 1)."""
    if not isinstance(text, str) or not text or text.startswith("0001-01-01"):
        return None
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return None
    moment = datetime.strptime(match["base"], "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 - zone below
    fraction = (match["frac"] or "")[:6].ljust(6, "0")
    moment = moment.replace(microsecond=int(fraction))
    zone = match["zone"]
    if zone == "Z":
        return moment.replace(tzinfo=timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment.replace(tzinfo=timezone(sign * offset))


def _terminal(
    *,
    cancelled: bool,
    exit_code: int | None,
    oom_killed: bool,
    error: str,
    started_at: datetime | None,
    finished_at: datetime | None,
) -> JobStatus:
    if cancelled:
        state, reason = JobState.CANCELLED, "cancelled"
    elif oom_killed:
        state, reason = JobState.FAILED, "oom-killed"
    elif exit_code == 0:
        state, reason = JobState.SUCCEEDED, None
    else:
        state, reason = JobState.FAILED, error or None
    return JobStatus(
        state, exit_code=exit_code, reason=reason, started_at=started_at, finished_at=finished_at
    )


def _created(
    cancelled: bool, created_at: datetime | None, start_grace: float, *, forgotten: bool = False
) -> JobStatus:
    """The status of a container that was created and never started.

    A launch starts its container right after creating it; one still not started
    ``start_grace`` seconds later was left by a launch that died or lost the daemon,
    and nobody will start it: that is a failure to report, not a wait for ever.
    """
    if cancelled:
        return JobStatus(JobState.CANCELLED, reason="cancelled before it started")
    if forgotten:
        return JobStatus(
            JobState.LOST,
            reason="the daemon forgot this run: it began (it wrote output), then the "
            "restarted daemon restored it as never started; not started again, so the "
            "job does not run twice",
        )
    if is_stale(created_at, start_grace):
        return JobStatus(
            JobState.FAILED,
            reason=f"never started: its launch did not start it within {start_grace:g}s",
        )
    return JobStatus(JobState.PENDING)


def is_stale(created_at: datetime | None, start_grace: float) -> bool:
    """True when a never-started container was created more than ``start_grace`` ago."""
    if created_at is None:
        return False
    return (datetime.now(timezone.utc) - created_at).total_seconds() > start_grace


def status_from_inspect(data: Mapping[str, Any], *, start_grace: float) -> JobStatus:
    """Map ``inspect_container`` data to a status (times, OOM and cancel included)."""
    state: Mapping[str, Any] = data.get("State") or {}
    phase = str(state.get("Status", ""))
    cancelled = is_cancelled(str(data.get("Name", "")), str(data.get("Id", "")))
    started_at = parse_time(state.get("StartedAt"))
    if phase == "created":
        forgotten = is_forgotten(str(data.get("Name", "")), str(data.get("Id", "")))
        return _created(
            cancelled, parse_time(data.get("Created")), start_grace, forgotten=forgotten
        )
    if phase in _RUNNING:
        reason = "cancel requested" if cancelled else (None if phase == "running" else phase)
        return JobStatus(JobState.RUNNING, reason=reason, started_at=started_at)
    if phase == "removing":
        return JobStatus(JobState.LOST, reason="container is being removed")
    finished_at = parse_time(state.get("FinishedAt"))
    if phase == "dead":
        error = str(state.get("Error") or "")
        return JobStatus(
            JobState.CANCELLED if cancelled else JobState.FAILED,
            reason="dead" + (f": {error}" if error else ""),
            started_at=started_at,
            finished_at=finished_at,
        )
    if started_at is not None and finished_at is not None and finished_at < started_at:
        # The daemon stamps StartedAt once the runtime reports the start, which can
        # be after a very short process already exited: it cannot really be later.
        started_at = finished_at
    raw_code = state.get("ExitCode")
    return _terminal(
        cancelled=cancelled,
        exit_code=raw_code if isinstance(raw_code, int) else None,
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        started_at=started_at,
        finished_at=finished_at,
    )


def summary_created_at(summary: Mapping[str, Any]) -> datetime | None:
    """When a list entry's container was created, at the latest.

    The list gives whole epoch seconds, cut down from the real time: the end of that
    second is used, so a container is never judged older than it is (a fresh one is
    never taken for abandoned, nor reported "never started", before its grace ends).
    """
    created = summary.get("Created")
    if isinstance(created, bool) or not isinstance(created, (int, float)):
        return None
    latest = created + 1 if isinstance(created, int) else created
    return datetime.fromtimestamp(latest, timezone.utc)


def status_from_summary(summary: Mapping[str, Any], *, start_grace: float) -> JobStatus:
    """Map one entry of the container list to a status.

    The list carries the state, the names and the exit code (inside the ``Status``
    text, ``"Exited (3) 2 seconds ago"``, a format the daemon has kept since its first
    API version), but no OOM flag and no start/finish times: ``status()`` adds those.
    """
    phase = str(summary.get("State", ""))
    container_id = str(summary.get("Id", ""))
    names = summary.get("Names") or ()
    cancelled = any(is_cancelled(str(name), container_id) for name in names)
    if phase == "created":
        forgotten = any(is_forgotten(str(name), container_id) for name in names)
        return _created(cancelled, summary_created_at(summary), start_grace, forgotten=forgotten)
    if phase in _RUNNING:
        reason = "cancel requested" if cancelled else (None if phase == "running" else phase)
        return JobStatus(JobState.RUNNING, reason=reason)
    if phase == "removing":
        return JobStatus(JobState.LOST, reason="container is being removed")
    if phase == "dead":
        return JobStatus(JobState.CANCELLED if cancelled else JobState.FAILED, reason="dead")
    match = _EXITED_RE.match(str(summary.get("Status", "")))
    return _terminal(
        cancelled=cancelled,
        exit_code=int(match[1]) if match else None,
        oom_killed=False,
        error="",
        started_at=None,
        finished_at=None,
    )
