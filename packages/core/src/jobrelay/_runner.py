"""The dispatcher: launch within limits, poll in batches, time out, harvest, clean up.

It also re-attaches to what a crashed process left running.

One monitor thread owns all state transitions; a thread pool makes the blocking
backend calls (launch, cancel, harvest, cleanup). A job is launched at most once by
a Runner: it is never re-queued after a launch returned or raised anything but
"every executor is at capacity".
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay._clock import Clock, SystemClock
from jobrelay._models import Execution, JobResult, JobState, JobStatus, Logs
from jobrelay._spec import JobSpec
from jobrelay.errors import ConfigError, JobrelayError, NoExecutorAvailableError

if TYPE_CHECKING:
    from jobrelay._router import Router

__all__ = ["JobHandle", "Progress", "Runner"]

logger = logging.getLogger("jobrelay.runner")

_MIN_POLL = 0.05


@attrs.frozen
class Progress:
    """Counts for a progress display, passed to the Runner's ``progress`` callback."""

    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    lost: int = 0

    @property
    def finished(self) -> int:
        """Jobs that reached an end, whatever it was."""
        return self.succeeded + self.failed + self.cancelled + self.timed_out + self.lost


_OUTCOME_FIELD = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.TIMED_OUT: "timed_out",
    JobState.LOST: "lost",
}


class JobHandle:
    """A submitted job, future-like.

    ``execution`` is None until the job is launched; ``job`` is None for executions
    re-attached by :meth:`Runner.reconcile`.
    """

    def __init__(
        self,
        runner: Runner,
        job: JobSpec | None,
        context: Mapping[str, Any] | None,
        execution: Execution | None = None,
    ) -> None:
        self.job = job
        self.context = context
        self.execution: Execution | None = execution
        self._runner = runner
        self._future: cf.Future[JobResult] = cf.Future()
        self._status = JobStatus(JobState.PENDING, reason="queued")
        self._started: float | None = None
        self._deadline: float | None = None
        self._cancel_requested = False
        self._timed_out = False
        self._finishing = False
        self._launched = threading.Event()
        if execution is not None:
            self._launched.set()
        self._future.add_done_callback(lambda _: self._launched.set())

    @property
    def job_id(self) -> str:
        """The job's id (from the execution for re-attached jobs)."""
        if self.job is not None:
            return self.job.job_id
        assert self.execution is not None  # noqa: S101 - reconcile always sets it
        return self.execution.job_id

    def status(self) -> JobStatus:
        """The last status the Runner saw (``PENDING``/"queued" before launch)."""
        return self._status

    @property
    def cancel_requested(self) -> bool:
        """True once :meth:`cancel` (or a cancelling shutdown) asked for the job to stop."""
        return self._cancel_requested

    def wait_launched(self, timeout: float | None = None) -> Execution | None:
        """Wait until the job is launched (or ended without launch); return its execution."""
        self._launched.wait(timeout)
        return self.execution

    def done(self) -> bool:
        """True once the job has a result, an error, or was cancelled before launch."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> JobResult:
        """Wait for the job's result.

        Raises:
            concurrent.futures.CancelledError: cancelled before it was launched.
            JobrelayError: the job could not be launched or harvested.
            TimeoutError: ``timeout`` seconds passed first.
        """
        return self._future.result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the job; return the error it ended with, or None."""
        return self._future.exception(timeout)

    def add_done_callback(self, fn: Callable[[JobHandle], object]) -> None:
        """Call ``fn(handle)`` once the job is done (at once if it already is)."""
        self._future.add_done_callback(lambda _: fn(self))

    def cancel(self) -> bool:
        """Cancel the job: drop it from the queue, or stop its workload.

        Returns False when the job had already finished.
        """
        return self._runner._request_cancel(self)

    def __repr__(self) -> str:
        where = self.execution.execution_id if self.execution else "queued"
        return f"JobHandle(job_id={self.job_id!r}, {where}, {self._status.state.value})"


class Runner:
    """Runs many jobs through a :class:`~jobrelay.Router`.

    Example::

        with Runner(router, max_workers=8) as runner:
            handles = [runner.submit(job) for job in jobs]
            for handle in runner.as_completed(handles):
                print(handle.job_id, handle.result().state)

    Args:
        router: routes and launches jobs, and tracks per-executor capacity.
        max_workers: threads for blocking backend calls (launch, cancel, harvest).
        poll_interval: longest wait between status sweeps; sweeps start every
            50 ms and back off to this.
        clock: time source; a :class:`~jobrelay.ManualClock` makes it simulated.
        progress: called with a :class:`Progress` whenever the counts change.
    """

    def __init__(
        self,
        router: Router,
        *,
        max_workers: int = 8,
        poll_interval: float = 1.0,
        clock: Clock | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ConfigError(f"max_workers must be 1 or more, got {max_workers}")
        if poll_interval <= 0:
            raise ConfigError(f"poll_interval must be greater than 0, got {poll_interval}")
        self.router = router
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.poll_interval = poll_interval
        self._progress_cb = progress
        self._pool = cf.ThreadPoolExecutor(max_workers, thread_name_prefix="jobrelay-runner")
        self._max_workers = max_workers
        self._lock = threading.RLock()
        self._wakeup = threading.Event()
        self._queue: deque[JobHandle] = deque()
        self._launching: set[JobHandle] = set()
        self._active: dict[str, JobHandle] = {}  # execution_id -> handle
        self._cancel_queue: list[JobHandle] = []
        self._blocked_since: float | None = None
        self._busy = 0  # backend calls in flight on the pool
        self._closing = False
        self._counts: dict[str, int] = dict.fromkeys(_OUTCOME_FIELD.values(), 0)
        self._last_progress: Progress | None = None
        self._monitor = threading.Thread(target=self._loop, name="jobrelay-monitor", daemon=True)
        self._monitor.start()

    # -- submitting -------------------------------------------------------------------

    def submit(self, job: JobSpec, context: Mapping[str, Any] | None = None) -> JobHandle:
        """Queue ``job`` for launch; return its handle at once."""
        with self._lock:
            if self._closing:
                raise JobrelayError("Runner is shut down; no new jobs")
            handle = JobHandle(self, job, context)
            self._queue.append(handle)
        self._wakeup.set()
        return handle

    def run(self, jobs: Iterable[JobSpec]) -> list[JobResult]:
        """Run ``jobs`` and return their results in submission order.

        Raises the first launch or harvest error after every job has ended.
        """
        handles = [self.submit(job) for job in jobs]
        cf.wait([h._future for h in handles])
        return [handle.result() for handle in handles]

    @staticmethod
    def as_completed(
        handles: Iterable[JobHandle], timeout: float | None = None
    ) -> Iterator[JobHandle]:
        """Yield handles as their jobs finish."""
        by_future = {handle._future: handle for handle in handles}
        for future in cf.as_completed(by_future, timeout):
            yield by_future[future]

    def progress(self) -> Progress:
        """Return the current counts."""
        with self._lock:
            running = len(self._launching) + len(self._active)
            return Progress(queued=len(self._queue), running=running, **self._counts)

    # -- cancel, shutdown, reconcile --------------------------------------------------

    def _request_cancel(self, handle: JobHandle) -> bool:
        with self._lock:
            if handle.done():
                return False
            if handle in self._queue:
                self._queue.remove(handle)
                self._drop(handle)
                return True
            handle._cancel_requested = True
            if handle.execution is not None:
                self._cancel_queue.append(handle)
        self._wakeup.set()
        return True

    def _drop(self, handle: JobHandle) -> None:
        """Resolve a never-launched handle as cancelled (lock held)."""
        self._launching.discard(handle)
        handle._future.cancel()
        handle._future.set_running_or_notify_cancel()
        handle._status = JobStatus(JobState.CANCELLED, reason="cancelled before launch")
        self._counts["cancelled"] += 1
        self._notify_progress()

    def shutdown(self, wait: bool = True, *, cancel: bool = False) -> None:
        """Stop accepting jobs; optionally cancel the rest; optionally wait for all.

        With ``cancel=False`` every submitted job still runs to its end. With
        ``cancel=True`` queued jobs are dropped and running ones stopped, harvested
        and cleaned up.
        """
        with self._lock:
            self._closing = True
            if cancel:
                for handle in list(self._queue) + list(self._active.values()):
                    self._request_cancel(handle)
                for handle in self._launching:
                    handle._cancel_requested = True
        self._wakeup.set()
        if wait:
            self._monitor.join()
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True, cancel=exc_type is KeyboardInterrupt)

    def reconcile(self) -> list[JobHandle]:
        """Re-attach to executions a crashed process left behind and finish them.

        Asks every executor whose capabilities announce ``list_managed`` for its
        managed workloads; each one this Runner does not already track is polled,
        harvested and cleaned up like a job it launched itself.
        """
        found: list[JobHandle] = []
        for name in self.router.names:
            try:
                executor = self.router.executor(name)
                if not executor.capabilities().list_managed:
                    continue
                executions = executor.list_managed()
            except Exception:
                logger.exception("reconcile: could not list workloads of %s", name)
                continue
            with self._lock:
                for execution in executions:
                    if execution.execution_id in self._active:
                        continue
                    handle = JobHandle(self, None, None, execution)
                    handle._status = JobStatus(JobState.PENDING, reason="re-attached")
                    self._active[execution.execution_id] = handle
                    found.append(handle)
                    logger.info("reconcile: re-attached %s on %s", execution.execution_id, name)
        self._wakeup.set()
        return found

    # -- the monitor loop -------------------------------------------------------------

    def _loop(self) -> None:
        interval = _MIN_POLL
        while True:
            with self._lock:
                launched_something = self._dispatch()
                cancels, self._cancel_queue = self._cancel_queue, []
                active = list(self._active.values())
                idle = not active and not self._launching and not self._queue
                if idle and self._closing:
                    break
            for handle in cancels:
                self._spawn(self._cancel, handle)
            changed = self._sweep(active) if active else False
            if launched_something or changed or cancels:
                interval = _MIN_POLL
            else:
                interval = min(interval * 2, self.poll_interval)
            self._pause(interval, idle=idle or not active)
        logger.debug("runner monitor stopped")

    def _pause(self, interval: float, *, idle: bool) -> None:
        # Waiting on other threads is real time whatever the clock. Simulated time
        # only moves when no backend call is in flight, so a cancel or a launch
        # happens at the simulated moment it was decided.
        if idle or self._busy or isinstance(self.clock, SystemClock):
            self._wakeup.wait(interval)
        else:
            self.clock.sleep(interval)
        self._wakeup.clear()

    def _spawn(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._busy += 1

        def call() -> None:
            try:
                fn(*args)
            finally:
                with self._lock:
                    self._busy -= 1
                self._wakeup.set()

        self._pool.submit(call)

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
            handle = self._queue.popleft()
            self._launching.add(handle)
            self._spawn(self._launch, handle)
            dispatched = True
        return dispatched

    def _launch(self, handle: JobHandle) -> None:
        assert handle.job is not None  # noqa: S101 - only submitted jobs are launched
        with self._lock:
            if handle._cancel_requested:
                self._drop(handle)
                return
        try:
            execution = self.router.launch(handle.job, handle.context)
        except NoExecutorAvailableError as exc:
            if exc.capacity_only:
                with self._lock:
                    if handle.cancel_requested:
                        self._drop(handle)
                        return
                    self._launching.discard(handle)
                    self._queue.appendleft(handle)
                    self._blocked_since = self.clock.time()
                return
            self._fail(handle, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every failure lands on the handle
            self._fail(handle, exc)
            return
        self.router.hooks.emit("job_launched", job=handle.job, execution=execution)
        self.router.hooks.emit(
            "job_status_changed", execution=execution, old=None, new=JobState.PENDING
        )
        with self._lock:
            self._launching.discard(handle)
            handle.execution = execution
            handle._status = JobStatus(JobState.PENDING, reason="launched")
            handle._launched.set()
            self._active[execution.execution_id] = handle
            if handle.cancel_requested:
                self._cancel_queue.append(handle)
        self._wakeup.set()

    def _fail(self, handle: JobHandle, exc: BaseException) -> None:
        with self._lock:
            self._launching.discard(handle)
            self._counts["failed"] += 1
            handle._status = JobStatus(JobState.FAILED, reason=f"launch failed: {exc}")
            self._notify_progress()
        handle._future.set_exception(exc)
        self._wakeup.set()

    def _sweep(self, active: list[JobHandle]) -> bool:
        by_executor: dict[str, list[JobHandle]] = {}
        for handle in active:
            if handle.execution is not None and not handle._finishing:
                by_executor.setdefault(handle.execution.executor, []).append(handle)
        changed = False
        now = self.clock.time()
        for name, handles in by_executor.items():
            executions = [h.execution for h in handles if h.execution is not None]
            try:
                statuses = self.router.executor(name).statuses(executions)
            except Exception as exc:  # noqa: BLE001 - a failed sweep is retried next tick
                logger.warning("status sweep of %s failed, will retry: %s", name, exc)
                continue
            for handle in handles:
                assert handle.execution is not None  # noqa: S101
                status = statuses.get(handle.execution.execution_id)
                if status is not None and self._observe(handle, status, now):
                    changed = True
        return changed

    def _observe(self, handle: JobHandle, status: JobStatus, now: float) -> bool:
        assert handle.execution is not None  # noqa: S101
        if handle._timed_out and status.state is JobState.CANCELLED:
            status = _as_timed_out(status, handle)
        old = handle._status.state
        handle._status = status
        if status.state is not old:
            self.router.hooks.emit(
                "job_status_changed", execution=handle.execution, old=old, new=status.state
            )
        if status.is_terminal:
            self._finish(handle)
            return True
        if status.state is JobState.RUNNING and handle._started is None:
            handle._started = _epoch(status.started_at, now)
            timeout = handle.job.timeout if handle.job is not None else None
            if timeout is not None:
                handle._deadline = handle._started + timeout
        if handle._deadline is not None and now >= handle._deadline and not handle._timed_out:
            # Only a job still running is timed out; one seen finished keeps its result.
            handle._timed_out = True
            logger.info("job %s ran past its timeout; cancelling", handle.job_id)
            self._spawn(self._cancel, handle)
            return True
        return status.state is not old

    def _cancel(self, handle: JobHandle) -> None:
        # The next sweep sees the job end and harvests it like any other.
        assert handle.execution is not None  # noqa: S101
        executor = self.router.executor(handle.execution.executor)
        try:
            self.router.retry.call(executor.cancel, handle.execution)
        except Exception:
            logger.exception("cancel of %s failed", handle.execution.execution_id)
        self._wakeup.set()

    def _finish(self, handle: JobHandle) -> None:
        with self._lock:
            if handle._finishing:
                return
            handle._finishing = True
        self._spawn(self._harvest, handle)

    def _harvest(self, handle: JobHandle) -> None:
        execution = handle.execution
        assert execution is not None  # noqa: S101
        executor = self.router.executor(execution.executor)
        error: BaseException | None = None
        result: JobResult | None = None
        try:
            result = self.router.retry.call(executor.harvest, execution)
        except Exception as exc:  # noqa: BLE001 - reported on the handle
            error = exc
        try:
            self.router.retry.call(executor.cleanup, execution)
        except Exception:
            logger.exception("cleanup of %s failed", execution.execution_id)
        self.router.release(execution)
        if result is not None and handle._timed_out and result.status.state is JobState.CANCELLED:
            # We stopped it because it ran past its timeout: say so, keep exit code and logs.
            result = attrs.evolve(result, status=_as_timed_out(result.status, handle))
        if result is None:
            # Keep what the sweep saw (the job did end), say why there are no logs.
            seen = handle._status if handle._status.is_terminal else JobStatus(JobState.LOST)
            result = JobResult(
                execution, attrs.evolve(seen, reason=f"harvest failed: {error}"), Logs()
            )
        with self._lock:
            self._active.pop(execution.execution_id, None)
            self._blocked_since = None
            handle._status = result.status
            self._counts[_OUTCOME_FIELD[result.status.state]] += 1
            self._notify_progress()
        self.router.hooks.emit("job_finished", execution=execution, result=result)
        if error is not None:
            handle._future.set_exception(error)
        else:
            handle._future.set_result(result)
        self._wakeup.set()

    def _notify_progress(self) -> None:
        if self._progress_cb is None:
            return
        current = self.progress()
        if current != self._last_progress:
            self._last_progress = current
            try:
                self._progress_cb(current)
            except Exception:
                logger.exception("progress callback raised; ignored")


def _as_timed_out(status: JobStatus, handle: JobHandle) -> JobStatus:
    timeout = handle.job.timeout if handle.job is not None else None
    return attrs.evolve(status, state=JobState.TIMED_OUT, reason=f"timed out after {timeout}s")


def _epoch(moment: datetime | None, default: float) -> float:
    return moment.timestamp() if moment is not None else default
