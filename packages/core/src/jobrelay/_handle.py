"""What a Runner hands back for each job: a future-like, awaitable handle over one record."""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any, Protocol, TypeVar

import attrs

from jobrelay._models import Cost, Execution, JobResult, JobState, JobStatus
from jobrelay._spec import JobSpec
from jobrelay.errors import JobTimeoutError

_T = TypeVar("_T")

__all__ = ["JobHandle", "JobRecord", "Progress"]

_QUEUED = JobStatus(JobState.PENDING, reason="queued")


@attrs.frozen
class Progress:
    """Counts for a progress display, passed to the Runner's ``progress`` callback.

    Args:
        queued: submitted, not launched yet.
        running: launched (or launching) and not finished.
        succeeded, failed, cancelled, timed_out, lost: finished jobs by outcome.
        total: every job submitted (and re-attached) so far.
        spent: estimated spend of the jobs launched so far (finished ones at their
            real duration), when a budget is set or executors price their jobs.
    """

    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    lost: int = 0
    total: int = 0
    spent: Cost | None = None

    @property
    def finished(self) -> int:
        """Jobs that reached an end, whatever it was."""
        return self.succeeded + self.failed + self.cancelled + self.timed_out + self.lost


@attrs.define(eq=False)
class JobRecord:
    """The state of one job, owned and changed only by its Runner (under its lock).

    ``job`` is the submitted spec (None for re-attached executions); ``launched_job``
    what the current attempt launched (the owner label added, and a derived job id
    for Runner-side retries); ``submitted_in`` the context variables of the code that
    submitted it, under which its launches run (so a tracing span current at submit
    is current in the ``job_routed`` and ``job_launched`` hooks too).
    """

    job: JobSpec | None
    context: Mapping[str, Any] | None
    execution: Execution | None = None
    status: JobStatus = _QUEUED
    launched_job: JobSpec | None = None
    attempt: int = 1
    started: float | None = None
    deadline: float | None = None
    cancel_requested: bool = False
    timed_out: bool = False
    finishing: bool = False
    not_before: float = 0.0
    failing_since: float | None = None
    failures: int = 0
    pinned: str | None = None
    estimate: Cost | None = None
    future: cf.Future[JobResult] = attrs.Factory(cf.Future)
    launched: threading.Event = attrs.Factory(threading.Event)
    failure_result: JobResult | None = None
    submitted_in: contextvars.Context | None = None

    @property
    def job_id(self) -> str:
        """The submitted job's id (the execution's for re-attached jobs)."""
        if self.job is not None:
            return self.job.job_id
        return self.execution.job_id if self.execution is not None else ""


class _Canceller(Protocol):
    def cancel_job(self, handle: JobHandle) -> bool: ...


class JobHandle:
    """A submitted job: future-like, and awaitable.

    ``execution`` is None until the job is launched; ``job`` is None for executions
    re-attached by :meth:`Runner.reconcile`. ``await handle`` gives the
    :class:`~jobrelay.JobResult`, so ``asyncio.gather(*handles)`` works.
    """

    def __init__(self, record: JobRecord, runner: _Canceller) -> None:
        self._record = record
        self._runner = runner
        record.future.add_done_callback(lambda _: record.launched.set())

    @property
    def job(self) -> JobSpec | None:
        """The submitted spec (None for a re-attached execution)."""
        return self._record.job

    @property
    def context(self) -> Mapping[str, Any] | None:
        """The routing context given at submit."""
        return self._record.context

    @property
    def execution(self) -> Execution | None:
        """The current attempt's execution, once launched."""
        return self._record.execution

    @property
    def job_id(self) -> str:
        """The job's id (from the execution for re-attached jobs)."""
        return self._record.job_id

    @property
    def attempts(self) -> int:
        """Launches made so far (1 before and during the first)."""
        return self._record.attempt

    def status(self) -> JobStatus:
        """The last status the Runner saw (``PENDING``/"queued" before launch)."""
        return self._record.status

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel` (or a cancelling shutdown) asked for the job to stop."""
        return self._record.cancel_requested

    def wait_launched(self, timeout: float | None = None) -> Execution | None:
        """Wait until the job is launched (or ended without launch); return its execution."""
        self._record.launched.wait(timeout)
        return self._record.execution

    def done(self) -> bool:
        """True once the job has a result, an error, or was cancelled before launch."""
        return self._record.future.done()

    def result(self, timeout: float | None = None) -> JobResult:
        """Wait for the job's result.

        Raises:
            concurrent.futures.CancelledError: cancelled before it was launched.
            JobrelayError: the job could not be launched or harvested.
            JobTimeoutError: ``timeout`` seconds passed first (a ``TimeoutError``).
        """
        return self._waited(self._record.future.result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the job; return the error it ended with, or None."""
        return self._waited(self._record.future.exception, timeout)

    def _waited(self, wait: Callable[[float | None], _T], timeout: float | None) -> _T:
        try:
            return wait(timeout)
        except cf.TimeoutError:
            raise JobTimeoutError(
                f"job {self.job_id!r} did not finish within {timeout}s",
                job_id=self.job_id,
                timeout=timeout,
            ) from None

    def add_done_callback(self, fn: Callable[[JobHandle], object]) -> None:
        """Call ``fn(handle)`` once the job is done (at once if it already is)."""
        self._record.future.add_done_callback(lambda _: fn(self))

    def cancel(self) -> bool:
        """Cancel the job: drop it from the queue, or stop its workload.

        Returns False when the job had already finished.
        """
        return self._runner.cancel_job(self)

    def __await__(self) -> Generator[Any, None, JobResult]:
        import asyncio  # noqa: PLC0415 - asyncio costs 25 ms to import; only await needs it

        return asyncio.wrap_future(self._record.future).__await__()

    def __repr__(self) -> str:
        execution = self._record.execution
        where = execution.execution_id if execution else "queued"
        return f"JobHandle(job_id={self.job_id!r}, {where}, {self._record.status.state.value})"
