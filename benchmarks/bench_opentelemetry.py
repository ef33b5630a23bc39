"""What jobrelay-opentelemetry costs: mock Runner throughput with and without the plugin.

Claim (plugins issue): with the OpenTelemetry SDK installed and a no-op exporter
behind the usual processors (a ``BatchSpanProcessor`` for spans, a periodic reader for
metrics), the plugin costs under 5% of the mock Runner's jobs/s.

Every side runs the same jobs through the same Runner settings, with the entry points
off so that nothing but the plugin differs; rounds alternate (without, empty, API only,
SDK, ...) so drift hits all, and the medians are compared, in one run. Two reference sides
split the cost: an empty plugin (every hook, doing nothing: what the hook dispatch costs
any plugin) and the plugin on OpenTelemetry's no-op providers (its own bookkeeping, what
an application without an SDK pays). Each side is also given in microseconds per job
(wall time over jobs, so the Runner's own work is in it, and the spread of its rounds),
and each plugin side's cost as the microseconds it adds to a job: a per-job budget can
be judged from that whatever the mock Runner's own speed.

Run: ``python benchmarks/bench_opentelemetry.py [--jobs N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NoOpTracerProvider

from jobrelay import (
    Execution,
    Hooks,
    JobResult,
    JobSpec,
    JobState,
    Router,
    Runner,
    hookimpl,
)
from jobrelay.errors import ExecutorError
from jobrelay_mock import MockExecutor
from jobrelay_opentelemetry import OpenTelemetryPlugin


class NoopSpanExporter(SpanExporter):
    """Accepts every batch and sends it nowhere."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        del spans
        return SpanExportResult.SUCCESS


class NoopMetricExporter(MetricExporter):
    """Accepts every collection and sends it nowhere."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        del metrics_data, timeout_millis, kwargs
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        del timeout_millis
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        del timeout_millis, kwargs


class EmptyPlugin:
    """Implements every hook and does nothing: what the hook dispatch alone costs."""

    @hookimpl
    def job_routed(self, job: JobSpec, decision: object) -> None:
        del job, decision

    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        del job, execution

    @hookimpl
    def job_status_changed(self, execution: Execution, new: JobState) -> None:
        del execution, new

    @hookimpl
    def job_finished(self, execution: Execution, result: JobResult) -> None:
        del execution, result

    @hookimpl
    def launch_failed(self, job: JobSpec, executor: str, error: ExecutorError) -> None:
        del job, executor, error


def run_jobs(n: int, workers: int, plugin: object | None) -> float:
    """``n`` instant mock jobs through a Runner; returns jobs/s."""
    hooks = Hooks(load_entry_points=False)
    if plugin is not None:
        hooks.register(plugin)
    router = Router({"mock": MockExecutor()}, default="mock", hooks=hooks)
    jobs = [JobSpec("busybox", ["true"], name="bench-otel") for _ in range(n)]
    started = time.perf_counter()
    with Runner(router, max_workers=workers, poll_interval=0.05) as runner:
        results = runner.run(jobs)
    elapsed = time.perf_counter() - started
    if not all(r.succeeded for r in results):
        sys.exit("bench_opentelemetry: a mock job failed")
    return n / elapsed


def main() -> int:
    """Alternate rounds without and with the plugin; print medians and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NoopSpanExporter()))
    reader = PeriodicExportingMetricReader(NoopMetricExporter(), export_interval_millis=1000)
    meter_provider = MeterProvider(metric_readers=[reader])
    sides: dict[str, object | None] = {
        "without the plugin": None,
        "with an empty plugin (hook dispatch only)": EmptyPlugin(),
        "with the plugin, API only (no SDK)": OpenTelemetryPlugin(
            tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
        ),
        "with the plugin, SDK + no-op exporter": OpenTelemetryPlugin(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        ),
    }
    for plugin in sides.values():  # warm-up: imports, caches, the SDK's threads
        run_jobs(args.jobs // 4, args.workers, plugin)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, plugin in sides.items():
            rates[name].append(run_jobs(args.jobs, args.workers, plugin))
    tracer_provider.shutdown()
    meter_provider.shutdown()
    for plugin in sides.values():
        if isinstance(plugin, OpenTelemetryPlugin) and plugin.open_jobs():
            sys.exit(f"bench_opentelemetry: {plugin.open_jobs()} job spans left open")

    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["without the plugin"]
    print(f"mock: {args.jobs} jobs x {args.rounds} rounds, Runner(max_workers={args.workers})")
    for name, rate in medians.items():
        # Per job: wall time over jobs, the Runner's own work included; the spread of
        # the rounds tells how far apart two sides must be to differ at all.
        fastest, slowest = max(rates[name]), min(rates[name])
        print(
            f"mock: {name}: {rate:,.0f} jobs/s (median), {1e6 / rate:.0f} us per job"
            f" (rounds {1e6 / fastest:.0f}-{1e6 / slowest:.0f} us)"
        )
    for name, rate in list(medians.items())[1:]:
        added = (1 / rate - 1 / base) * 1e6
        print(
            f"mock: {name}: ratio {rate / base:.3f}, cost {1 - rate / base:.1%}"
            f" ({added:+.0f} us per job)"
        )
    sdk = medians["with the plugin, SDK + no-op exporter"]
    print(
        f"mock: claim: cost with the SDK {1 - sdk / base:.1%} (target < 5%),"
        f" {(1 / sdk - 1 / base) * 1e6:+.0f} us per job"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
