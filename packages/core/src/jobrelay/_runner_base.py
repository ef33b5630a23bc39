"""The Runner's state, and what every path (launch, poll, harvest) does with it.

:class:`RunnerBase` declares the attributes :class:`~jobrelay.Runner` sets up and the
helpers the launch, monitor and harvest mixins share: spawning a backend call on the
pool, dropping a job that is not running, releasing its id, scrubbing secrets from
text, and the progress counts. Everything here runs under the Runner's lock or says
that it takes it.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobrelay._clock import Clock, to_datetime
from jobrelay._handle import JobHandle, JobRecord, Progress
from jobrelay._models import Execution, JobResult, JobState, JobStatus, Logs
from jobrelay._scrub import Scrubber
from jobrelay.errors import ExecutorError

if TYPE_CHECKING:
    from jobrelay._budget import Reservations
    from jobrelay._router import Router

logger = logging.getLogger("jobrelay.runner")

MIN_POLL = 0.05
OUTCOME_FIELD = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.TIMED_OUT: "timed_out",
    JobState.LOST: "lost",
}


class RunnerBase:
    """The Runner's configuration and job bookkeeping (set by ``Runner.__init__``)."""

    router: Router
    clock: Clock
    poll_interval: float
    owner: str
    harvest_timeout: float
    retry_on: frozenset[JobState]
    retry_backoff: float
    _reservations: Reservations
    _progress_cb: Callable[[Progress], None] | None
    _max_workers: int
    _max_running: int | None
    _pool: cf.ThreadPoolExecutor
    _lock: threading.RLock
    _progress_lock: threading.Lock
    _wakeup: threading.Event
    _records: dict[JobHandle, JobRecord]
    _by_job_id: dict[str, JobHandle]
    _queue: deque[JobHandle]
    _launching: set[JobHandle]
    _active: dict[str, JobHandle]  # execution_id -> handle
    _waiting: set[JobHandle]  # a retry, relaunch or harvest is due later
    _cancel_queue: list[JobHandle]
    _blocked_since: float | None
    _busy: int
    _closing: bool
    _total: int
    _counts: dict[str, int]
    _last_progress: Progress | None
    _shutdown_emitted: threading.Event

    def progress(self) -> Progress:
        """Return the current counts."""
        with self._lock:
            running = len(self._launching) + len(self._active) + len(self._waiting)
            return Progress(
                queued=len(self._queue),
                running=running,
                total=self._total,
                spent=self._reservations.spent(),
                **self._counts,
            )

    def _notify_progress(self) -> None:
        """Tell the progress callback, never with the Runner's lock held."""
        if self._progress_cb is None:
            return
        with self._progress_lock:
            current = self.progress()
            if current == self._last_progress:
                return
            self._last_progress = current
            try:
                self._progress_cb(current)
            except Exception:
                logger.exception("progress callback raised; ignored")

    def _spawn(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._busy += 1

        def call() -> None:
            try:
                fn(*args)
            except Exception:
                logger.exception("runner task %s failed", getattr(fn, "__name__", fn))
            finally:
                with self._lock:
                    self._busy -= 1
                self._wakeup.set()

        self._pool.submit(call)

    def _drop(self, handle: JobHandle, record: JobRecord) -> None:
        """Resolve a job that is not running as cancelled (lock held)."""
        if handle in self._queue:
            self._queue.remove(handle)
        self._launching.discard(handle)
        self._waiting.discard(handle)
        self._reservations.release(record)
        record.status = JobStatus(JobState.CANCELLED, reason="cancelled before launch")
        record.failure_result = JobResult(
            Execution("", "", record.job_id, to_datetime(self.clock.time())),
            record.status,
            Logs(),
            job=record.job,
            attempts=record.attempt,
        )
        self._counts["cancelled"] += 1
        self._release_id(record)
        record.future.cancel()
        record.future.set_running_or_notify_cancel()

    def _release_id(self, record: JobRecord) -> None:
        if record.job is not None:
            self._by_job_id.pop(record.job.job_id, None)

    def _scrub(self, record: JobRecord, text: str) -> str:
        if record.job is None or not record.job.secrets:
            return text
        return Scrubber(record.job.secrets.values())(text)


def scrubbed_error(exc: BaseException, text: str) -> BaseException:
    """Return ``exc``, or an equivalent without the secret it carried in its text."""
    if text == str(exc):
        return exc
    if isinstance(exc, ExecutorError):
        return type(exc)(text, executor=exc.executor, job_id=exc.job_id)
    return ExecutorError(text)
