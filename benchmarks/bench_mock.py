"""Launch + harvest throughput of the mock executor, in jobs per second.

Claim (issue 2): at least 50,000 jobs/s on a 2-core machine; the Django container
manager's mock took about 100 ms per launch (10 jobs/s).

What is timed: ``executor.harvest(executor.launch(spec))`` for every spec, on a fresh
``MockExecutor`` (default clock and outcome) per round. The ``JobSpec`` objects are
built before timing; their construction rate is reported on its own. Each figure is
the best of several rounds after a warm-up round, garbage collection included.

Baselines measured in the same run:

- a plain dict insert + lookup + delete per job (the floor any in-memory
  executor's bookkeeping pays);
- the Django manager's mock at about 100 ms per launch (10 jobs/s; the figure the
  issue quotes, not re-measured here: that code is not part of this repository).

Run: ``python benchmarks/bench_mock.py [--jobs N] [--rounds R] [--check]``;
``--check`` exits 1 when the target is missed (off by default: shared CI machines
are noisy, the figures are for people).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable, Sequence

from jobrelay import JobSpec, JobState
from jobrelay_mock import MockExecutor

TARGET_JOBS_PER_SECOND = 50_000
DJANGO_MOCK_JOBS_PER_SECOND = 10.0  # ~100 ms per launch


def best_rate(run: Callable[[], int], rounds: int) -> float:
    """Return the best items/s over ``rounds`` timed calls of ``run`` (after one warm-up)."""
    run()
    best = 0.0
    for _ in range(rounds):
        gc.collect()  # start each round clean; collections during the round are counted
        started = time.perf_counter()
        count = run()
        elapsed = time.perf_counter() - started
        best = max(best, count / elapsed)
    return best


def build_specs(n: int) -> list[JobSpec]:
    """The jobs of one round: distinct job ids, the mock's default outcome."""
    return [JobSpec("busybox:1.36", ["echo", "hi"], job_id=f"bench-{i}") for i in range(n)]


def mock_round(specs: Sequence[JobSpec]) -> int:
    """Launch and harvest every spec on a fresh executor; check every job succeeded."""
    executor = MockExecutor()
    launch, harvest = executor.launch, executor.harvest
    succeeded = 0
    for spec in specs:
        if harvest(launch(spec)).status.state is JobState.SUCCEEDED:
            succeeded += 1
    if succeeded != len(specs):
        raise SystemExit(f"only {succeeded} of {len(specs)} mock jobs succeeded")
    return succeeded


def dict_round(specs: Sequence[JobSpec]) -> int:
    """The baseline: what a bare dict insert + lookup + delete per job costs."""
    store: dict[str, JobSpec] = {}
    found = 0
    for spec in specs:
        store[spec.job_id] = spec
        if store[spec.job_id] is spec:
            found += 1
        del store[spec.job_id]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (best is kept)")
    parser.add_argument("--check", action="store_true", help="exit 1 below the target")
    args = parser.parse_args(argv)
    n, rounds = args.jobs, args.rounds

    spec_rate = best_rate(lambda: len(build_specs(n)), rounds)
    specs = build_specs(n)
    mock_rate = best_rate(lambda: mock_round(specs), rounds)
    dict_rate = best_rate(lambda: dict_round(specs), rounds)

    cpus = os.cpu_count()
    print(f"bench_mock: {n} jobs x {rounds} rounds (best), Python {sys.version.split()[0]}, "
          f"{cpus} CPUs")  # fmt: skip
    print(f"  JobSpec construction           {spec_rate:>14,.0f} specs/s (not in the figure below)")
    print(f"  MockExecutor launch + harvest  {mock_rate:>14,.0f} jobs/s "
          f"({1e6 / mock_rate:.1f} us/job)")  # fmt: skip
    print(f"  baseline: dict insert+lookup   {dict_rate:>14,.0f} jobs/s "
          f"({1e6 / dict_rate:.3f} us/job)")  # fmt: skip
    print(f"  baseline: Django manager mock  {DJANGO_MOCK_JOBS_PER_SECOND:>14,.0f} jobs/s "
          "(~100 ms/launch, quoted)")  # fmt: skip
    print(f"  ratio mock / Django mock       {mock_rate / DJANGO_MOCK_JOBS_PER_SECOND:>14,.0f}x")
    print(f"  ratio dict / mock              {dict_rate / mock_rate:>14,.1f}x "
          "(the mock's cost over bare bookkeeping)")  # fmt: skip
    met = mock_rate >= TARGET_JOBS_PER_SECOND
    print(f"  target {TARGET_JOBS_PER_SECOND:,} jobs/s: {'met' if met else 'MISSED'}")
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
