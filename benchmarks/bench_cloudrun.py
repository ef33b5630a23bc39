"""Cloud Run status sweeps and log polling: API calls and time, against the fake.

Claims (issue 11):

1. ``CloudRunExecutor.statuses()`` reads N executions with ListExecutions across jobs
   (``jobs/-``), one call per page, plus one ListTasks per execution seen failed for
   the first time; finished executions are remembered. Baseline, in the same run: one
   GetExecution per execution (``status()`` in a loop), the obvious implementation.
2. ``stream_logs`` keeps every stream of one executor inside Cloud Logging's 60
   ``entries.list`` calls per minute per project. Baseline: what the same polling
   would ask without the shared limiter (60 / poll_interval per stream per minute).

Everything runs through the official clients over HTTP against the package's fake
(``packages/executor-cloudrun/tests/fake_gcp``) on 127.0.0.1. The fake answers at most
100 items per list page (its assumption; the executor asks for 1000). Log polling runs
on simulated time (a ManualClock), so five minutes take a second or two.

Run: ``python benchmarks/bench_cloudrun.py`` (needs jobrelay-cloudrun and
google-api-python-client for the discovery documents).
"""

from __future__ import annotations

import importlib
import logging
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from google.auth.credentials import AnonymousCredentials

from jobrelay import Execution, JobSpec, ManualClock, set_testing
from jobrelay_cloudrun import CloudRunExecutor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages/executor-cloudrun/tests"))
fake_gcp: Any = importlib.import_module("fake_gcp")

SIZES = (1, 50, 150)
REPEATS = 5
STREAMS = (1, 2, 4)
MINUTES = 5
POLL = 1.0


def _executor(fake: Any, **options: Any) -> CloudRunExecutor:
    settings: dict[str, Any] = {
        "credentials": AnonymousCredentials(),  # type: ignore[no-untyped-call]
        "api_endpoint": fake.url,
        "logging_endpoint": fake.url,
        "poll_interval": POLL,
        "log_grace": 0.0,
        "reads_per_minute": 1_000_000,
    }
    settings.update(options)
    return CloudRunExecutor(fake.project, fake.region, **settings)


def _prepare(fake: Any, executor: CloudRunExecutor, count: int) -> list[Execution]:
    """Launch ``count`` jobs: a third running, a third succeeded, a third failed."""
    fake.reset()
    executions = [
        executor.launch(JobSpec("busybox", "true", job_id=f"bench-{count}-{index:04d}"))
        for index in range(count)
    ]
    for index, execution in enumerate(executions):
        if index % 3 == 0:
            fake.start_execution(execution.execution_id)
        else:
            fake.finish(execution.execution_id, 0 if index % 3 == 1 else 2)
    return executions


def sweeps(fake: Any) -> None:
    print("status sweep: Admin API calls (first sweep / next sweep) and median time")
    print(f"{'N':>5} {'batched':>16} {'per-execution':>16} {'ratio':>7} {'time batched':>13}")
    for count in SIZES:
        with _executor(fake) as batched, _executor(fake) as single:
            executions = _prepare(fake, batched, count)
            fake.clear()
            batched.statuses(executions)
            first = fake.count("run.")
            fake.clear()
            batched.statuses(executions)
            second = fake.count("run.")
            fake.clear()
            for execution in executions:
                single.status(execution)
            baseline_first = fake.count("run.")
            fake.clear()
            for execution in executions:
                single.status(execution)
            baseline_second = fake.count("run.")
            times: list[float] = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                batched.statuses(executions)
                times.append(time.perf_counter() - started)
        ratio = (baseline_first + baseline_second) / max(1, first + second)
        print(
            f"{count:>5} {f'{first} / {second}':>16} "
            f"{f'{baseline_first} / {baseline_second}':>16} {ratio:>6.1f}x "
            f"{statistics.median(times) * 1000:>10.1f} ms"
        )
    with _executor(fake) as batched, _executor(fake) as single:
        executions = _prepare(fake, batched, 150)
        batched.statuses(executions)  # both remember the finished ones, as a Runner would
        single.statuses(executions)
        one, many = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            batched.statuses(executions)
            many.append(time.perf_counter() - started)
            started = time.perf_counter()
            for execution in executions:
                single.status(execution)
            one.append(time.perf_counter() - started)
    print(
        f"one sweep of 150 (50 still running): batched {statistics.median(many) * 1000:.1f} ms, "
        f"GetExecution per execution {statistics.median(one) * 1000:.1f} ms "
        f"({statistics.median(one) / statistics.median(many):.1f}x)"
    )


class _Clock(ManualClock):
    """Simulated time; every wait writes a line to each target; they end at ``end``."""

    def __init__(self, fake: Any, end: float) -> None:
        super().__init__(now=time.time())
        self.fake = fake
        self.end = end
        self.targets: list[str] = []

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        when = datetime.fromtimestamp(self.time(), tz=timezone.utc)
        for target in self.targets:
            if "completionTime" not in self.fake.executions[target]:
                self.fake.write_log(target, "stdout", ["tick"], when=when)
                if self.time() >= self.end:
                    self.fake.finish(target, 0)


def log_polling(fake: Any) -> None:
    print(
        f"\nstream_logs, poll every {POLL:g}s for {MINUTES} simulated minutes: "
        "entries.list calls per stream per minute"
    )
    print(
        f"{'streams':>8} {'per stream':>11} {'all streams':>12} "
        f"{'unlimited, all':>15} {'quota':>6} {'ratio':>7}"
    )
    for count in STREAMS:
        fake.reset()
        clock = _Clock(fake, end=time.time() + MINUTES * 60)
        fake.timer = clock.time
        with _executor(fake, clock=clock) as executor:
            executions = [
                executor.launch(JobSpec("busybox", "true", job_id=f"stream-{count}-{index}"))
                for index in range(count)
            ]
            clock.targets = [e.execution_id for e in executions]
            for execution in executions:
                fake.start_execution(execution.execution_id)
            fake.clear()
            streams = {index: executor.stream_logs(e) for index, e in enumerate(executions)}
            while streams:
                for index, stream in list(streams.items()):
                    if next(stream, None) is None:
                        del streams[index]
            calls = fake.count("logging.")
        per_minute = calls / MINUTES
        unlimited = count * 60.0 / POLL
        print(
            f"{count:>8} {per_minute / count:>11.1f} {per_minute:>12.1f} {unlimited:>15.1f} "
            f"{60:>6} {unlimited / per_minute:>6.1f}x"
        )


def main() -> None:
    logging.getLogger("jobrelay").setLevel(logging.ERROR)
    set_testing(True)
    fake = fake_gcp.FakeGCP().start()
    try:
        sweeps(fake)
        log_polling(fake)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
