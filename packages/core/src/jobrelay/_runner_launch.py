"""Launching for the Runner: within the budget, waiting for an executor, settling unknowns.

A launch runs on the pool, in the context variables of the code that submitted the
job and under the Runner's owner label. A launch refused for want of capacity (or
of a healthy candidate) waits in the queue; one whose outcome is unknown (a transient
error after the Router's retries) is tried again on the same executor under the same
job id, which the executor contract makes idempotent, for ``harvest_timeout``
seconds; any other failure ends the job's handle with the error.
"""

from __future__ import annotations

import attrs

from jobrelay import labels as _labels
from jobrelay._clock import to_datetime
from jobrelay._handle import JobHandle, JobRecord
from jobrelay._models import Execution, JobResult, JobState, JobStatus, Logs
from jobrelay._runner_base import MIN_POLL, RunnerBase, logger, scrubbed_error
from jobrelay._spec import JobSpec
from jobrelay.errors import NoExecutorAvailableError, TransientExecutorError


class LaunchMixin(RunnerBase):
    """The Runner's launch path: from a dispatched handle to an active execution."""

    def _job_to_launch(self, record: JobRecord) -> JobSpec:
        """The spec this attempt launches: the submitted one, under a derived id on retries."""
        job = record.job
        assert job is not None  # noqa: S101 - only submitted jobs are launched
        if record.launched_job is None:
            record.launched_job = (
                job
                if record.attempt == 1
                else attrs.evolve(job, job_id=_derived_job_id(job.job_id, record.attempt))
            )
        return record.launched_job

    def _launch(self, handle: JobHandle) -> None:
        context = self._records[handle].submitted_in
        if context is None:
            self._launch_owned(handle)
        else:
            # A copy each time: one Context cannot be entered by two threads at once.
            context.copy().run(self._launch_owned, handle)

    def _launch_owned(self, handle: JobHandle) -> None:
        # Every workload this launch makes is labelled with this Runner's owner.
        with _labels.launching_for(self.owner):
            self._launch_in_context(handle)

    def _launch_in_context(self, handle: JobHandle) -> None:
        record = self._records[handle]
        with self._lock:
            cancelled = record.cancel_requested
            if cancelled:
                self._drop(handle, record)
            else:
                job = self._job_to_launch(record)
        if cancelled:
            self._notify_progress()
            return
        try:
            priced_on = self._reservations.reserve(record, job)
            # A launch pinned after an unknown outcome may have taken effect there: ask
            # the same executor again (idempotent by job id), never another one.
            execution = self.router.launch(job, record.context, only=record.pinned)
            if priced_on is not None and execution.executor != priced_on:
                self._reservations.reprice(record, job, execution.executor)
        except NoExecutorAvailableError as exc:
            if self._wait_for_executor(handle, record, exc):
                return
            self._fail_launch(handle, record, exc)
            return
        except TransientExecutorError as exc:
            if self._settle_later(handle, record, exc):
                return
            self._fail_launch(handle, record, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every failure lands on the handle
            self._fail_launch(handle, record, exc)
            return
        self.router.hooks.emit("job_launched", job=job, execution=execution)
        self.router.hooks.emit(
            "job_status_changed", execution=execution, old=None, new=JobState.PENDING
        )
        with self._lock:
            self._launching.discard(handle)
            record.execution = execution
            record.pinned = None
            record.failing_since = None
            record.failures = 0
            record.started = None
            record.deadline = None
            record.timed_out = False
            record.finishing = False
            record.status = JobStatus(JobState.PENDING, reason="launched")
            record.launched.set()
            self._active[execution.execution_id] = handle
            if record.cancel_requested:
                self._cancel_queue.append(handle)
        self._wakeup.set()
        self._notify_progress()

    def _wait_for_executor(
        self, handle: JobHandle, record: JobRecord, exc: NoExecutorAvailableError
    ) -> bool:
        """Queue a job again when waiting can help; say whether it was queued.

        Waiting for capacity is unbounded (our own jobs free it); waiting for unhealthy
        candidates to recover lasts at most ``harvest_timeout`` seconds.
        """
        now = self.clock.time()
        with self._lock:
            if record.cancel_requested:
                self._drop(handle, record)
            elif exc.capacity_only:
                self._launching.discard(handle)
                self._queue.appendleft(handle)
                self._blocked_since = now
            elif exc.retry_after is not None:
                if record.failing_since is None:
                    record.failing_since = now
                if now - record.failing_since >= self.harvest_timeout:
                    return False
                record.not_before = now + max(exc.retry_after, MIN_POLL)
                self._launching.discard(handle)
                self._waiting.add(handle)
            else:
                return False
        self._notify_progress()
        self._wakeup.set()
        return True

    def _settle_later(
        self, handle: JobHandle, record: JobRecord, exc: TransientExecutorError
    ) -> bool:
        """Keep a job whose launch outcome is unknown; try the same executor again later."""
        now = self.clock.time()
        with self._lock:
            if record.failing_since is None:
                record.failing_since = now
            if now - record.failing_since >= self.harvest_timeout or record.cancel_requested:
                return False
            record.pinned = exc.executor or record.pinned
            record.failures += 1
            record.not_before = now + min(0.5 * 2 ** min(record.failures, 10), 30.0)
            self._launching.discard(handle)
            self._waiting.add(handle)
        logger.warning(
            "launch of job %s: outcome unknown (%s); asking %s again later",
            record.job_id,
            self._scrub(record, str(exc)),
            record.pinned or "the router",
        )
        return True

    def _fail_launch(self, handle: JobHandle, record: JobRecord, exc: BaseException) -> None:
        text = self._scrub(record, str(exc))
        error = scrubbed_error(exc, text)
        now = to_datetime(self.clock.time())
        status = JobStatus(JobState.FAILED, reason=f"launch failed: {text}", finished_at=now)
        execution = Execution(
            executor=getattr(exc, "executor", None) or "",
            execution_id="",
            job_id=record.job_id,
            launched_at=now,
        )
        self._reservations.release(record)
        with self._lock:
            self._launching.discard(handle)
            self._waiting.discard(handle)
            self._counts["failed"] += 1
            record.status = status
            record.failure_result = JobResult(
                execution, status, Logs(), job=record.job, attempts=record.attempt
            )
            self._release_id(record)
        self._notify_progress()
        record.future.set_exception(error)
        self._wakeup.set()


def _derived_job_id(job_id: str, attempt: int) -> str:
    candidate = f"{job_id}.retry-{attempt}"
    if len(candidate) <= 128:
        return candidate
    import hashlib  # noqa: PLC0415 - only for ids this long: a command need not load it

    digest = hashlib.sha256(job_id.encode()).hexdigest()[:32]
    return f"{job_id[:80]}-{digest}.retry-{attempt}"
