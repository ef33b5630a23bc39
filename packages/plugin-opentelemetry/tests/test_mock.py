"""Spans and metrics of jobs run by a Runner on the mock executor, on simulated time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, StatusCode, TraceState
from opentelemetry.util.types import Attributes

from conftest import Telemetry, key, make_router
from jobrelay import (
    ConfigError,
    Execution,
    JobSpec,
    JobState,
    ManualClock,
    NoExecutorAvailableError,
    Runner,
)
from jobrelay_mock import MockExecutor, MockOutcome
from jobrelay_opentelemetry import OpenTelemetryPlugin, with_trace_context


def attrs_of(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def states_of(span: ReadableSpan) -> list[object]:
    return [
        (event.attributes or {}).get("jobrelay.job.state")
        for event in span.events
        if event.name == "jobrelay.job.state_changed"
    ]


def run(telemetry: Telemetry, clock: ManualClock, *jobs: JobSpec) -> list[JobState]:
    router = make_router(telemetry, clock)
    with Runner(router, clock=clock, poll_interval=0.05) as runner:
        return [result.state for result in runner.run(list(jobs))]


def test_a_job_is_one_span_from_launch_to_finish(telemetry: Telemetry, clock: ManualClock) -> None:
    job = JobSpec(
        "busybox",
        "true",
        name="nightly-import",
        labels={"mock.duration": "30", "mock.pending": "5"},
    )
    assert run(telemetry, clock, job) == [JobState.SUCCEEDED]

    span = telemetry.job_span(job.job_id)
    assert span.parent is None  # its own trace
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.UNSET
    attributes = attrs_of(span)
    assert attributes["jobrelay.job.id"] == job.job_id
    assert attributes["jobrelay.job.name"] == "nightly-import"
    assert attributes["container.image.name"] == "busybox"
    assert attributes["jobrelay.executor"] == "mock"
    assert attributes["jobrelay.route.reason"] == "default"
    assert str(attributes["jobrelay.execution.id"]).startswith("mock-")
    assert attributes["jobrelay.job.state"] == "succeeded"
    assert attributes["jobrelay.job.exit_code"] == 0
    assert attributes["jobrelay.job.attempts"] == 1
    assert attributes["jobrelay.job.duration"] == 30.0
    assert states_of(span) == ["pending", "running", "succeeded"]
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= span.events[0].timestamp <= span.end_time
    assert not span.links
    assert telemetry.plugin.open_jobs() == 0


def test_each_launch_attempt_is_a_child_span(telemetry: Telemetry, clock: ManualClock) -> None:
    refusing = MockExecutor(
        "full", clock=clock, behavior=lambda _job: MockOutcome(launch_error="no room here")
    )
    router = make_router(
        telemetry,
        clock,
        {"full": refusing, "spare": MockExecutor("spare", clock=clock)},
        fallback=["spare"],
    )
    job = JobSpec("busybox", "true")
    with Runner(router, clock=clock, poll_interval=0.05) as runner:
        assert runner.run([job])[0].state is JobState.SUCCEEDED

    span = telemetry.job_span(job.job_id)
    assert attrs_of(span)["jobrelay.executor"] == "spare"
    assert attrs_of(span)["jobrelay.route.reason"] == "fallback"
    failed, launched = telemetry.children(span)
    assert (failed.name, launched.name) == ("jobrelay.launch", "jobrelay.launch")
    assert failed.kind is SpanKind.CLIENT
    assert attrs_of(failed) == {"jobrelay.executor": "full", "error.type": "LaunchError"}
    assert failed.status.status_code is StatusCode.ERROR
    assert "no room here" in (failed.status.description or "")
    (exception,) = failed.events
    assert exception.name == "exception"
    assert str((exception.attributes or {})["exception.type"]).endswith("LaunchError")
    assert attrs_of(launched) == {"jobrelay.executor": "spare"}
    assert launched.status.status_code is StatusCode.UNSET
    assert failed.end_time is not None
    assert launched.start_time is not None
    assert failed.end_time <= launched.start_time
    assert telemetry.points("jobrelay.launch.failures") == {
        key(executor="full", error="LaunchError"): 1
    }


@pytest.mark.parametrize(
    ("labels", "state", "reason"),
    [
        ({"mock.exit-code": "3"}, JobState.FAILED, "exit code 3"),
        ({"mock.lost": "true"}, JobState.LOST, None),
        ({"mock.duration": "3600"}, JobState.TIMED_OUT, "timed out after 60"),
    ],
)
def test_failed_timed_out_and_lost_jobs_have_error_status(
    telemetry: Telemetry,
    clock: ManualClock,
    labels: dict[str, str],
    state: JobState,
    reason: str | None,
) -> None:
    job = JobSpec("busybox", "true", labels=labels, timeout=60)
    assert run(telemetry, clock, job) == [state]
    span = telemetry.job_span(job.job_id)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs_of(span)["jobrelay.job.state"] == state.value
    if reason is not None:
        assert reason in (span.status.description or "")
    assert states_of(span)[-1] == state.value
    assert telemetry.points("jobrelay.job.finished") == {key(executor="mock", state=state.value): 1}


def test_cancelled_jobs_are_not_errors(telemetry: Telemetry, clock: ManualClock) -> None:
    router = make_router(telemetry, clock)
    job = JobSpec("busybox", "true", labels={"mock.duration": "100000"})
    with Runner(router, clock=clock, poll_interval=0.05) as runner:
        handle = runner.submit(job)
        wait_for(lambda: handle.status().state is JobState.RUNNING)
        assert telemetry.points("jobrelay.jobs.running") == {key(executor="mock"): 1}
        handle.cancel()
        assert handle.result(30).state is JobState.CANCELLED
    span = telemetry.job_span(job.job_id)
    assert span.status.status_code is StatusCode.UNSET
    assert states_of(span) == ["pending", "running", "cancelled"]
    assert telemetry.points("jobrelay.jobs.running") == {key(executor="mock"): 0}


def test_metrics_by_executor_and_state(telemetry: Telemetry, clock: ManualClock) -> None:
    jobs = [
        JobSpec("busybox", "true", labels={"mock.duration": "30", "mock.pending": "5"}),
        JobSpec("busybox", "true", labels={"mock.duration": "90", "mock.pending": "15"}),
        JobSpec("busybox", "true", labels={"mock.duration": "10", "mock.exit-code": "1"}),
    ]
    assert run(telemetry, clock, *jobs) == [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED]

    assert telemetry.points("jobrelay.job.finished") == {
        key(executor="mock", state="succeeded"): 2,
        key(executor="mock", state="failed"): 1,
    }
    assert telemetry.points("jobrelay.job.duration") == {
        key(executor="mock", state="succeeded"): (2, 120.0),
        key(executor="mock", state="failed"): (1, 10.0),
    }
    assert telemetry.points("jobrelay.job.launch.latency") == {key(executor="mock"): (3, 20.0)}
    assert telemetry.points("jobrelay.jobs.running") == {key(executor="mock"): 0}
    units = {
        name: getattr(telemetry.metric(name), "unit", None)
        for name in (
            "jobrelay.job.finished",
            "jobrelay.job.duration",
            "jobrelay.job.launch.latency",
            "jobrelay.jobs.running",
        )
    }
    assert units == {
        "jobrelay.job.finished": "{job}",
        "jobrelay.job.duration": "s",
        "jobrelay.job.launch.latency": "s",
        "jobrelay.jobs.running": "{job}",
    }
    duration = telemetry.metric("jobrelay.job.duration")
    assert duration is not None
    boundaries = duration.data.data_points[0].explicit_bounds  # type: ignore[union-attr]
    assert 3600 in boundaries  # buckets in seconds, not the default milliseconds


def test_link_to_the_span_that_launched_the_job(telemetry: Telemetry, clock: ManualClock) -> None:
    router = make_router(telemetry, clock)
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle-request") as request:
        execution = router.launch(JobSpec("busybox", "true"))
    assert telemetry.plugin.open_jobs() == 1  # launched, not finished: nobody polls it
    telemetry.plugin.close()
    (job_span,) = telemetry.spans("jobrelay.job")
    assert attrs_of(job_span)["jobrelay.job.id"] == execution.job_id
    (link,) = job_span.links
    assert link.context.span_id == request.get_span_context().span_id
    assert link.context.trace_id == request.get_span_context().trace_id
    assert job_span.context is not None
    assert job_span.context.trace_id != request.get_span_context().trace_id
    # the launch attempt is a child of the job span, not of the request
    (attempt,) = telemetry.children(job_span)
    assert attempt.name == "jobrelay.launch"


def test_trace_context_carried_through_a_runner(telemetry: Telemetry, clock: ManualClock) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("submit-batch") as submit:
        job = with_trace_context(JobSpec("busybox", "true"))
    assert "traceparent" in job.metadata
    assert with_trace_context(JobSpec("busybox", "true")).metadata == {}  # no span: no change
    assert run(telemetry, clock, job) == [JobState.SUCCEEDED]
    (link,) = telemetry.job_span(job.job_id).links
    assert link.context.span_id == submit.get_span_context().span_id


def test_open_spans_are_bounded(telemetry: Telemetry, clock: ManualClock) -> None:
    plugin = OpenTelemetryPlugin(
        tracer_provider=telemetry.tracer_provider, meter_provider=None, max_jobs=3
    )
    router = make_router(telemetry, clock)
    router.hooks.unregister(telemetry.plugin)
    router.hooks.register(plugin)
    jobs = [JobSpec("busybox", "true") for _ in range(5)]
    for job in jobs:  # launched, never harvested: nothing reports their end
        router.launch(job)
    assert plugin.open_jobs() == 3
    evicted = telemetry.spans("jobrelay.job")
    assert [attrs_of(s)["jobrelay.job.id"] for s in evicted] == [j.job_id for j in jobs[:2]]
    for span in evicted:
        assert span.status.status_code is StatusCode.ERROR
        assert "more than 3 open jobs" in (span.status.description or "")
    plugin.close()
    assert plugin.open_jobs() == 0
    assert len(telemetry.spans("jobrelay.job")) == 5


def test_a_job_no_executor_took_is_ended_after_launch_timeout(
    telemetry: Telemetry, clock: ManualClock
) -> None:
    plugin = OpenTelemetryPlugin(tracer_provider=telemetry.tracer_provider, launch_timeout=0.2)
    refusing = MockExecutor(
        "full", clock=clock, behavior=lambda _job: MockOutcome(launch_error="no")
    )
    router = make_router(telemetry, clock, {"full": refusing})
    router.hooks.unregister(telemetry.plugin)
    router.hooks.register(plugin)
    first = JobSpec("busybox", "true")
    with pytest.raises(NoExecutorAvailableError):
        router.launch(first)
    assert plugin.open_jobs() == 1
    time.sleep(0.3)
    with pytest.raises(NoExecutorAvailableError):
        router.launch(JobSpec("busybox", "true"))
    assert plugin.open_jobs() == 1
    span = telemetry.job_span(first.job_id)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "not launched: no executor took the job"
    (attempt,) = telemetry.children(span)
    assert attempt.status.status_code is StatusCode.ERROR


def test_reattached_executions_get_a_span(telemetry: Telemetry, clock: ManualClock) -> None:
    mock = MockExecutor(clock=clock)
    orphan = mock.launch(JobSpec("busybox", "true", labels={"mock.duration": "20"}))
    router = make_router(telemetry, clock, {"mock": mock})
    with Runner(router, clock=clock, poll_interval=0.05) as runner:
        (handle,) = runner.reconcile()
        assert handle.result(30).state is JobState.SUCCEEDED
    span = telemetry.job_span(orphan.job_id)
    assert attrs_of(span)["jobrelay.execution.id"] == orphan.execution_id
    assert attrs_of(span)["jobrelay.job.state"] == "succeeded"
    assert telemetry.plugin.open_jobs() == 0


class _OnlyLaunchSpans(Sampler):
    """Samples the launch attempts and nothing else: the job spans are dropped."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        del parent_context, trace_id, kind, links, trace_state
        if name == "jobrelay.launch":
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "only jobrelay.launch"


def test_a_sampled_out_job_span_keeps_what_the_sampler_keeps(clock: ManualClock) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=_OnlyLaunchSpans())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    plugin = OpenTelemetryPlugin(tracer_provider=provider, meter_provider=meters)
    telemetry = Telemetry(plugin, exporter, reader, provider)
    job = JobSpec("busybox", "true", labels={"mock.duration": "30", "mock.pending": "5"})
    assert run(telemetry, clock, job) == [JobState.SUCCEEDED]

    spans = telemetry.spans()
    assert [span.name for span in spans] == ["jobrelay.launch"]  # the job span was dropped
    assert attrs_of(spans[0]) == {"jobrelay.executor": "mock"}
    assert telemetry.points("jobrelay.job.finished") == {key(executor="mock", state="succeeded"): 1}
    assert telemetry.points("jobrelay.job.duration") == {
        key(executor="mock", state="succeeded"): (1, 30.0)
    }
    assert plugin.open_jobs() == 0
    provider.shutdown()
    meters.shutdown()


def test_never_raises_into_the_runner(
    telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    execution = Execution("mock", "mock-1", "job-1", datetime(2024, 1, 1, tzinfo=timezone.utc))
    with caplog.at_level(logging.ERROR, logger="jobrelay_opentelemetry"):
        telemetry.plugin.job_finished(execution, object())  # type: ignore[arg-type]
        telemetry.plugin.job_routed(object(), "not a decision")  # type: ignore[arg-type]
    assert [r.message.split(":")[0] for r in caplog.records] == ["job_finished", "job_routed"]
    # a decision of another shape is fine: only its fields are read
    telemetry.plugin.job_routed(JobSpec("busybox", job_id="odd"), "not a decision")
    telemetry.plugin.close()
    assert attrs_of(telemetry.job_span("odd"))["jobrelay.job.id"] == "odd"


def test_concurrent_hooks_from_many_threads(telemetry: Telemetry) -> None:
    """Runner threads call hooks at once: no job is lost, counts balance, nothing stays open."""
    router = make_router(telemetry, ManualClock(follow_real_time=True))
    jobs = [
        JobSpec("busybox", "true", labels={"mock.duration": str(i % 3 / 100)}) for i in range(300)
    ]
    with Runner(router, max_workers=8, poll_interval=0.05) as runner:
        results = runner.run(jobs)
    assert all(result.state is JobState.SUCCEEDED for result in results)
    assert len(telemetry.spans("jobrelay.job")) == 300
    assert len(telemetry.spans("jobrelay.launch")) == 300
    assert telemetry.plugin.open_jobs() == 0
    assert telemetry.points("jobrelay.jobs.running") in ({}, {key(executor="mock"): 0})
    assert telemetry.points("jobrelay.job.finished") == {
        key(executor="mock", state="succeeded"): 300
    }

    # the same job ids reported from several threads at once open one span each
    plugin, barrier = telemetry.plugin, threading.Barrier(8)
    shared = [JobSpec("busybox", "true", job_id=f"shared-{i}") for i in range(50)]

    def report() -> None:
        barrier.wait()
        for job in shared:
            plugin.job_routed(job, None)

    threads = [threading.Thread(target=report) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert plugin.open_jobs() == 50
    plugin.close()
    assert len(telemetry.spans("jobrelay.job")) == 350


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_jobs": 0}, "max_jobs"),
        ({"max_jobs": 2.5}, "max_jobs"),
        ({"max_jobs": True}, "max_jobs"),
        ({"max_jobs": "10"}, "max_jobs"),
        ({"launch_timeout": 0}, "launch_timeout"),
        ({"launch_timeout": float("nan")}, "launch_timeout"),
        ({"launch_timeout": float("inf")}, "launch_timeout"),
        ({"launch_timeout": "600"}, "launch_timeout"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        OpenTelemetryPlugin(**settings)  # type: ignore[arg-type]
