"""Harvesting for the Runner: results, Runner-side retries, and giving up on a backend.

A job seen at its end is harvested on the pool. A harvest that cannot reach the
backend is tried again with backoff for ``harvest_timeout`` seconds, then the job's
handle ends with the error and the workload is left for :meth:`Runner.reconcile`
(nothing is cleaned up after a failed harvest). A job that ended in one of the
Runner's ``retry_on`` states with retries left is launched again under a derived
job id.
"""

from __future__ import annotations

import attrs

from jobrelay._handle import JobHandle, JobRecord
from jobrelay._models import JobResult, JobState, JobStatus, Logs
from jobrelay._protocol import Executor
from jobrelay._runner_base import OUTCOME_FIELD, RunnerBase, logger, scrubbed_error
from jobrelay.errors import TransientExecutorError


class HarvestMixin(RunnerBase):
    """The Runner's harvest path: from a job seen at its end to its handle's result."""

    def _finish(self, handle: JobHandle, record: JobRecord) -> None:
        with self._lock:
            if record.finishing:
                return
            record.finishing = True
        self._spawn(self._harvest, handle)

    def _harvest(self, handle: JobHandle) -> None:
        record = self._records[handle]
        execution = record.execution
        assert execution is not None  # noqa: S101
        executor = self.router.executor(execution.executor)
        try:
            result = executor.harvest(execution)
        except TransientExecutorError as exc:
            if self._harvest_later(handle, record, exc):
                return
            self._give_up(handle, record, exc)
            return
        except Exception as exc:  # noqa: BLE001 - reported on the handle
            self._give_up(handle, record, exc)
            return
        if record.timed_out and result.status.state is JobState.CANCELLED:
            # We stopped it because it ran past its timeout: say so, keep exit code and logs.
            result = attrs.evolve(result, status=as_timed_out(result.status, record))
        result = attrs.evolve(result, job=record.job, attempts=record.attempt)
        self.router.release(execution)
        self.router.hooks.emit("job_finished", execution=execution, result=result)
        if self._retry(handle, record, result, executor):
            return
        with self._lock:
            self._active.pop(execution.execution_id, None)
            self._blocked_since = None
            record.status = result.status
            self._counts[OUTCOME_FIELD[result.status.state]] += 1
            self._reservations.settle(record, result)
            self._release_id(record)
        self._notify_progress()
        record.future.set_result(result)
        self._wakeup.set()

    def _retry(
        self, handle: JobHandle, record: JobRecord, result: JobResult, executor: Executor
    ) -> bool:
        """Relaunch a failed job under a derived job id, if it has retries left.

        Not where the backend retries itself (``Capabilities.platform_retries``): it
        already did, as many times as the job asked.
        """
        job = record.job
        if (
            job is None
            or record.cancel_requested
            or result.status.state not in self.retry_on
            or record.attempt > job.max_retries
            or executor.capabilities().platform_retries
        ):
            return False
        assert record.execution is not None  # noqa: S101
        with self._lock:
            self._active.pop(record.execution.execution_id, None)
            self._reservations.settle(record, result)
            record.attempt += 1
            record.launched_job = None
            record.execution = None
            record.status = JobStatus(
                JobState.PENDING, reason=f"retry {record.attempt - 1} of {job.max_retries}"
            )
            record.not_before = self.clock.time() + self.retry_backoff * 2 ** (record.attempt - 2)
            self._waiting.add(handle)
        logger.info(
            "job %s ended %s; retrying (attempt %d)", job.job_id, result.state, record.attempt
        )
        self._wakeup.set()
        return True

    def _harvest_later(self, handle: JobHandle, record: JobRecord, exc: BaseException) -> bool:
        now = self.clock.time()
        with self._lock:
            if record.failing_since is None:
                record.failing_since = now
            if now - record.failing_since >= self.harvest_timeout:
                return False
            record.failures += 1
            record.not_before = now + min(0.5 * 2 ** min(record.failures, 10), 30.0)
            assert record.execution is not None  # noqa: S101
            self._active.pop(record.execution.execution_id, None)
            self._waiting.add(handle)
        logger.warning(
            "harvest of %s failed, retrying: %s",
            record.execution.execution_id,
            self._scrub(record, str(exc)),
        )
        return True

    def _give_up(
        self,
        handle: JobHandle,
        record: JobRecord,
        exc: BaseException,
        *,
        what: str = "harvest failed",
    ) -> None:
        """The backend cannot be reached: leave the workload for reconcile, say what was seen.

        The status is the last one seen if it was an end, else LOST (as when a node
        stops reporting on a scheduler: the outcome is unknown here).
        """
        execution = record.execution
        assert execution is not None  # noqa: S101
        text = self._scrub(record, str(exc))
        seen = record.status if record.status.is_terminal else JobStatus(JobState.LOST)
        status = attrs.evolve(seen, reason=f"{what}, workload left for reconcile: {text}")
        result = JobResult(
            execution, status, Logs(truncated=True), job=record.job, attempts=record.attempt
        )
        self.router.release(execution)
        self.router.hooks.emit("job_finished", execution=execution, result=result)
        with self._lock:
            self._active.pop(execution.execution_id, None)
            self._waiting.discard(handle)
            self._blocked_since = None
            record.status = status
            record.failure_result = result
            self._counts[OUTCOME_FIELD[status.state]] += 1
            self._reservations.settle(record, result)
            self._release_id(record)
        self._notify_progress()
        record.future.set_exception(scrubbed_error(exc, text))
        self._wakeup.set()


def as_timed_out(status: JobStatus, record: JobRecord) -> JobStatus:
    timeout = record.job.timeout if record.job is not None else None
    return attrs.evolve(status, state=JobState.TIMED_OUT, reason=f"timed out after {timeout}s")
