"""The hook implementation: jobrelay's hooks turned into OpenTelemetry spans and metrics.

Only the OpenTelemetry *API* is used. Without an SDK every call is a no-op; with one,
spans and metrics go wherever the application's providers send them. A tracer or meter
taken from the global providers before the application installs its own follows them
once installed (the API's proxies), so the module-level ``plugin`` that the entry point
registers works whatever the import order.

Hooks fire from several Runner threads (the routing thread, the monitor thread, the
harvesting pool). They only update a record of the job in one lock-protected table,
bounded in size and age so that a job never reported finished cannot stay there for
ever; the spans are made from the record when the job ends (an unfinished span is never
exported anyway). Counts (finished jobs, running jobs, launch failures) are kept here
too and read by the SDK through asynchronous instruments at collection time.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from jobrelay import JobState, hookimpl
from jobrelay.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue

    from jobrelay import Execution, JobResult, JobSpec
    from jobrelay.errors import ExecutorError

    _Attributes = Mapping[str, AttributeValue]

__all__ = ["OpenTelemetryPlugin", "with_trace_context"]

logger = logging.getLogger("jobrelay_opentelemetry")

SCOPE = "jobrelay_opentelemetry"
VERSION = "0.1.0"

# Attribute keys of spans and metrics; OpenTelemetry's own where one exists.
EXECUTOR = "jobrelay.executor"
JOB_ID = "jobrelay.job.id"
JOB_NAME = "jobrelay.job.name"
IMAGE = "container.image.name"
STATE = "jobrelay.job.state"
EXIT_CODE = "jobrelay.job.exit_code"
ATTEMPTS = "jobrelay.job.attempts"
DURATION = "jobrelay.job.duration"
ROUTE_REASON = "jobrelay.route.reason"
EXECUTION_ID = "jobrelay.execution.id"
COST = "jobrelay.job.cost"
COST_CURRENCY = "jobrelay.job.cost.currency"
ERROR_TYPE = "error.type"

JOB_SPAN = "jobrelay.job"
LAUNCH_SPAN = "jobrelay.launch"
STATE_EVENT = "jobrelay.job.state_changed"

_ERROR_STATES = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.LOST})
_NAMES = {state: state.value for state in JobState}  # faster than Enum.value per call
# Attributes built once and shared. OpenTelemetry copies the attributes it is given and
# nothing here changes these after building them (typed read-only). Plain dicts: the
# SDK validates a dict faster than a MappingProxyType.
_STATE_ATTRIBUTES: dict[JobState, _Attributes] = {state: {STATE: state.value} for state in JobState}
_ERROR_STATUS = {state: Status(StatusCode.ERROR, state.value) for state in _ERROR_STATES}
_NO_ATTRIBUTES: _Attributes = {}
_MAX_EVENTS = 128  # state changes kept per job (the SDK's own default event limit)
_ROOT = Context()  # a job span starts its own trace: the hook's thread is not its parent
# Seconds: jobs run from under a second to a day.
_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


def with_trace_context(job: JobSpec) -> JobSpec:
    """Return ``job`` carrying the current trace context in its ``metadata``.

    A Runner launches jobs from its own threads, where the span that submitted a job is
    not the current one; the context written here (W3C ``traceparent`` through the
    global propagator) lets the job's span link to the submitting span all the same.
    Returns ``job`` itself when there is no context to carry.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return job
    return attrs.evolve(job, metadata={**job.metadata, **carrier})


class _Attempt:
    """One launch attempt: when it began and ended, where, and why it failed if it did."""

    __slots__ = ("end_ns", "error", "executor", "start_ns")

    def __init__(
        self, start_ns: int, end_ns: int, executor: str | None, error: _Failure | None
    ) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.executor = executor
        self.error = error


class _Failure:
    """What a refused attempt's span reports; text only, so no traceback is kept alive."""

    __slots__ = ("kind", "message", "qualified", "stacktrace")

    def __init__(self, error: BaseException) -> None:
        self.kind = type(error).__name__
        self.qualified = f"{type(error).__module__}.{type(error).__qualname__}"
        self.message = str(error)
        self.stacktrace = "".join(traceback.format_exception(error))


class _Job:
    """One open job: what the hooks told so far, turned into spans once it ends.

    Nothing reaches the SDK before then (an unfinished span is never exported anyway),
    so the hooks on the Runner's path only update this record.
    """

    __slots__ = (
        "attempts",
        "attributes",
        "events",
        "executor",
        "last_ns",
        "launched",
        "link",
        "running",
        "start_ns",
    )

    def __init__(
        self,
        attributes: dict[str, AttributeValue],
        now_ns: int,
        link: SpanContext | None = None,
        executor: str | None = None,
    ) -> None:
        self.attributes = attributes
        self.start_ns = now_ns
        self.last_ns = now_ns  # the last hook that spoke of the job
        self.link = link
        self.executor = executor  # where it runs, once a launch succeeded
        self.launched = executor is not None
        self.running: str | None = None  # the executor it is counted running on
        self.events: list[tuple[int, JobState]] = []  # (time, new state)
        self.attempts: list[_Attempt] = []


class OpenTelemetryPlugin:
    """jobrelay hook implementation recording a span per job and job metrics.

    Spans: ``jobrelay.job`` from a job's first launch attempt to its finish (a trace of
    its own, linked to the span that submitted the job), with an event per state change
    and an error status for failed, timed-out and lost jobs; a ``jobrelay.launch``
    child for every launch attempt, failed ones with error status and the exception.

    Metrics: ``jobrelay.job.finished`` (counter), ``jobrelay.job.duration`` and
    ``jobrelay.job.launch.latency`` (histograms, seconds), ``jobrelay.jobs.running``
    (up-down counter), ``jobrelay.launch.failures`` (counter).

    Args:
        tracer_provider: where spans go; default the global provider.
        meter_provider: where metrics go; default the global provider.
        max_jobs: most job spans kept open; past it the oldest is ended with an error
            status (a process that launches jobs and never harvests them).
        launch_timeout: seconds after its last failed attempt a job that no executor
            took is ended as not launched.

    Raises:
        ConfigError: ``max_jobs`` or ``launch_timeout`` is out of range.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        max_jobs: int = 10_000,
        launch_timeout: float = 600.0,
    ) -> None:
        if type(max_jobs) is not int or max_jobs < 1:  # not a bool, not a float
            raise ConfigError(f"max_jobs: must be an integer of 1 or more, got {max_jobs!r}")
        try:
            timeout_ok = 0 < launch_timeout < 10**9
        except TypeError:
            timeout_ok = False
        if not timeout_ok:
            raise ConfigError(f"launch_timeout: must be seconds above 0, got {launch_timeout!r}")
        self.max_jobs = max_jobs
        self.launch_timeout = launch_timeout
        self._lock = threading.Lock()
        # job_id -> open job, oldest first; jobs still launching apart, so that expiring
        # stale launches never walks past long-running launched jobs.
        self._launching: OrderedDict[str, _Job] = OrderedDict()
        self._launched: OrderedDict[str, _Job] = OrderedDict()
        self._finished: dict[tuple[str, str], int] = {}
        self._running: dict[str, int] = {}
        self._failures: dict[tuple[str, str], int] = {}
        # Metric attributes, one read-only mapping per executor (and state).
        self._labels_by_executor: dict[str, _Attributes] = {}
        self._labels_by_state: dict[tuple[str, JobState], _Attributes] = {}

        self._tracer = trace.get_tracer(SCOPE, VERSION, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, VERSION, meter_provider=meter_provider)
        meter.create_observable_counter(
            "jobrelay.job.finished",
            [self._observe_finished],
            unit="{job}",
            description="Jobs that reached an end, by executor and state.",
        )
        meter.create_observable_up_down_counter(
            "jobrelay.jobs.running",
            [self._observe_running],
            unit="{job}",
            description="Jobs running now, by executor.",
        )
        meter.create_observable_counter(
            "jobrelay.launch.failures",
            [self._observe_failures],
            unit="{failure}",
            description="Launch attempts an executor refused, by executor and error class.",
        )
        self._duration = meter.create_histogram(
            "jobrelay.job.duration",
            unit="s",
            description="How long finished jobs ran.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self._latency = meter.create_histogram(
            "jobrelay.job.launch.latency",
            unit="s",
            description="From a job's launch to the start of its run.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )

    # -- hooks: each swallows its own errors, telemetry never breaks a job -------------

    @hookimpl
    def launch_failed(self, job: JobSpec, executor: str, error: ExecutorError) -> None:
        """Record a failed launch attempt."""
        try:
            self._launch_failed(job, executor, error)
        except Exception:
            logger.exception("launch_failed: could not record job %s", _job_id(job))

    @hookimpl
    def job_routed(self, job: JobSpec, decision: object) -> None:
        """Record the launch attempt that succeeded, and the routing reason."""
        try:
            executor = getattr(decision, "executor", None)
            reason = getattr(decision, "reason", None)
            self._launched_on(
                job,
                executor if isinstance(executor, str) else None,
                ROUTE_REASON,
                reason if isinstance(reason, str) else None,
            )
        except Exception:
            logger.exception("job_routed: could not record job %s", _job_id(job))

    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        """Record the execution a launch made."""
        try:
            self._launched_on(job, execution.executor, EXECUTION_ID, execution.execution_id)
        except Exception:
            logger.exception("job_launched: could not record job %s", _job_id(job))

    @hookimpl
    def job_status_changed(self, execution: Execution, new: JobState) -> None:
        """Add a state-change event; count running jobs (``old`` is not needed)."""
        try:
            self._status_changed(execution, new)
        except Exception:
            logger.exception("job_status_changed: could not record job %s", _job_id(execution))

    @hookimpl
    def job_finished(self, execution: Execution, result: JobResult) -> None:
        """End the job's span; record the finished-job metrics."""
        try:
            self._job_finished(execution, result)
        except Exception:
            logger.exception("job_finished: could not record job %s", _job_id(execution))

    # -- public -------------------------------------------------------------------------

    def open_jobs(self) -> int:
        """How many job spans are open (launching or launched, not yet finished)."""
        with self._lock:
            return len(self._launching) + len(self._launched)

    def close(self) -> None:
        """End every open job span, its outcome unknown (status unset).

        For a process that stops before its jobs end (``Runner.shutdown(wait=False)``).
        """
        with self._lock:
            entries = [*self._launching.values(), *self._launched.values()]
            self._launching.clear()
            self._launched.clear()
            for entry in entries:
                self._stop_running(entry)
        for entry in entries:
            self._emit(entry, entry.last_ns, None)

    # -- recording: one pass under the lock per hook, the SDK only once a job ends ------

    def _launch_failed(self, job: JobSpec, executor: str, error: ExecutorError) -> None:
        now = time.time_ns()
        failure = _Failure(error)  # formatting the traceback: outside the lock
        link = self._link_if_new(job)
        with self._lock:
            entry, created = self._entry_of(job, now, link)
            entry.attempts.append(_Attempt(entry.last_ns, now, executor, failure))
            entry.last_ns = now
            key = (executor, failure.kind)
            self._failures[key] = self._failures.get(key, 0) + 1
            ended = self._trim(now) if created else []
        self._end_all(ended)

    def _launched_on(
        self, job: JobSpec, executor: str | None, key: str, value: AttributeValue | None
    ) -> None:
        """The attempt that succeeded (``job_routed`` and ``job_launched`` report one)."""
        now = time.time_ns()
        link = self._link_if_new(job)
        with self._lock:
            entry, created = self._entry_of(job, now, link)
            if not entry.launched:
                entry.launched = True
                entry.attempts.append(_Attempt(entry.last_ns, now, executor, None))
                if self._launching.pop(job.job_id, None) is entry:
                    self._launched[job.job_id] = entry
            attributes = entry.attributes
            if executor is not None:
                entry.executor = attributes[EXECUTOR] = executor
            if value is not None:
                attributes[key] = value
            entry.last_ns = now
            # Last, so that a job this very call pushed out is ended with all it knows.
            ended = self._trim(now) if created else []
        self._end_all(ended)

    def _status_changed(self, execution: Execution, new: JobState) -> None:
        now = time.time_ns()
        with self._lock:
            entry, ended = self._for_execution(execution, now)
            entry.last_ns = now
            if len(entry.events) < _MAX_EVENTS:
                # The new state only: the one before is the previous event's.
                entry.events.append((now, new))
            if new is not JobState.RUNNING:
                self._stop_running(entry)
            elif entry.running is None:
                entry.running = executor = execution.executor
                self._running[executor] = self._running.get(executor, 0) + 1
        self._end_all(ended)

    def _job_finished(self, execution: Execution, result: JobResult) -> None:
        now = time.time_ns()
        status = result.status
        state = status.state
        name = _NAMES[state]
        executor = execution.executor
        # Everything read from the result first: a broken one leaves the job open.
        update: dict[str, AttributeValue] = {
            EXECUTOR: executor,
            EXECUTION_ID: execution.execution_id,
            STATE: name,
            ATTEMPTS: result.attempts,
        }
        duration = result.duration
        if duration is None:
            duration = _seconds(status.started_at, status.finished_at)
        if duration is not None:
            duration = update[DURATION] = max(duration, 0.0)
        if status.exit_code is not None:
            update[EXIT_CODE] = status.exit_code
        cost = result.cost
        if cost is not None and hasattr(cost, "currency"):  # a Cost, not an old float
            update[COST] = str(cost.amount)
            update[COST_CURRENCY] = cost.currency
        error = None
        if state in _ERROR_STATES:
            reason = status.reason
            error = Status(StatusCode.ERROR, reason) if reason else _ERROR_STATUS[state]
        latency = _seconds(execution.launched_at, status.started_at)
        with self._lock:
            entry, ended = self._for_execution(execution, now)
            del self._launched[execution.job_id]
            self._stop_running(entry)
            key = (executor, name)
            self._finished[key] = self._finished.get(key, 0) + 1
        self._end_all(ended)
        entry.attributes.update(update)  # out of the table: no other hook reaches it
        self._emit(entry, now, error)
        if duration is not None:
            self._duration.record(duration, self._state_labels(executor, state))
        if latency is not None:
            self._latency.record(max(latency, 0.0), self._executor_labels(executor))

    def _state_labels(self, executor: str, state: JobState) -> _Attributes:
        """``{executor, state}``, built once per pair (a few executors, a few states)."""
        labels = self._labels_by_state.get((executor, state))
        if labels is None:
            labels = {EXECUTOR: executor, STATE: _NAMES[state]}
            self._labels_by_state[executor, state] = labels
        return labels

    def _executor_labels(self, executor: str) -> _Attributes:
        """``{executor}``, built once per executor."""
        labels = self._labels_by_executor.get(executor)
        if labels is None:
            labels = self._labels_by_executor[executor] = {EXECUTOR: executor}
        return labels

    # -- spans, made once a job ends ----------------------------------------------------

    def _emit(self, entry: _Job, end_ns: int, status: Status | None) -> None:
        """Turn a finished (or given up) job into its span and its attempts' spans."""
        tracer = self._tracer
        span = tracer.start_span(
            JOB_SPAN,
            context=_ROOT,
            attributes=entry.attributes,
            links=(Link(entry.link),) if entry.link is not None else None,
            start_time=entry.start_ns,
        )
        if span.is_recording():  # a sampled-out span drops events: skip the calls
            for moment, state in entry.events:
                span.add_event(STATE_EVENT, _STATE_ATTRIBUTES[state], timestamp=moment)
        parent = trace.set_span_in_context(span, _ROOT)
        for attempt in entry.attempts:
            # The hooks report an attempt's outcome, not its start: an attempt spans
            # from the job's previous report (the attempt before) to its own outcome.
            executor, failure = attempt.executor, attempt.error
            attributes: _Attributes
            if failure is not None:
                attributes = {ERROR_TYPE: failure.kind}
                if executor is not None:
                    attributes = {EXECUTOR: executor, ERROR_TYPE: failure.kind}
            else:  # the usual case: built once per executor
                attributes = _NO_ATTRIBUTES if executor is None else self._executor_labels(executor)
            child = tracer.start_span(
                LAUNCH_SPAN,
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=attempt.start_ns,
            )
            if failure is not None:
                child.add_event(
                    "exception",
                    {
                        "exception.type": failure.qualified,
                        "exception.message": failure.message,
                        "exception.stacktrace": failure.stacktrace,
                    },
                    timestamp=attempt.end_ns,
                )
                child.set_status(Status(StatusCode.ERROR, failure.message))
            child.end(end_time=attempt.end_ns)
        if status is not None:
            span.set_status(status)
        span.end(end_time=end_ns)

    # -- the table of open jobs ---------------------------------------------------------

    def _link_if_new(self, job: JobSpec) -> SpanContext | None:
        """The submitting span of a job with no entry yet: read in the launching thread.

        A dict read, safe without the lock; at worst a job another thread just opened
        pays for a link it will not use.
        """
        job_id = job.job_id
        if job_id in self._launched or job_id in self._launching:
            return None
        return _submitter(job)

    def _entry_of(self, job: JobSpec, now: int, link: SpanContext | None) -> tuple[_Job, bool]:
        """The entry of ``job``, opened now unless it has one (lock held); and if new.

        An entry opened here is launching; the caller trims the table once it is done.
        """
        job_id = job.job_id
        entry = self._launched.get(job_id) or self._launching.get(job_id)
        if entry is not None:
            return entry, False
        attributes: dict[str, AttributeValue] = {
            JOB_ID: job_id,
            JOB_NAME: job.name,
            IMAGE: job.image,
        }
        entry = self._launching[job_id] = _Job(attributes, now, link)
        return entry, True

    def _for_execution(self, execution: Execution, now: int) -> tuple[_Job, list[tuple[_Job, str]]]:
        """The entry of ``execution``'s job (lock held); a re-attached execution opens one.

        Also returns the jobs this pushed out of the table, for the caller to end.
        """
        job_id = execution.job_id
        entry = self._launched.get(job_id)
        if entry is not None:
            return entry, []
        entry = self._launching.pop(job_id, None)
        if entry is not None:
            self._launched[job_id] = entry  # reported running without a launch hook
            return entry, []
        attributes: dict[str, AttributeValue] = {
            JOB_ID: job_id,
            EXECUTOR: execution.executor,
            EXECUTION_ID: execution.execution_id,
        }
        entry = self._launched[job_id] = _Job(attributes, now, None, execution.executor)
        return entry, self._trim(now)  # the new entry is the youngest: it stays

    def _trim(self, now: int) -> list[tuple[_Job, str]]:
        """Take out the jobs past ``max_jobs`` or ``launch_timeout`` (lock held).

        The caller ends their spans, outside the lock.
        """
        ended: list[tuple[_Job, str]] = []
        while len(self._launching) + len(self._launched) > self.max_jobs:
            launching = next(iter(self._launching.values()), None)
            launched = next(iter(self._launched.values()), None)
            older = launched is None or (
                launching is not None and launching.last_ns <= launched.last_ns
            )
            entry = (self._launching if older else self._launched).popitem(last=False)[1]
            ended.append((entry, f"no outcome seen: more than {self.max_jobs} open jobs"))
        horizon = now - int(self.launch_timeout * 1e9)
        while self._launching:
            entry = next(iter(self._launching.values()))
            if entry.last_ns > horizon:
                break
            self._launching.popitem(last=False)
            ended.append((entry, "not launched: no executor took the job"))
        for entry, _ in ended:
            self._stop_running(entry)
        return ended

    def _end_all(self, ended: list[tuple[_Job, str]]) -> None:
        for entry, why in ended:
            self._emit(entry, entry.last_ns, Status(StatusCode.ERROR, why))

    def _stop_running(self, entry: _Job) -> None:
        """Take a job out of the running count, once (lock held)."""
        if entry.running is not None:
            self._running[entry.running] -= 1
        entry.running = None

    # -- asynchronous instruments, read at collection -----------------------------------

    def _observe_finished(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._finished.items())
        return [Observation(n, {EXECUTOR: e, STATE: s}) for (e, s), n in counts]

    def _observe_running(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._running.items())
        return [Observation(n, {EXECUTOR: e}) for e, n in counts]

    def _observe_failures(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._failures.items())
        return [Observation(n, {EXECUTOR: e, ERROR_TYPE: k}) for (e, k), n in counts]


def _submitter(job: JobSpec) -> SpanContext | None:
    """The span that submitted ``job``: carried in its metadata, else current here."""
    metadata: Mapping[str, object] = job.metadata
    if "traceparent" in metadata:
        carrier = {k: v for k, v in metadata.items() if isinstance(v, str)}
        carried = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if carried.is_valid:
            return carried
    current = trace.get_current_span().get_span_context()
    return current if current.is_valid else None


def _job_id(subject: object) -> object:
    """The job id of a job or an execution, for a log line about a broken argument."""
    return getattr(subject, "job_id", subject)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
