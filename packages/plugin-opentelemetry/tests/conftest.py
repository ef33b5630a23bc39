"""Fixtures: the real OpenTelemetry SDK with its in-memory span exporter and metric reader.

Every test gets its own providers (the global ones can be set once per process; the
tests of the global path run in subprocesses). Docker tests find the daemon and the
image ``jobrelay-test/busybox:latest`` as the Docker executor's own tests do, and fail
rather than skip under ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobrelay import Hooks, ManualClock, Router
from jobrelay_mock import MockExecutor
from jobrelay_opentelemetry import OpenTelemetryPlugin

IMAGE = "jobrelay-test/busybox:latest"
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
RUN_LABEL = "jobrelay-test.run"
RUN_ID = uuid.uuid4().hex[:12]


def unavailable(what: str, why: object) -> NoReturn:
    """Skip, or fail under CI=true, because ``what`` is missing."""
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but unavailable: {why}")
    pytest.skip(f"{what} unavailable: {why}")


@attrs.define
class Telemetry:
    """The plugin under test and the SDK components that receive what it records."""

    plugin: OpenTelemetryPlugin
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first, optionally only those called ``name``."""
        found = self.exporter.get_finished_spans()
        return [span for span in found if name is None or span.name == name]

    def job_span(self, job_id: str) -> ReadableSpan:
        """The one finished ``jobrelay.job`` span of ``job_id``."""
        found = [
            span
            for span in self.spans("jobrelay.job")
            if span.attributes is not None and span.attributes.get("jobrelay.job.id") == job_id
        ]
        assert len(found) == 1, f"expected one job span for {job_id}, got {len(found)}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        """Finished spans whose parent is ``parent``."""
        span_id = parent.context.span_id if parent.context is not None else None
        return [s for s in self.spans() if s.parent is not None and s.parent.span_id == span_id]

    def metric(self, name: str) -> Metric | None:
        """The metric ``name`` from one collection, or None when nothing was recorded."""
        data = self.reader.get_metrics_data()
        if data is None:
            return None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        return metric
        return None

    def points(self, name: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """``attributes -> value`` of metric ``name`` (sums; histograms: (count, sum))."""
        metric = self.metric(name)
        if metric is None:
            return {}
        out: dict[frozenset[tuple[str, Any]], Any] = {}
        for point in metric.data.data_points:
            key = frozenset((point.attributes or {}).items())
            if isinstance(point, HistogramDataPoint):
                out[key] = (point.count, point.sum)
            elif isinstance(point, NumberDataPoint):
                out[key] = point.value
        return out


def key(**attributes: str) -> frozenset[tuple[str, Any]]:
    """A metric point key from ``executor=`` / ``state=`` / ``error=`` shorthands."""
    names = {"executor": "jobrelay.executor", "state": "jobrelay.job.state", "error": "error.type"}
    return frozenset((names[k], v) for k, v in attributes.items())


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """A plugin on fresh SDK providers, recording into memory."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    plugin = OpenTelemetryPlugin(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(plugin, exporter, reader, tracer_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def clock() -> ManualClock:
    """Simulated time: mock jobs of hours end in microseconds."""
    return ManualClock()


def make_router(
    telemetry: Telemetry, clock: ManualClock, executors: dict[str, Any] | None = None, **kw: Any
) -> Router:
    """A Router over mock executors whose hooks hold only the plugin under test."""
    hooks = Hooks(load_entry_points=False)
    hooks.register(telemetry.plugin)
    if executors is None:
        executors = {"mock": MockExecutor(clock=clock)}
    kw.setdefault("default", next(iter(executors)))
    return Router(executors, hooks=hooks, clock=clock, **kw)
