"""Scaleway status sweeps and launch calls: ListJobRuns pages vs one GetJobRun per run.

Claims (issue 12):

- ``ScalewayExecutor.statuses()`` over N runs of one definition costs ceil(N/100)
  ListJobRuns calls. Baseline, in the same run against the same runs: one GetJobRun
  call per run (``status()`` in a loop).
- Definitions are reused per shape: the first job of a shape costs four calls
  (ListJobDefinitions, CreateJobDefinition, ListJobRuns, StartJobDefinition), each
  later job two (the ListJobRuns look for its job id, then StartJobDefinition).

Everything runs through the official ``scaleway`` SDK over HTTP against the fake in
``packages/executor-scaleway/tests/fake_scaleway.py`` on 127.0.0.1; calls are counted
by the fake.

Run: ``python benchmarks/bench_scaleway.py`` (needs jobrelay-scaleway).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import median_seconds
from jobrelay import Execution, JobSpec, ManualClock
from jobrelay_scaleway import ScalewayExecutor

SIZES = (1, 50, 150)
LAUNCHES = 20
REPEATS = 3
TESTS = Path(__file__).resolve().parent.parent / "packages/executor-scaleway/tests"


def _load_fake() -> Any:
    # The fake lives with the package's tests (fake_scaleway.py and fake_schema.py).
    sys.path.insert(0, str(TESTS))
    return importlib.import_module("fake_scaleway")


def _executor(fakes: Any, server: Any) -> ScalewayExecutor:
    return ScalewayExecutor(
        fakes.PROJECT_ID,
        access_key=fakes.ACCESS_KEY,
        secret_key=fakes.SECRET_KEY,
        api_url=server.url,
        logs_url=server.loki_url,
        logs_token=fakes.LOGS_TOKEN,
        poll_interval=0.01,
        clock=ManualClock(),
    )


def _calls(server: Any, work: Callable[[], object]) -> int:
    before = sum(server.calls.values())
    work()
    return int(sum(server.calls.values()) - before)


def bench_sweeps(fakes: Any, server: Any) -> None:
    print("status sweep of N runs (one definition), calls and median time of 3")
    print(
        f"{'N':>5} {'ListJobRuns':>12} {'GetJobRun':>10} {'ratio':>7} {'sweep ms':>9} {'loop ms':>8}"
    )
    for size in SIZES:
        server.reset()
        with _executor(fakes, server) as executor:
            executions: list[Execution] = [
                executor.launch(JobSpec("busybox", f"echo {index}")) for index in range(size)
            ]
            for index, execution in enumerate(executions):
                if index % 3 == 0:
                    server.finish(execution.execution_id, index % 2)
                elif index % 3 == 1:
                    server.set_state(execution.execution_id, "running")
            swept = _calls(server, lambda: executor.statuses(executions))  # noqa: B023
            assert swept == executor.sweep_calls
            looped = _calls(server, lambda: [executor.status(e) for e in executions])  # noqa: B023
            batch = executor.statuses(executions)
            single = {e.execution_id: executor.status(e) for e in executions}
            assert batch == single, "the sweep and the per-run calls disagree"
            sweep_time = median_seconds(lambda: executor.statuses(executions), REPEATS)  # noqa: B023
            loop_time = median_seconds(lambda: [executor.status(e) for e in executions], REPEATS)  # noqa: B023
        print(
            f"{size:>5} {swept:>12} {looped:>10} {looped / swept:>6.1f}x "
            f"{sweep_time * 1000:>9.1f} {loop_time * 1000:>8.1f}"
        )


def bench_launches(fakes: Any, server: Any) -> None:
    server.reset()
    with _executor(fakes, server) as executor:
        first = _calls(server, lambda: executor.launch(JobSpec("busybox", "echo 0")))
        rest = _calls(
            server,
            lambda: [executor.launch(JobSpec("busybox", f"echo {i}")) for i in range(1, LAUNCHES)],
        )
    total = first + rest
    print(
        f"launch calls, {LAUNCHES} jobs of one shape: first job {first}, later jobs "
        f"{rest / (LAUNCHES - 1):.1f} each, {total / LAUNCHES:.2f} per job; "
        f"definitions made: {len(server.definitions)}"
    )


def main() -> None:
    fakes = _load_fake()
    with tempfile.TemporaryDirectory() as home:
        # Keep the machine's own scw config out of the measurement.
        os.environ["SCW_CONFIG_PATH"] = str(Path(home) / "none.yaml")
        with fakes.FakeScaleway() as server:
            bench_sweeps(fakes, server)
            bench_launches(fakes, server)


if __name__ == "__main__":
    main()
