"""Docker executor overhead against raw docker-py, on the real daemon, in one run.

1. 30 jobs (``sh -c 'echo out; echo err >&2; exit N'``) through ``launch`` ->
   ``harvest``, alternating with the minimal raw docker-py sequence (create + start,
   wait, logs, remove). Target: ratio at most 1.05.
2. ``statuses()`` over 200 managed containers vs 200 individual ``inspect`` calls,
   alternating, several rounds. Target: at least 10x faster.
3. For the cost table: the same job (1 vCPU, 2 GiB, 10 minutes) priced by
   ``estimate_cost`` at the default ``cost_per_hour`` (0: your machine) and at an
   example rate.

Needs a Docker daemon with the image ``jobrelay-test/busybox:latest`` (see
``.ci/prepare-docker.sh``); ``JOBRELAY_BENCH_IMAGE`` picks another local image.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker

from jobrelay import Execution, JobSpec, JobState
from jobrelay_docker import DockerExecutor

IMAGE = os.environ.get("JOBRELAY_BENCH_IMAGE", "jobrelay-test/busybox:latest")
JOBS = 30
CONTAINERS = 200
ROUNDS = 7
BENCH_LABEL = "jobrelay-bench.run"


def script(n: int) -> list[str]:
    return ["sh", "-c", f"echo out; echo err >&2; exit {n % 4}"]


def through_jobrelay(executor: DockerExecutor, n: int) -> tuple[float, int | None]:
    started = time.perf_counter()
    result = executor.harvest(executor.launch(JobSpec(IMAGE, script(n))))
    elapsed = time.perf_counter() - started
    assert (result.logs.stdout, result.logs.stderr) == ("out\n", "err\n"), result.logs
    return elapsed, result.exit_code


def through_docker_py(api: docker.APIClient, n: int, labels: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    container = api.create_container(IMAGE, script(n), labels=labels)
    api.start(container)
    code = int(api.wait(container)["StatusCode"])
    api.logs(container)
    api.remove_container(container)
    elapsed = time.perf_counter() - started
    return elapsed, code


def bench_launch_harvest(executor: DockerExecutor, api: docker.APIClient, run_id: str) -> float:
    labels = {BENCH_LABEL: run_id}
    ours: list[float] = []
    raw: list[float] = []
    # Warm both paths once (image cache, connection pools), untimed.
    through_jobrelay(executor, 0)
    through_docker_py(api, 0, labels)
    for n in range(JOBS):
        # Alternate which goes first so drift in the daemon hits both alike.
        order = (0, 1) if n % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                elapsed, code = through_jobrelay(executor, n)
                ours.append(elapsed)
            else:
                elapsed, code = through_docker_py(api, n, labels)
                raw.append(elapsed)
            assert code == n % 4
    ratio = sum(ours) / sum(raw)
    print(f"launch -> harvest, {JOBS} jobs each, alternating:")
    print(
        f"  jobrelay-docker : total {sum(ours):7.3f}s  median {statistics.median(ours) * 1000:7.1f} ms/job"
    )
    print(
        f"  raw docker-py   : total {sum(raw):7.3f}s  median {statistics.median(raw) * 1000:7.1f} ms/job"
    )
    print(f"  ratio (jobrelay / raw) = {ratio:.3f}   target <= 1.05")
    print(f"  median ratio           = {statistics.median(ours) / statistics.median(raw):.3f}")
    return ratio


def bench_statuses(executor: DockerExecutor, api: docker.APIClient) -> float:
    jobs = [JobSpec(IMAGE, ["sh", "-c", f"exit {i % 3}"]) for i in range(CONTAINERS)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        executions: list[Execution] = list(pool.map(executor.launch, jobs))
    print(f"\n(launched {CONTAINERS} managed containers in {time.perf_counter() - started:.1f}s)")
    deadline = time.monotonic() + 120
    while any(not s.is_terminal for s in executor.statuses(executions).values()):
        assert time.monotonic() < deadline, "containers did not finish"
        time.sleep(0.2)

    batch_times: list[float] = []
    inspect_times: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        batch = executor.statuses(executions)
        batch_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        inspected = [api.inspect_container(e.execution_id) for e in executions]
        inspect_times.append(time.perf_counter() - started)
        codes = [data["State"]["ExitCode"] for data in inspected]
        assert [batch[e.execution_id].exit_code for e in executions] == codes
    states = dict.fromkeys(JobState, 0)
    for status in batch.values():
        states[status.state] += 1
    assert states[JobState.SUCCEEDED] + states[JobState.FAILED] == CONTAINERS, states
    ratio = statistics.median(inspect_times) / statistics.median(batch_times)
    print(f"statuses() over {CONTAINERS} containers vs {CONTAINERS} inspects, {ROUNDS} rounds:")
    print(f"  statuses() (1 list call) : median {statistics.median(batch_times) * 1000:8.1f} ms")
    print(
        f"  {CONTAINERS} inspect calls       : median {statistics.median(inspect_times) * 1000:8.1f} ms"
    )
    print(f"  speed-up = {ratio:.1f}x   target >= 10x")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(executor.cleanup, executions))
    return ratio


def cost_figures() -> None:
    job = JobSpec(IMAGE, ["true"], resources={"cpu": 1, "memory": "2Gi"})
    print("\ncost of 1 vCPU, 2 GiB for 10 minutes (estimate_cost, no daemon call):")
    for rate in ("0", "0.12"):
        with DockerExecutor(cost_per_hour=rate) as priced:
            cost = priced.estimate_cost(job, 600)
        assert cost is not None
        print(f"  cost_per_hour={rate:<5}: {cost.amount} {cost.currency} ({cost.source})")


def main() -> int:
    run_id = uuid.uuid4().hex[:12]
    api = docker.from_env(timeout=60).api
    try:
        api.inspect_image(IMAGE)
    except docker.errors.NotFound:
        print(f"image {IMAGE} is missing: run .ci/prepare-docker.sh", file=sys.stderr)
        return 2
    executor = DockerExecutor(name=f"bench-{run_id}", labels={BENCH_LABEL: run_id}, stop_grace=1)
    try:
        launch_ratio = bench_launch_harvest(executor, api, run_id)
        statuses_ratio = bench_statuses(executor, api)
        cost_figures()
    finally:
        for summary in api.containers(all=True, filters={"label": f"{BENCH_LABEL}={run_id}"}):
            api.remove_container(summary["Id"], force=True)
        executor.close()
        api.close()
    print(
        f"\nsummary: launch->harvest ratio {launch_ratio:.3f} (target <= 1.05), "
        f"statuses speed-up {statuses_ratio:.1f}x (target >= 10x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
