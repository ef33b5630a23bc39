"""One job from a shell: `jobrelay run --executor docker IMAGE -- true` against `docker run --rm`.

Both commands run as real processes, side by side, alternating, ROUNDS times each in
one run; the figure is the ratio of the medians. Target: at most 1.3.

Then where the time of one `jobrelay run` goes: interpreter start, imports (of
jobrelay's command line, of the Docker executor with docker-py and requests), and
the job itself, measured inside one process; and the floor: start and imports added
to `docker run --rm`'s own time, the ratio no bookkeeping can beat.

Python writes no bytecode cache when PYTHONDONTWRITEBYTECODE is set (as in some CI
images), and then compiles every module at every start: like an installed package,
the benchmark keeps a bytecode cache, in a temporary PYTHONPYCACHEPREFIX rather
than in the source tree, warmed by one untimed run.

Needs a Docker daemon with the image ``jobrelay-test/busybox:latest`` (see
``.ci/prepare-docker.sh``) and the docker CLI; ``JOBRELAY_BENCH_IMAGE`` picks another
local image. ``--check`` exits 1 when the ratio misses the target.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

IMAGE = os.environ.get("JOBRELAY_BENCH_IMAGE", "jobrelay-test/busybox:latest")
ROUNDS = int(os.environ.get("JOBRELAY_BENCH_ROUNDS", "15"))
TARGET = 1.3

PHASES = """
import time
t0 = time.perf_counter()
import jobrelay._cli, jobrelay._cli_run, jobrelay._router, jobrelay._runner
t1 = time.perf_counter()
import jobrelay_docker
t2 = time.perf_counter()
from importlib.metadata import entry_points
plugins = ",".join(sorted(ep.name for ep in entry_points(group="jobrelay.plugins"))) or "-"
t3 = time.perf_counter()
from jobrelay._hooks import Hooks
Hooks()._ensure_loaded()
t4 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f} {t4 - t3:.3f} {plugins}")
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    assert proc.stdout == "", proc.stdout
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args()
    docker_cli = shutil.which("docker")
    if docker_cli is None:
        print("bench_cli: the docker CLI is needed for the comparison", file=sys.stderr)
        return 1
    cache = tempfile.mkdtemp(prefix="jobrelay-bench-pycache-")
    env = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("JOBRELAY_CONFIG", None)
    ours_cmd = [sys.executable, "-m", "jobrelay", "run", "--quiet", "--executor", "docker",
                "--pull", "never", IMAGE, "--", "true"]  # fmt: skip
    docker_cmd = [docker_cli, "run", "--rm", IMAGE, "true"]
    try:
        timed(ours_cmd, env)  # warm the bytecode cache and the page cache
        timed(docker_cmd, env)
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(ROUNDS):
            ours.append(timed(ours_cmd, env))
            theirs.append(timed(docker_cmd, env))
        start = [timed([sys.executable, "-c", "pass"], env) for _ in range(5)]
        phases = subprocess.run(
            [sys.executable, "-c", PHASES], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    ours_median, theirs_median = statistics.median(ours), statistics.median(theirs)
    ratio = ours_median / theirs_median
    print(f"jobrelay run --executor docker {IMAGE} -- true, {ROUNDS} rounds alternating:")
    print(f"  jobrelay run     median {ours_median:.3f}s  (min {min(ours):.3f}s)")
    print(f"  docker run --rm  median {theirs_median:.3f}s  (min {min(theirs):.3f}s)")
    print(f"  ratio {ratio:.2f} (target <= {TARGET})")
    print("where one jobrelay run's time goes:")
    print(f"  interpreter start           {statistics.median(start):.3f}s")
    print(f"  import jobrelay CLI         {float(phases[0]):.3f}s")
    print(f"  import the Docker executor  {float(phases[1]):.3f}s (docker-py, requests, urllib3)")
    print(
        f"  load jobrelay.plugins       {float(phases[2]):.3f}s ({phases[3]}; overlaps the launch)"
    )
    before = statistics.median(start) + float(phases[0]) + float(phases[1])
    print(f"  the rest (daemon calls, hooks, exit)  {ours_median - before:.3f}s")
    print(f"  docker run --rm in all      {theirs_median:.3f}s")
    # The daemon's own work is at least what `docker run --rm` waits for; start and
    # imports come on top of it before any bookkeeping: no run can be faster.
    print(
        f"floor: start + imports + docker run --rm = {before + theirs_median:.3f}s, "
        f"ratio {(before + theirs_median) / theirs_median:.2f} with no bookkeeping at all"
    )
    return 1 if args.check and ratio > TARGET else 0


if __name__ == "__main__":
    raise SystemExit(main())
