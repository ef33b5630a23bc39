"""Fargate status sweeps: DescribeTasks calls and time, batched vs one call per task.

Claim: ``FargateExecutor.statuses()`` asks ECS about N tasks in ceil(N/100)
DescribeTasks calls. Baseline, in the same run: one DescribeTasks call per task
(``status()`` in a loop). Both run through boto3 over HTTP against an unpatched moto
server on 127.0.0.1; calls are counted with botocore's ``before-call`` event.

Also printed: the estimate for one job (1 vCPU, 2 GiB, 10 minutes) from the shipped
price table, on-demand and Spot, x86 and ARM, in us-east-1.

Run: ``python benchmarks/bench_fargate.py`` (needs jobrelay-fargate and moto[server]).
"""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import moto
from moto.server import ThreadedMotoServer

from _timing import median_seconds
from jobrelay import Execution, JobSpec
from jobrelay_fargate import FargateExecutor

REGION = "us-east-1"
TASKS = 250
SIZES = (1, 99, 100, 101, 250)
REPEATS = 3


def _post(url: str, payload: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - local moto
        answer.read()


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    # The fake server's per-request access log would drown the figures.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's tasks otherwise walk to STOPPED on every DescribeTasks
    _post(
        f"{url}/moto-api/state-manager/set-transition",
        {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
    )
    session = boto3.session.Session(region_name=REGION)
    describe_calls = 0

    def count(**_: object) -> None:
        nonlocal describe_calls
        describe_calls += 1

    session.events.register("before-call.ecs.DescribeTasks", count)
    ec2: Any = session.client("ec2", endpoint_url=url)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    ecs: Any = session.client("ecs", endpoint_url=url)
    ecs.create_cluster(clusterName="bench")
    try:
        with FargateExecutor(
            "bench", [subnet], [group], region=REGION, endpoint_url=url, session=session
        ) as executor:
            executions: list[Execution] = [
                executor.launch(JobSpec("busybox:1.36", ["true"], job_id=f"bench-{i}"))
                for i in range(TASKS)
            ]
            _report(executor, executions, lambda: describe_calls)
    finally:
        server.stop()
    _costs(session)


def _costs(session: boto3.session.Session) -> None:
    job = JobSpec("busybox:1.36", ["true"], resources={"cpu": 1, "memory": "2Gi"})
    print("Fargate estimate, 1 vCPU / 2 GiB for 10 minutes, us-east-1 (shipped table):")
    for capacity in ("FARGATE", "FARGATE_SPOT"):
        for architecture in ("X86_64", "ARM64"):
            with FargateExecutor(
                "bench",
                ["subnet-0"],
                [],
                region=REGION,
                session=session,
                capacity_provider=capacity,
                cpu_architecture=architecture,
            ) as executor:
                cost = executor.estimate_cost(job, 600)
            assert cost is not None
            print(
                f"  {capacity:<13} {architecture:<7} {cost.amount:.6f} {cost.currency}"
                f"  ({cost.rate_per_hour} {cost.currency}/h; {cost.source})"
            )


def _report(
    executor: FargateExecutor, executions: list[Execution], calls: Callable[[], int]
) -> None:
    print(f"Fargate status sweep: boto3 {boto3.__version__} over HTTP to moto {moto.__version__}")
    print(f"{'tasks':>6} {'batched calls':>14} {'ceil(N/100)':>12} {'one-per-task calls':>19}")
    for size in SIZES:
        subset = executions[:size]
        before = calls()
        executor.statuses(subset)
        batched = calls() - before
        before = calls()
        for execution in subset:
            executor.status(execution)
        single = calls() - before
        assert batched == math.ceil(size / 100), (size, batched)
        print(f"{size:>6} {batched:>14} {math.ceil(size / 100):>12} {single:>19}")

    batched_time = median_seconds(lambda: executor.statuses(executions), REPEATS)
    single_time = median_seconds(lambda: [executor.status(e) for e in executions], REPEATS)
    print(f"one sweep of {len(executions)} tasks (median of {REPEATS}):")
    print(
        f"  statuses() batched      {batched_time * 1000:8.1f} ms  ({math.ceil(len(executions) / 100)} calls)"
    )
    print(f"  status() per task       {single_time * 1000:8.1f} ms  ({len(executions)} calls)")
    print(
        f"  ratio (per-task / batched): {single_time / batched_time:.1f}x faster, "
        f"{len(executions) / math.ceil(len(executions) / 100):.0f}x fewer calls"
    )


if __name__ == "__main__":
    main()
