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
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay import labels as _labels
from jobrelay._budget import Budget, parse_budget
from jobrelay._clock import Clock, SystemClock, to_datetime
from jobrelay._handle import JobHandle, JobRecord, Progress
from jobrelay._models import Cost, Execution, JobResult, JobState, JobStatus, Logs
from jobrelay._protocol import Executor, ManagedLister
from jobrelay._scrub import Scrubber
from jobrelay._spec import JobSpec
from jobrelay.errors import (
    ConfigError,
    ExecutorError,
    JobrelayError,
    NoExecutorAvailableError,
    TransientExecutorError,
)

if TYPE_CHECKING:
    from jobrelay._router import Router

__all__ = ["JobHandle", "Progress", "Runner"]

logger = logging.getLogger("jobrelay.runner")

_MIN_POLL = 0.05
_RETRY_ON = frozenset({JobState.FAILED, JobState.LOST})
_OUTCOME_FIELD = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.TIMED_OUT: "timed_out",
    JobState.LOST: "lost",
}


def _derived_job_id(job_id: str, attempt: int) -> str:
    candidate = f"{job_id}.retry-{attempt}"
    if len(candidate) <= 128:
        return candidate
    import hashlib  # noqa: PLC0415 - only for ids this long: a command need not load it

    digest = hashlib.sha256(job_id.encode()).hexdigest()[:32]
    return f"{job_id[:80]}-{digest}.retry-{attempt}"


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
        self.clock: Clock = clock if clock is not None else router.clock
        self.poll_interval = float(poll_interval)
        self.owner = owner if owner is not None else _labels.default_owner()
        self.budget = parse_budget(budget)
        self._budget = Budget(self.budget) if self.budget is not None else None
        self.harvest_timeout = float(harvest_timeout)
        self.retry_on = frozenset(retry_on)
        self.retry_backoff = float(retry_backoff)
        self.expected_duration = float(expected_duration)
        self._progress_cb = progress
        self._max_workers = max_workers
        self._max_running = max_running
        self._pool = cf.ThreadPoolExecutor(max_workers, thread_name_prefix="jobrelay-runner")
        self._lock = threading.RLock()
        self._progress_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._records: dict[JobHandle, JobRecord] = {}
        self._by_job_id: dict[str, JobHandle] = {}
        self._queue: deque[JobHandle] = deque()
        self._launching: set[JobHandle] = set()
        self._active: dict[str, JobHandle] = {}  # execution_id -> handle
        self._waiting: set[JobHandle] = set()  # a retry, relaunch or harvest is due later
        self._cancel_queue: list[JobHandle] = []
        self._blocked_since: float | None = None
        self._busy = 0
        self._closing = False
        self._total = 0
        self._counts: dict[str, int] = dict.fromkeys(_OUTCOME_FIELD.values(), 0)
        self._last_progress: Progress | None = None
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

    def progress(self) -> Progress:
        """Return the current counts."""
        with self._lock:
            running = len(self._launching) + len(self._active) + len(self._waiting)
            spent = self._budget.spent() if self._budget is not None else None
            return Progress(
                queued=len(self._queue),
                running=running,
                total=self._total,
                spent=spent,
                **self._counts,
            )

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

    def _drop(self, handle: JobHandle, record: JobRecord) -> None:
        """Resolve a job that is not running as cancelled (lock held)."""
        if handle in self._queue:
            self._queue.remove(handle)
        self._launching.discard(handle)
        self._waiting.discard(handle)
        self._release_estimate(record)
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

    def _emit_shutdown(self) -> None:
        with self._lock:
            if self._shutdown_emitted.is_set():
                return
            self._shutdown_emitted.set()
        self.router.hooks.emit("runner_shutdown", runner=self)

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

    # -- the monitor loop -------------------------------------------------------------

    def _loop(self) -> None:
        interval = _MIN_POLL
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
                interval = _MIN_POLL
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

    # -- launching --------------------------------------------------------------------

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
            priced_on = self._check_budget(record, job)
            # A launch pinned after an unknown outcome may have taken effect there: ask
            # the same executor again (idempotent by job id), never another one.
            execution = self.router.launch(job, record.context, only=record.pinned)
            if priced_on is not None and execution.executor != priced_on:
                self._reprice(record, job, execution.executor)
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
                record.not_before = now + max(exc.retry_after, _MIN_POLL)
                self._launching.discard(handle)
                self._waiting.add(handle)
            else:
                return False
        self._notify_progress()
        self._wakeup.set()
        return True

    def _check_budget(self, record: JobRecord, job: JobSpec) -> str | None:
        """Reserve the job's estimate where it will be routed; return that executor.

        A launch tried again (after waiting, or an unknown outcome) reserves afresh:
        what an earlier try reserved is released first.
        """
        if self._budget is None:
            return None
        self._release_estimate(record)
        decision = self.router.route(job, record.context)
        duration = job.timeout if job.timeout is not None else self.expected_duration
        estimate = self.router.estimate(decision.executor, job, duration)
        if estimate is not None:
            self._budget.reserve(estimate, executor=decision.executor, job_id=job.job_id)
            record.estimate = estimate
        return decision.executor

    def _reprice(self, record: JobRecord, job: JobSpec, executor: str) -> None:
        """The launch went elsewhere than priced (a candidate refused): hold its estimate."""
        assert self._budget is not None  # noqa: S101
        duration = job.timeout if job.timeout is not None else self.expected_duration
        estimate = self.router.estimate(executor, job, duration)
        reserved = record.estimate
        if reserved is not None and (estimate is None or estimate.currency == reserved.currency):
            self._budget.settle(reserved, estimate)  # the job runs: its estimate is spent
            record.estimate = estimate
        spent = self._budget.spent()
        if spent.amount > self._budget.limit.amount:
            logger.warning(
                "job %s was priced on another executor than %r, where it launched: the "
                "estimated spend is now %s, past the budget of %s",
                job.job_id,
                executor,
                spent.amount,
                self._budget.limit,
            )

    def _release_estimate(self, record: JobRecord) -> None:
        """Give back what a launch that did not happen reserved."""
        if self._budget is not None and record.estimate is not None:
            self._budget.settle(record.estimate, None)
            record.estimate = None

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
        error = _scrubbed_error(exc, text)
        now = to_datetime(self.clock.time())
        status = JobStatus(JobState.FAILED, reason=f"launch failed: {text}", finished_at=now)
        execution = Execution(
            executor=getattr(exc, "executor", None) or "",
            execution_id="",
            job_id=record.job_id,
            launched_at=now,
        )
        self._release_estimate(record)
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

    def _scrub(self, record: JobRecord, text: str) -> str:
        if record.job is None or not record.job.secrets:
            return text
        return Scrubber(record.job.secrets.values())(text)

    # -- polling ----------------------------------------------------------------------

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
            status = _as_timed_out(status, record)
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

    # -- harvesting -------------------------------------------------------------------

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
            result = attrs.evolve(result, status=_as_timed_out(result.status, record))
        result = attrs.evolve(result, job=record.job, attempts=record.attempt)
        self.router.release(execution)
        self.router.hooks.emit("job_finished", execution=execution, result=result)
        if self._retry(handle, record, result, executor):
            return
        with self._lock:
            self._active.pop(execution.execution_id, None)
            self._blocked_since = None
            record.status = result.status
            self._counts[_OUTCOME_FIELD[result.status.state]] += 1
            self._account(record, result)
            self._release_id(record)
        self._notify_progress()
        record.future.set_result(result)
        self._wakeup.set()

    def _account(self, record: JobRecord, result: JobResult) -> None:
        """Replace a job's reserved estimate by its real cost in the spend so far."""
        if self._budget is not None and record.estimate is not None:
            self._budget.settle(record.estimate, result.cost)
            record.estimate = None

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
            self._account(record, result)
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
            self._counts[_OUTCOME_FIELD[status.state]] += 1
            self._account(record, result)
            self._release_id(record)
        self._notify_progress()
        record.future.set_exception(_scrubbed_error(exc, text))
        self._wakeup.set()

    # -- progress ---------------------------------------------------------------------

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


def _check_count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{field} must be an int of 1 or more, got {value!r}")


def _check_seconds(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
        raise ConfigError(f"{field} must be a number of seconds from 0 to 1e9, got {value!r}")


def _scrubbed_error(exc: BaseException, text: str) -> BaseException:
    """Return ``exc``, or an equivalent without the secret it carried in its text."""
    if text == str(exc):
        return exc
    if isinstance(exc, ExecutorError):
        return type(exc)(text, executor=exc.executor, job_id=exc.job_id)
    return ExecutorError(text)


def _as_timed_out(status: JobStatus, record: JobRecord) -> JobStatus:
    timeout = record.job.timeout if record.job is not None else None
    return attrs.evolve(status, state=JobState.TIMED_OUT, reason=f"timed out after {timeout}s")


def _epoch(moment: datetime | None, default: float) -> float:
    return moment.timestamp() if moment is not None else default
