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


def test_two_runners_of_different_owners_never_steal_each_others_jobs(
    docker_api: docker.APIClient,
) -> None:
    with make_executor(name="docker") as first, make_executor(name="docker") as second:
        alice = Runner(Router({"docker": {"instance": first}}, default="docker"), owner="alice")
        bob = Runner(Router({"docker": {"instance": second}}, default="docker"), owner="bob")
        try:
            jobs = [JobSpec(IMAGE, ["sh", "-c", f"sleep 2; exit {i}"]) for i in range(3)]
            handles = [alice.submit(job) for job in jobs]
            for handle in handles:
                assert handle.wait_launched(30) is not None
            # Bob's reconcile sees Alice's live containers and leaves them alone.
            assert bob.reconcile() == []
            results = [handle.result(60) for handle in handles]
        finally:
            alice.shutdown(wait=True)
            bob.shutdown(wait=True)
    assert [(r.state, r.exit_code) for r in results] == [
        (JobState.SUCCEEDED, 0),
        (JobState.FAILED, 1),
        (JobState.FAILED, 2),
    ]
    labels = [c["Labels"] for c in containers_of_owner(docker_api, "alice")]
    assert labels == []  # harvested and removed by Alice's executor, nobody else


def containers_of_owner(api: docker.APIClient, owner: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = api.containers(
        all=True, filters={"label": ["jobrelay.managed=true", f"jobrelay.owner={owner}"]}
    )
    return found
