"""The Runner's monitor thread: dispatch, status sweeps, timeouts, due retries.

One thread owns all state transitions: each tick it dispatches queued jobs to the
pool (within ``max_workers`` and ``max_running``), starts the retries, relaunches and
harvests whose wait is over, sends the cancels asked for, and sweeps the statuses of
running jobs, one batch per executor. A sweep that fails is tried again next tick; a
job whose status stays unreadable for ``harvest_timeout`` seconds is given up on.
"""

from __future__ import annotations

from datetime import datetime

from jobrelay._clock import SystemClock
from jobrelay._handle import JobHandle, JobRecord
from jobrelay._models import JobState, JobStatus
from jobrelay._runner_base import MIN_POLL, logger
from jobrelay._runner_harvest import HarvestMixin, as_timed_out
from jobrelay._runner_launch import LaunchMixin


class MonitorMixin(LaunchMixin, HarvestMixin):
    """The Runner's monitor loop and status sweeps."""

    def _loop(self) -> None:
        interval = MIN_POLL
        while True:
            with self._lock:
                launched_something = self._dispatch()
                woke = self._wake_due()
                cancels, self._cancel_queue = self._cancel_queue, []
                active = [
                    (h, self._records[h])
                    for h in self._active.values()
                    if not self._records[h].finishing
                ]
                idle = not self._active and not self._launching and not self._queue
                idle = idle and not self._waiting
                if idle and self._closing:
                    break
            for handle in cancels:
                self._spawn(self._cancel, handle)
            changed = self._sweep(active) if active else False
            if launched_something or changed or cancels or woke:
                interval = MIN_POLL
            else:
                interval = min(interval * 2, self.poll_interval)
            self._pause(interval, idle=idle or not (active or self._waiting))
        logger.debug("runner monitor stopped")
        if not self._shutdown_emitted.is_set():
            # shutdown(wait=False): nobody joins; say it from here once the work is done.
            self._pool.shutdown(wait=True)
            self._emit_shutdown()

    def _pause(self, interval: float, *, idle: bool) -> None:
        # Waiting on other threads is real time whatever the clock. Simulated time
        # only moves when no backend call is in flight, so a cancel or a launch
        # happens at the simulated moment it was decided.
        if idle or self._busy or isinstance(self.clock, SystemClock):
            self._wakeup.wait(interval)
        else:
            self.clock.sleep(interval)
        self._wakeup.clear()

    def _running_count(self) -> int:
        return len(self._launching) + len(self._active) + len(self._waiting)

    def _dispatch(self) -> bool:
        if self._blocked_since is not None:
            # Every executor was full: wait for one of our jobs to release a slot, or
            # retry after a while in case the capacity is held by someone else.
            waited = self.clock.time() - self._blocked_since
            if self._active and waited < self.poll_interval:
                return False
            self._blocked_since = None
        dispatched = False
        while self._queue and len(self._launching) < self._max_workers:
            if self._max_running is not None and self._running_count() >= self._max_running:
                break
            handle = self._queue.popleft()
            self._launching.add(handle)
            self._spawn(self._launch, handle)
            dispatched = True
        return dispatched

    def _wake_due(self) -> bool:
        """Start the retries, relaunches and harvests whose wait is over (lock held)."""
        now = self.clock.time()
        due = [h for h in self._waiting if self._records[h].not_before <= now]
        for handle in due:
            self._waiting.discard(handle)
            record = self._records[handle]
            if record.execution is not None and record.finishing:
                self._spawn(self._harvest, handle)
            elif record.execution is not None:
                self._active[record.execution.execution_id] = handle
            else:
                self._launching.add(handle)
                self._spawn(self._launch, handle)
        return bool(due)

    def _sweep(self, active: list[tuple[JobHandle, JobRecord]]) -> bool:
        by_executor: dict[str, list[tuple[JobHandle, JobRecord]]] = {}
        for handle, record in active:
            if record.execution is not None:
                by_executor.setdefault(record.execution.executor, []).append((handle, record))
        changed = False
        now = self.clock.time()
        for name, pairs in by_executor.items():
            executions = [record.execution for _, record in pairs if record.execution is not None]
            try:
                statuses = self.router.executor(name).statuses(executions)
            except Exception as exc:  # noqa: BLE001 - a failed sweep is retried next tick
                logger.warning("status sweep of %s failed, will retry: %s", name, exc)
                changed = self._unseen(pairs, exc, now) or changed
                continue
            for handle, record in pairs:
                assert record.execution is not None  # noqa: S101
                record.failing_since = None
                status = statuses.get(record.execution.execution_id)
                if status is not None and self._observe(handle, record, status, now):
                    changed = True
        return changed

    def _unseen(self, pairs: list[tuple[JobHandle, JobRecord]], exc: Exception, now: float) -> bool:
        """Count a failed sweep against each job; give up on those past the budget."""
        gave_up = False
        for handle, record in pairs:
            if record.failing_since is None:
                record.failing_since = now
            elif now - record.failing_since >= self.harvest_timeout:
                what = f"status unreadable for {self.harvest_timeout:g}s"
                self._give_up(handle, record, exc, what=what)
                gave_up = True
        return gave_up

    def _observe(self, handle: JobHandle, record: JobRecord, status: JobStatus, now: float) -> bool:
        assert record.execution is not None  # noqa: S101
        if record.timed_out and status.state is JobState.CANCELLED:
            status = as_timed_out(status, record)
        old = record.status.state
        record.status = status
        if status.state is not old:
            self.router.hooks.emit(
                "job_status_changed", execution=record.execution, old=old, new=status.state
            )
        if status.is_terminal:
            self._finish(handle, record)
            return True
        if status.state is JobState.RUNNING and record.started is None:
            record.started = _epoch(status.started_at, now)
            timeout = record.job.timeout if record.job is not None else None
            if timeout is not None:
                record.deadline = record.started + timeout
        if record.deadline is not None and now >= record.deadline and not record.timed_out:
            # Only a job still running is timed out; one seen finished keeps its result.
            record.timed_out = True
            logger.info("job %s ran past its timeout; cancelling", record.job_id)
            self._spawn(self._cancel, handle)
            return True
        return status.state is not old

    def _cancel(self, handle: JobHandle) -> None:
        # The next sweep sees the job end and harvests it like any other.
        record = self._records[handle]
        assert record.execution is not None  # noqa: S101
        executor = self.router.executor(record.execution.executor)
        try:
            self.router.retry.call(executor.cancel, record.execution)
        except Exception as exc:  # noqa: BLE001 - retried by the next cancel or the timeout
            logger.warning(
                "cancel of %s failed: %s",
                record.execution.execution_id,
                self._scrub(record, str(exc)),
            )
        self._wakeup.set()

    def _emit_shutdown(self) -> None:
        with self._lock:
            if self._shutdown_emitted.is_set():
                return
            self._shutdown_emitted.set()
        self.router.hooks.emit("runner_shutdown", runner=self)


def _epoch(moment: datetime | None, default: float) -> float:
    return moment.timestamp() if moment is not None else default
