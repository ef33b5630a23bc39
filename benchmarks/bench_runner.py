"""Runner throughput: parallel dispatch against sequential `docker run --rm`, and mock jobs.

Claims (issue 5):

- 50 short Docker jobs through ``Runner(max_workers=8)`` run at least 2x the jobs/s of
  50 sequential ``docker run --rm`` in the same run (the baseline).
- 10,000 mock jobs through the Runner: jobs/s (dispatch overhead with no backend cost).

The Docker part needs a daemon and the image ``jobrelay-test/busybox:latest``
(``.ci/prepare-docker.sh`` makes both); without them it is reported as skipped.

Run: ``python benchmarks/bench_runner.py [--docker-jobs N] [--mock-jobs N]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from jobrelay import Hooks, JobSpec, Router, Runner
from jobrelay_mock import MockExecutor

IMAGE = "jobrelay-test/busybox:latest"
SCRIPT = "echo out; echo err >&2"


def docker_available() -> bool:
    """True when a daemon answers and the test image exists."""
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "image", "inspect", IMAGE], capture_output=True, check=False, timeout=30
    )
    return probe.returncode == 0


def sequential_docker_run(n: int) -> float:
    """Baseline: ``docker run --rm`` one job after the other; returns jobs/s."""
    started = time.perf_counter()
    for _ in range(n):
        subprocess.run(
            ["docker", "run", "--rm", IMAGE, "sh", "-c", SCRIPT],
            capture_output=True,
            check=True,
            timeout=120,
        )
    return n / (time.perf_counter() - started)


def runner_docker(n: int, workers: int) -> float:
    """The same jobs through the Runner on the Docker executor; returns jobs/s."""
    from jobrelay_docker import DockerExecutor  # noqa: PLC0415 - optional backend

    with DockerExecutor(pull_policy="never", stop_grace=1) as docker:
        router = Router({"docker": docker}, default="docker")
        jobs = [JobSpec(IMAGE, ["sh", "-c", SCRIPT], name="bench-runner") for _ in range(n)]
        started = time.perf_counter()
        with Runner(router, max_workers=workers, poll_interval=0.2) as runner:
            results = runner.run(jobs)
        elapsed = time.perf_counter() - started
    failed = [r for r in results if not r.succeeded]
    if failed:
        sys.exit(f"bench_runner: {len(failed)} Docker jobs failed: {failed[0].status}")
    return n / elapsed


def runner_mock(n: int, workers: int) -> float:
    """``n`` instant mock jobs through the Runner; returns jobs/s."""
    mock = MockExecutor()
    # The Runner's own cost: the plugins installed beside it (bench_opentelemetry
    # measures those) stay out.
    router = Router({"mock": mock}, default="mock", hooks=Hooks(load_entry_points=False))
    jobs = [JobSpec("busybox", ["true"], job_id=f"bench-{i}") for i in range(n)]
    started = time.perf_counter()
    with Runner(router, max_workers=workers, poll_interval=0.05) as runner:
        results = runner.run(jobs)
    elapsed = time.perf_counter() - started
    if not all(r.succeeded for r in results):
        sys.exit("bench_runner: a mock job failed")
    return n / elapsed


def main() -> int:
    """Run both parts and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker-jobs", type=int, default=50)
    parser.add_argument("--mock-jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    if args.docker_jobs <= 0:
        print("docker: not asked for (--docker-jobs 0)")
    elif docker_available():
        baseline = sequential_docker_run(args.docker_jobs)
        ours = runner_docker(args.docker_jobs, args.workers)
        print(
            f"docker: {args.docker_jobs} jobs, sequential `docker run --rm`: {baseline:.2f} jobs/s"
        )
        print(
            f"docker: {args.docker_jobs} jobs, Runner(max_workers={args.workers}): {ours:.2f} jobs/s"
        )
        print(f"docker: ratio Runner / sequential = {ours / baseline:.2f}x (target >= 2x)")
    else:
        print(f"docker: skipped (no daemon or no image {IMAGE})")

    rate = runner_mock(args.mock_jobs, args.workers)
    print(
        f"mock: {args.mock_jobs} jobs through Runner(max_workers={args.workers}): {rate:,.0f} jobs/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
