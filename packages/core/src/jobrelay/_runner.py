"""The dispatcher: launch within limits, poll in batches, time out, retry, harvest.

It also re-attaches to what a crashed process left running.

One monitor thread owns all state transitions; a thread pool makes the blocking
backend calls (launch, cancel, harvest). What the promise "never launched twice, never
lost, never leaked" asks of it:

- a job id is held once: submitting it again returns the handle that holds it;
- a launch whose outcome is unknown (a transient error after the Router's retries)
  is settled by launching the same job id again on the same executor, which the
  executor contract makes idempotent, until the backend answers or the budget ends;
- a harvest that cannot reach the backend is retried with backoff for
  ``harvest_timeout`` seconds; nothing is cleaned up after a failed harvest, so the
  workload stays for :meth:`Runner.reconcile`;
- so is a running job whose status cannot be read: after ``harvest_timeout`` seconds
  of failed sweeps its handle ends with the error (``LOST``: the outcome is unknown
  here; the workload is left for reconcile) rather than waiting for ever on a
  backend gone for good;
- cleanup is the executor's harvest policy (``remove_on_harvest``, ``keep_failed``):
  the Runner never overrides it.

The Runner is its public face here plus mixins, one path each: ``_runner_base``
(state, progress, dropping a job), ``_runner_launch``, ``_runner_harvest`` (with
Runner-side retries) and ``_runner_monitor`` (the loop and the status sweeps); the
budget bookkeeping is ``_budget.Reservations``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jobrelay import labels as _labels
from jobrelay._budget import Reservations, parse_budget
from jobrelay._clock import Clock
from jobrelay._handle import JobHandle, JobRecord, Progress
from jobrelay._models import Cost, JobResult, JobState, JobStatus
from jobrelay._protocol import ManagedLister
from jobrelay._runner_base import OUTCOME_FIELD
from jobrelay._runner_monitor import MonitorMixin
from jobrelay._spec import JobSpec
from jobrelay.errors import ConfigError, JobrelayError

if TYPE_CHECKING:
    from jobrelay._router import Router

__all__ = ["JobHandle", "Progress", "Runner"]

logger = logging.getLogger("jobrelay.runner")

_RETRY_ON = frozenset({JobState.FAILED, JobState.LOST})


class Runner(MonitorMixin):
    """Runs many jobs through a :class:`~jobrelay.Router`.

    Example::

        with Runner(router, max_workers=8) as runner:
            handles = [runner.submit(job) for job in jobs]
            for handle in runner.as_completed(handles):
                print(handle.job_id, handle.result().state)

    Args:
        router: routes and launches jobs, and tracks per-executor capacity.
        max_workers: threads for blocking backend calls (launch, cancel, harvest).
        max_running: most jobs launched and not finished at once, across executors.
        poll_interval: longest wait between status sweeps; sweeps start every
            50 ms and back off to this.
        owner: recorded on every workload (``jobrelay.owner``); :meth:`reconcile`
            adopts only this owner's workloads. Default: this host's name.
        progress: called with a :class:`Progress` whenever the counts change (never
            while the Runner holds its lock).
        budget: stop launching once the estimated spend would pass it (a
            :class:`~jobrelay.Cost` or ``"25 EUR"``); queued jobs then end FAILED.
        clock: time source; a :class:`~jobrelay.ManualClock` makes it simulated.
        harvest_timeout: seconds a harvest (or a launch whose outcome is unknown, or
            the status of a running job) is retried while the backend cannot be
            reached.
        retry_on: end states after which a job with ``max_retries`` is tried again.
        retry_backoff: seconds before the first Runner-side retry (doubling).
        expected_duration: seconds a job without ``timeout`` is priced at for the budget.
    """

    def __init__(
        self,
        router: Router,
        *,
        max_workers: int = 8,
        max_running: int | None = None,
        poll_interval: float = 1.0,
        owner: str | None = None,
        progress: Callable[[Progress], None] | None = None,
        budget: Cost | str | None = None,
        clock: Clock | None = None,
        harvest_timeout: float = 600.0,
        retry_on: Iterable[JobState] = _RETRY_ON,
        retry_backoff: float = 1.0,
        expected_duration: float = 3600.0,
    ) -> None:
        _check_count("max_workers", max_workers)
        if max_running is not None:
            _check_count("max_running", max_running)
        for field, value in (
            ("poll_interval", poll_interval),
            ("harvest_timeout", harvest_timeout),
            ("retry_backoff", retry_backoff),
            ("expected_duration", expected_duration),
        ):
            _check_seconds(field, value)
        if poll_interval <= 0:
            raise ConfigError(f"poll_interval must be greater than 0, got {poll_interval}")
        if owner is not None and not owner:
            raise ConfigError(f"owner must be a non-empty string, got {owner!r}")
        self.router = router
        self.clock = clock if clock is not None else router.clock
        self.poll_interval = float(poll_interval)
        self.owner = owner if owner is not None else _labels.default_owner()
        self.budget = parse_budget(budget)
        self.harvest_timeout = float(harvest_timeout)
        self.retry_on = frozenset(retry_on)
        self.retry_backoff = float(retry_backoff)
        self.expected_duration = float(expected_duration)
        self._reservations = Reservations(self.budget, router, self.expected_duration)
        self._progress_cb = progress
        self._max_workers = max_workers
        self._max_running = max_running
        self._pool = cf.ThreadPoolExecutor(max_workers, thread_name_prefix="jobrelay-runner")
        self._lock = threading.RLock()
        self._progress_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._records = {}
        self._by_job_id = {}
        self._queue = deque()
        self._launching = set()
        self._active = {}  # execution_id -> handle
        self._waiting = set()  # a retry, relaunch or harvest is due later
        self._cancel_queue = []
        self._blocked_since = None
        self._busy = 0
        self._closing = False
        self._total = 0
        self._counts = dict.fromkeys(OUTCOME_FIELD.values(), 0)
        self._last_progress = None
        self._shutdown_emitted = threading.Event()
        self._monitor = threading.Thread(target=self._loop, name="jobrelay-monitor", daemon=True)
        self._monitor.start()

    # -- submitting -------------------------------------------------------------------

    def submit(self, job: JobSpec, context: Mapping[str, Any] | None = None) -> JobHandle:
        """Queue ``job`` for launch; return its handle at once.

        A job id this Runner already holds (queued, running or being harvested) is
        not queued twice: the existing handle is returned.
        """
        with self._lock:
            if self._closing:
                raise JobrelayError("Runner is shut down; no new jobs")
            existing = self._by_job_id.get(job.job_id)
            if existing is not None and not existing.done():
                return existing
            record = JobRecord(job, context, submitted_in=contextvars.copy_context())
            handle = JobHandle(record, self)
            self._records[handle] = record
            self._by_job_id[job.job_id] = handle
            self._queue.append(handle)
            self._total += 1
        self._wakeup.set()
        self._notify_progress()
        return handle

    def run(self, jobs: Iterable[JobSpec], *, raise_errors: bool = False) -> list[JobResult]:
        """Run ``jobs`` and return one result per job, in submission order.

        A job that could not be launched (or whose harvest failed) gets a result in a
        terminal state with the reason; other jobs' results are never thrown away.
        With ``raise_errors=True`` the first such error is raised instead, once every
        job has ended.
        """
        handles = [self.submit(job) for job in jobs]
        cf.wait([self._records[handle].future for handle in handles])
        results = []
        for handle in handles:
            record = self._records[handle]
            try:
                results.append(record.future.result())
            except (Exception, cf.CancelledError):
                if raise_errors or record.failure_result is None:
                    raise
                results.append(record.failure_result)
        return results

    def as_completed(
        self, handles: Iterable[JobHandle], timeout: float | None = None
    ) -> Iterator[JobHandle]:
        """Yield handles as their jobs finish."""
        by_future = {self._records[handle].future: handle for handle in handles}
        for future in cf.as_completed(by_future, timeout):
            yield by_future[future]

    def wake(self) -> None:
        """Sweep statuses now rather than at the next poll (e.g. a job's output ended)."""
        self._wakeup.set()

    # -- cancel, shutdown, reconcile --------------------------------------------------

    def cancel_job(self, handle: JobHandle) -> bool:
        """Cancel ``handle``'s job (what :meth:`JobHandle.cancel` calls)."""
        with self._lock:
            record = self._records.get(handle)
            if record is None or record.future.done():
                return False
            if handle in self._queue or (handle in self._waiting and record.execution is None):
                self._drop(handle, record)
                dropped = True
            else:
                record.cancel_requested = True
                if record.execution is not None and handle not in self._waiting:
                    self._cancel_queue.append(handle)
                dropped = False
        if dropped:
            self._notify_progress()
        self._wakeup.set()
        return True

    def shutdown(self, wait: bool = True, *, cancel: bool = False) -> None:
        """Stop accepting jobs; optionally cancel the rest; optionally wait for all.

        With ``cancel=False`` every submitted job still runs to its end. With
        ``cancel=True`` queued jobs are dropped and running ones stopped and harvested.
        """
        with self._lock:
            self._closing = True
            handles = list(self._records) if cancel else []
        for handle in handles:
            self.cancel_job(handle)
        self._wakeup.set()
        if wait:
            self._monitor.join()
            self._pool.shutdown(wait=True)
            self._emit_shutdown()

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(
            wait=True, cancel=exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        )

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio  # noqa: PLC0415 - only async users pay for importing asyncio

        cancel = exc_type is not None and issubclass(
            exc_type, (KeyboardInterrupt, asyncio.CancelledError)
        )
        await asyncio.to_thread(self.shutdown, wait=True, cancel=cancel)

    def reconcile(self, *, all_owners: bool = False) -> list[JobHandle]:
        """Re-attach to executions a crashed process left behind and finish them.

        Asks every executor whose capabilities announce ``list_managed`` for its
        managed workloads. Only workloads of this Runner's ``owner`` are adopted
        unless ``all_owners``, so Runners of different owners never steal each
        other's jobs. Each adopted one is polled and harvested like its own.
        """
        found: list[JobHandle] = []
        for name in self.router.names:
            try:
                executor = self.router.executor(name)
                if not executor.capabilities().list_managed or not isinstance(
                    executor, ManagedLister
                ):
                    continue
                executions = executor.list_managed()
            except Exception as exc:  # noqa: BLE001 - one executor failing must not stop the rest
                logger.warning("reconcile: could not list workloads of %s: %s", name, exc)
                continue
            with self._lock:
                held = {
                    record.execution.execution_id
                    for record in self._records.values()
                    if record.execution is not None and not record.future.done()
                }
                for execution in executions:
                    if execution.execution_id in held:
                        continue
                    if not all_owners and execution.metadata.get("owner") != self.owner:
                        continue
                    record = JobRecord(
                        None,
                        None,
                        execution=execution,
                        status=JobStatus(JobState.PENDING, reason="re-attached"),
                    )
                    record.launched.set()
                    handle = JobHandle(record, self)
                    self._records[handle] = record
                    self._active[execution.execution_id] = handle
                    self._total += 1
                    found.append(handle)
                    logger.info("reconcile: re-attached %s on %s", execution.execution_id, name)
        self._wakeup.set()
        self._notify_progress()
        return found


def _check_count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field} must be an int of 1 or more, got {value!r}")


def _check_seconds(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
        raise ConfigError(f"{field} must be a number of seconds from 0 to 1e9, got {value!r}")
