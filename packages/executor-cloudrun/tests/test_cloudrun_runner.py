"""Router + Runner end to end on Cloud Run (the fake plays the containers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cloudrun_testing import MakeExecutor
from fake_gcp import FakeGCP
from jobrelay import JobSpec, JobState, Router, Runner


@pytest.fixture
def autopilot(fake: FakeGCP) -> Iterator[None]:
    """Run every new execution like its container would: print, then exit with $EXIT."""
    stop = threading.Event()

    def drive() -> None:
        while not stop.wait(0.01):
            for name, execution in list(fake.executions.items()):
                if "completionTime" in execution:
                    continue
                container = execution["template"]["containers"][0]
                env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
                code = int(env.get("EXIT", "0"))
                if env.get("HANG"):
                    fake.start_execution(name)
                    continue
                fake.finish(name, code, stdout=[f"job says {code}"], stderr=[f"exit {code}"])

    thread = threading.Thread(target=drive, name="autopilot")
    thread.start()
    yield
    stop.set()
    thread.join()


@pytest.mark.usefixtures("autopilot")
def test_router_and_runner_with_mixed_exit_codes(
    make_executor: MakeExecutor, fake: FakeGCP
) -> None:
    router = Router(
        {"cloudrun": make_executor(), "cloudrun-big": make_executor(name="cloudrun-big")},
        rules=[{"condition": "memory_mb > 4096", "executor": "cloudrun-big", "reason": "big"}],
        default="cloudrun",
    )
    codes = [0, 1, 0, 3, 0, 42, 0, 0]
    jobs = [
        JobSpec(
            "busybox",
            "true",
            env={"EXIT": str(code)},
            job_id=f"mixed-{index}",
            resources={"cpu": 1, "memory": "8Gi" if index % 2 else "1Gi"},
        )
        for index, code in enumerate(codes)
    ]
    with Runner(router, poll_interval=0.05, max_workers=4) as runner:
        results = runner.run(jobs)
    assert [r.exit_code for r in results] == codes
    assert [r.state for r in results] == [
        JobState.SUCCEEDED if code == 0 else JobState.FAILED for code in codes
    ]
    assert [r.execution.executor for r in results] == ["cloudrun", "cloudrun-big"] * 4
    for result, code in zip(results, codes, strict=True):
        assert result.logs.stdout == f"job says {code}\n"
        assert result.logs.stderr == f"exit {code}\n"
        assert result.cost is not None
        assert result.cost.currency == "USD"
        assert result.job is not None
    assert fake.jobs == {}  # every Cloud Run Job was deleted after its harvest
    assert fake.count("run.jobs.run") == 0


@pytest.mark.usefixtures("autopilot")
def test_runner_timeout_cancels_on_cloud_run(make_executor: MakeExecutor, fake: FakeGCP) -> None:
    router = Router({"cloudrun": make_executor()}, default="cloudrun")
    job = JobSpec("busybox", "sleep 600", env={"HANG": "1"}, timeout=0.3, job_id="hangs")
    with Runner(router, poll_interval=0.05) as runner:
        (result,) = runner.run([job])
    assert result.state is JobState.TIMED_OUT
    assert fake.count("run.executions.cancel") == 1
    assert fake.jobs == {}
