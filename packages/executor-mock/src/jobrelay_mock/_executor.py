"""An in-memory executor on simulated time, for tests, demos and routing dry runs."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Literal

import attrs

from jobrelay import (
    Capabilities,
    Clock,
    ConfigError,
    Cost,
    Execution,
    Health,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LaunchError,
    LogLine,
    Logs,
    ManualClock,
    SpecError,
    TransientExecutorError,
)
from jobrelay import labels as jr_labels
from jobrelay.backend import ExecutorBase, duration_of, make_result

__all__ = ["MockEvent", "MockExecutor", "MockOutcome"]

_UTC = timezone.utc
# Real seconds ``stream_logs`` waits at a job's timeout for whoever enforces it (a
# Runner) to cancel the job, before the job runs on to its scripted end.
TIMEOUT_GRACE = 5.0


def _transient_failures(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError("transient_failures", f"must be an int of 0 or more, got {value!r}")
    return value


def _duration(value: object) -> float:
    # NaN and infinity would pass "< 0" and then break the clock and datetimes later.
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise SpecError("duration", f"must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


@attrs.frozen
class MockOutcome:
    """What a mock job does.

    Args:
        exit_code: the exit code it ends with (0 succeeds).
        stdout: what it prints on stdout.
        stderr: what it prints on stderr.
        duration: simulated seconds it runs.
        pending: simulated seconds it waits in ``PENDING`` before it starts running.
        launch_error: when set, ``launch`` raises ``LaunchError`` with this message.
        transient_failures: ``launch`` raises ``TransientExecutorError`` this many
            times for the job before it succeeds.
        lost: the backend forgets the execution right after launch (``LOST``).
    """

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""
    duration: float = attrs.field(default=0.0, converter=_duration)
    pending: float = attrs.field(default=0.0, converter=_duration)
    launch_error: str | None = None
    transient_failures: int = attrs.field(default=0, converter=_transient_failures)
    lost: bool = False


@attrs.frozen
class MockEvent:
    """One call the mock received: ``method`` plus the job and execution concerned."""

    method: str
    job_id: str | None = None
    execution_id: str | None = None
    detail: str = ""


def outcome_from_labels(job: JobSpec) -> MockOutcome:
    """Read a job's ``mock.*`` labels into an outcome (the default behaviour).

    Labels: ``mock.exit-code``, ``mock.duration``, ``mock.pending``, ``mock.stdout``, ``mock.stderr``,
    ``mock.fail-launch`` (the error message), ``mock.transient-failures``, ``mock.lost``.
    Any absent label keeps :class:`MockOutcome`'s default.
    """
    labels = job.labels
    if not labels or not any(key.startswith("mock.") for key in labels):
        return _DEFAULT_OUTCOME
    unknown = sorted(key for key in labels if key.startswith("mock.") and key not in MOCK_LABELS)
    if unknown:
        raise SpecError(
            f"labels[{unknown[0]!r}]", f"unknown mock label; known: {', '.join(MOCK_LABELS)}"
        )
    lost = labels.get("mock.lost", "false").lower()
    if lost not in _BOOLEANS:
        raise SpecError("labels['mock.lost']", f"must be true or false, got {lost!r}")
    try:
        return MockOutcome(
            exit_code=int(labels.get("mock.exit-code", "0")),
            stdout=labels.get("mock.stdout", ""),
            stderr=labels.get("mock.stderr", ""),
            duration=float(labels.get("mock.duration", "0")),
            pending=float(labels.get("mock.pending", "0")),
            launch_error=labels.get("mock.fail-launch"),
            transient_failures=int(labels.get("mock.transient-failures", "0")),
            lost=_BOOLEANS[lost],
        )
    except ValueError as exc:
        raise SpecError("labels", f"bad mock.* label: {exc}") from None


_DEFAULT_OUTCOME = MockOutcome()
MOCK_LABELS = (
    "mock.duration",
    "mock.exit-code",
    "mock.fail-launch",
    "mock.lost",
    "mock.pending",
    "mock.stderr",
    "mock.stdout",
    "mock.transient-failures",
)
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@attrs.define
class _Record:
    execution: Execution
    job: JobSpec
    outcome: MockOutcome
    started: float
    cancelled_at: float | None = None


def _stamp(record: _Record, epoch: float) -> datetime:
    # Most instants asked for are the launch itself: reuse its datetime.
    if epoch == record.started:
        return record.execution.launched_at
    return datetime.fromtimestamp(epoch, _UTC)


def _lines(text: str, tail: int | None) -> str:
    if tail is None:
        return text
    if tail <= 0:
        return ""
    return "".join(text.splitlines(keepends=True)[-tail:])


class MockExecutor(ExecutorBase):
    """Runs nothing: jobs follow a scripted :class:`MockOutcome` on simulated time.

    Deterministic and never sleeps. By default each job succeeds at once with exit 0;
    ``behavior(job)`` or the job's ``mock.*`` labels script anything else. A job with
    a ``duration`` stays ``RUNNING`` until its clock passes the end; ``harvest`` and
    ``stream_logs`` wait for the end by advancing a :class:`~jobrelay.ManualClock`.

    Args:
        name: the executor's name (what ``Execution.executor`` says).
        behavior: ``job -> MockOutcome``; default reads the job's ``mock.*`` labels.
        clock: time source; default a ``ManualClock(follow_real_time=True)``: durations
            pass in real time, and waits (``harvest``, ``stream_logs``) jump to the end.
            Pass a plain ``ManualClock`` for time that moves only when told.
        healthy: what ``health()`` reports (settable later: ``executor.healthy = False``).
        capacity: most active executions at once; past it ``launch`` raises LaunchError.
        log_split: whether stdout and stderr are kept apart.
        remove_on_harvest: ``harvest`` cleans up the execution afterwards.
        keep_failed: keep failed executions even when ``remove_on_harvest``.
        cost_per_hour: what one hour of any job costs (``estimate_cost``); default 0.
        currency: the currency of ``cost_per_hour``.

    Attributes:
        events: every call received, as :class:`MockEvent`, in order.
    """

    def __init__(
        self,
        name: str = "mock",
        *,
        behavior: Callable[[JobSpec], MockOutcome] | None = None,
        clock: Clock | None = None,
        healthy: bool = True,
        capacity: int | None = None,
        log_split: bool = True,
        remove_on_harvest: bool = True,
        keep_failed: bool = False,
        cost_per_hour: Decimal | int | str = 0,
        currency: str = "USD",
    ) -> None:
        try:
            rate = Cost(0, currency, cost_per_hour, "config").rate_per_hour
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cost_per_hour: {exc}") from None
        if rate < 0:
            raise ConfigError(f"cost_per_hour: must be 0 or more, got {cost_per_hour!r}")
        self.cost_per_hour = rate
        self.currency = currency
        self._free = Cost(0, currency, 0, "mock cost_per_hour")
        self.keep_failed = keep_failed
        self.name = name
        self.behavior = behavior or outcome_from_labels
        self.clock: Clock = clock if clock is not None else ManualClock(follow_real_time=True)
        self.healthy = healthy
        self.capacity = capacity
        self.log_split = log_split
        self.remove_on_harvest = remove_on_harvest
        self.events: list[MockEvent] = []
        self.closed = False
        self._records: dict[str, _Record] = {}
        self._by_job: dict[str, str] = {}
        self._live: dict[str, _Record] = {}  # records not yet seen terminal (for capacity)
        self._attempts: dict[str, int] = {}
        self._counter = 0
        self._lock = threading.Lock()
        self._cancels = threading.Condition()

    # -- helpers ----------------------------------------------------------------------

    def calls(self, method: str) -> list[MockEvent]:
        """Return the events of one method, in order."""
        return [event for event in self.events if event.method == method]

    def labels_of(self, execution: Execution) -> dict[str, str]:
        """Return the labels the mock put on the workload (empty when unknown)."""
        record = self._records.get(execution.execution_id)
        if record is None:
            return {}
        return jr_labels.workload_labels(
            record.job, self.name, owner=str(record.execution.metadata["owner"])
        )

    def _state(self, record: _Record, now: float) -> JobStatus:
        outcome = record.outcome
        start = record.started + outcome.pending
        end = start + outcome.duration
        if record.cancelled_at is not None and record.cancelled_at < end:
            begun = _stamp(record, start) if record.cancelled_at >= start else None
            finished = _stamp(record, record.cancelled_at)
            return JobStatus(JobState.CANCELLED, None, "cancelled", begun, finished)
        if now < start:
            return JobStatus(JobState.PENDING)
        started = _stamp(record, start)
        if now < end:
            return JobStatus(JobState.RUNNING, None, None, started)
        finished = started if end == start else datetime.fromtimestamp(end, _UTC)
        if outcome.exit_code == 0:
            return JobStatus(JobState.SUCCEEDED, 0, None, started, finished)
        return JobStatus(
            JobState.FAILED, outcome.exit_code, f"exit code {outcome.exit_code}", started, finished
        )

    def _lookup(self, execution: Execution) -> _Record | None:
        record = self._records.get(execution.execution_id)
        if record is None or record.outcome.lost:
            return None
        return record

    def _active(self, now: float) -> int:
        # Time only moves forward, so a terminal record stays terminal: drop it from the
        # live set once, instead of re-checking every record on every launch.
        finished = [
            execution_id
            for execution_id, record in self._live.items()
            if self._state(record, now).is_terminal
        ]
        for execution_id in finished:
            del self._live[execution_id]
        return len(self._live)

    # -- the protocol -----------------------------------------------------------------

    def launch(self, job: JobSpec) -> Execution:
        """Start a simulated job; the same ``job_id`` returns the existing execution."""
        with self._lock:
            existing = self._by_job.get(job.job_id)
            if existing is not None:
                self.events.append(MockEvent("launch", job.job_id, existing, "existing"))
                return self._records[existing].execution
            outcome = self.behavior(job)
            attempt = 0
            if outcome.transient_failures:
                attempt = self._attempts.get(job.job_id, 0) + 1
                self._attempts[job.job_id] = attempt
            if attempt and attempt <= outcome.transient_failures:
                self.events.append(MockEvent("launch", job.job_id, None, "transient"))
                raise TransientExecutorError(
                    f"mock transient failure {attempt}/{outcome.transient_failures}",
                    executor=self.name,
                    job_id=job.job_id,
                )
            if outcome.launch_error is not None:
                self.events.append(MockEvent("launch", job.job_id, None, "error"))
                raise LaunchError(outcome.launch_error, executor=self.name, job_id=job.job_id)
            now = self.clock.time()
            if self.capacity is not None and self._active(now) >= self.capacity:
                self.events.append(MockEvent("launch", job.job_id, None, "capacity"))
                raise LaunchError(
                    f"mock executor {self.name!r} is at capacity ({self.capacity})",
                    executor=self.name,
                    job_id=job.job_id,
                )
            self._counter += 1
            execution_id = f"{self.name}-{self._counter}"
            execution = Execution(
                executor=self.name,
                execution_id=execution_id,
                job_id=job.job_id,
                launched_at=datetime.fromtimestamp(now, _UTC),
                metadata={"owner": jr_labels.owner_of(job)},
            )
            record = _Record(execution, job, outcome, now)
            self._records[execution_id] = record
            self._live[execution_id] = record
            self._by_job[job.job_id] = execution_id
            self.events.append(MockEvent("launch", job.job_id, execution_id))
            return execution

    def status(self, execution: Execution) -> JobStatus:
        """Return the simulated status at the clock's current time."""
        self.events.append(MockEvent("status", execution.job_id, execution.execution_id))
        record = self._lookup(execution)
        if record is None:
            return JobStatus(JobState.LOST, reason="no such execution")
        return self._state(record, self.clock.time())

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        """Return every status in one simulated backend call."""
        self.events.append(MockEvent("statuses"))
        now = self.clock.time()
        out: dict[str, JobStatus] = {}
        for execution in executions:
            record = self._lookup(execution)
            out[execution.execution_id] = (
                self._state(record, now)
                if record is not None
                else JobStatus(JobState.LOST, reason="no such execution")
            )
        return out

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return the scripted output (all of it once the job has started)."""
        self.events.append(MockEvent("logs", execution.job_id, execution.execution_id))
        record = self._lookup(execution)
        if record is None:
            return Logs()
        out, err = record.outcome.stdout, record.outcome.stderr
        if not self.log_split:
            out, err = out + err, ""
        return Logs(_lines(out, tail), _lines(err, tail))

    def stream_logs(self, execution: Execution) -> Iterator[LogLine]:
        """Wait (on simulated time) for the end, then yield the output lines.

        A job that would run past its ``timeout`` is waited for up to the timeout;
        there the wait gives whoever enforces it (a Runner) :data:`TIMEOUT_GRACE`
        real seconds to cancel the job, then goes on to the scripted end.
        """
        self.events.append(MockEvent("stream_logs", execution.job_id, execution.execution_id))
        record = self._lookup(execution)
        if record is None:
            return
        self._wait(record, stop_at_timeout=True)
        streams: list[tuple[Literal["stdout", "stderr"], str]] = [
            ("stdout", record.outcome.stdout),
            ("stderr", record.outcome.stderr),
        ]
        for stream, text in streams:
            for line in text.splitlines():
                yield LogLine("stdout" if not self.log_split else stream, line)

    def _wait(self, record: _Record, *, stop_at_timeout: bool = False) -> None:
        """Advance the clock to the job's end (and first to its timeout, if asked).

        A follower of the output (``stream_logs``) must not jump past the job's
        ``timeout``: whoever enforces it could never stop the job. It stops there and
        gives the enforcer up to :data:`TIMEOUT_GRACE` real seconds to cancel.
        """
        outcome = record.outcome
        start = record.started + outcome.pending
        limit = record.job.timeout
        if stop_at_timeout and limit is not None and outcome.duration > limit:
            remaining = start + limit - self.clock.time()
            if remaining > 0 and record.cancelled_at is None:
                self.clock.sleep(remaining)
            with self._cancels:
                self._cancels.wait_for(lambda: record.cancelled_at is not None, TIMEOUT_GRACE)
        remaining = start + outcome.duration - self.clock.time()
        if remaining > 0 and record.cancelled_at is None:
            self.clock.sleep(remaining)

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the end on simulated time; return status and logs; then clean up."""
        self.events.append(MockEvent("harvest", execution.job_id, execution.execution_id))
        record = self._lookup(execution)
        if record is None:
            return JobResult(
                execution, JobStatus(JobState.LOST, reason="no such execution"), Logs()
            )
        self._wait(record)
        status = self._state(record, self.clock.time())
        out, err = record.outcome.stdout, record.outcome.stderr
        logs = Logs(out, err) if self.log_split else Logs(out + err, "")
        cost = self._free
        if self.cost_per_hour:
            cost = self.estimate_cost(record.job, duration_of(status) or 0.0)
        result = make_result(execution, status, logs, cost=cost)
        if self.remove_on_harvest and not (self.keep_failed and status.state is JobState.FAILED):
            self._forget(execution)
        return result

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost:  # noqa: ARG002
        """Price any job at ``cost_per_hour``, per second of ``duration_seconds``."""
        if not self.cost_per_hour:
            return self._free
        seconds = Decimal(str(max(0.0, duration_seconds)))
        amount = self.cost_per_hour * seconds / 3600
        return Cost(amount, self.currency, self.cost_per_hour, "mock cost_per_hour")

    def cancel(self, execution: Execution) -> None:
        """Stop a running simulated job; idempotent, harmless on finished jobs."""
        self.events.append(MockEvent("cancel", execution.job_id, execution.execution_id))
        record = self._lookup(execution)
        if record is None or record.cancelled_at is not None:
            return
        now = self.clock.time()
        if not self._state(record, now).is_terminal:
            with self._cancels:
                record.cancelled_at = now
                self._cancels.notify_all()

    def cleanup(self, execution: Execution) -> None:
        """Forget the execution (its status becomes ``LOST``). Idempotent."""
        self.events.append(MockEvent("cleanup", execution.job_id, execution.execution_id))
        self._forget(execution)

    def _forget(self, execution: Execution) -> None:
        with self._lock:
            record = self._records.pop(execution.execution_id, None)
            self._live.pop(execution.execution_id, None)
            if record is not None and self._by_job.get(record.job.job_id) == execution.execution_id:
                del self._by_job[record.job.job_id]

    def capabilities(self) -> Capabilities:
        """Everything is supported, including ``list_managed``."""
        return Capabilities(
            max_gpu=8,
            persistent_storage=False,
            log_split=self.log_split,
            list_managed=True,
            cost_estimate=True,
        )

    def health(self) -> Health:
        """Report the ``healthy`` switch."""
        self.events.append(MockEvent("health"))
        return Health(self.healthy, 0.0, "" if self.healthy else "mock set unhealthy", "mock")

    def list_managed(self) -> list[Execution]:
        """Return the executions the backend still knows, active or not."""
        self.events.append(MockEvent("list_managed"))
        return [r.execution for r in self._records.values() if not r.outcome.lost]

    def close(self) -> None:
        """Mark the executor closed."""
        self.closed = True

    def __repr__(self) -> str:
        return f"MockExecutor(name={self.name!r}, executions={len(self._records)})"
