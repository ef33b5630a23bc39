"""The core Runner driving the real Docker executor: many jobs, nothing left behind."""

from __future__ import annotations

import docker

from conftest import IMAGE, RUN_ID, RUN_LABEL, make_executor
from jobrelay import JobSpec, JobState, Router, Runner


def test_runner_on_docker_leaves_no_container(docker_api: docker.APIClient) -> None:
    with make_executor(name="docker") as executor:
        router = Router({"docker": {"instance": executor, "max_concurrent": 6}}, default="docker")
        jobs = [
            JobSpec(IMAGE, ["sh", "-c", f"echo job-{i}; echo err-{i} >&2; exit {i % 4}"])
            for i in range(19)
        ]
        jobs.append(JobSpec(IMAGE, ["sleep", "300"], timeout=1.0, name="too-slow"))
        with Runner(router, max_workers=8, poll_interval=0.2) as runner:
            results = runner.run(jobs)

    for i, result in enumerate(results[:19]):
        expected = JobState.SUCCEEDED if i % 4 == 0 else JobState.FAILED
        assert (result.state, result.exit_code) == (expected, i % 4), result.status
        assert result.logs.stdout == f"job-{i}\n"
        assert result.logs.stderr == f"err-{i}\n"
    slow = results[19]
    assert slow.state is JobState.TIMED_OUT, slow.status
    assert slow.duration is not None
    assert slow.duration < 30
    managed = docker_api.containers(
        all=True, filters={"label": ["jobrelay.managed=true", f"{RUN_LABEL}={RUN_ID}"]}
    )
    assert managed == []
    assert router.in_flight("docker") == 0
